"""Printing a run and the summary (min/median/max over the runs of each provider)."""

from __future__ import annotations

import statistics

from bench.mass.phase import RunResult
from bench.mass_peers import BENCH_ZONE


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:6.2f}s"


def print_run(r: RunResult, number: int) -> None:
    p, f = r.publish, r.failover
    daemon = "daemon"
    print(f"\n[{r.provider} run {number}] {daemon}, {r.n} services in zone {BENCH_ZONE} ({r.load})")
    print(
        f"  initial publication: daemon ready {fmt(r.start_ready)} after spawn; "
        f"{p['switched']} created, decided {fmt(p['first_decision'])}..{fmt(p['last_decision'])}"
        f", peer changed {fmt(p['changed'])}, all journaled {fmt(p['recorded'])}, "
        f"all verified {fmt(p['last_verified'])}"
        f" (observed {fmt(p['observed'])}); {p['decision_cycles']} decision cycle(s), "
        f"apply batches {p['batch_sizes']} (size: services)"
    )
    print(f"    API calls: {r.api_publish}")
    print(
        f"  failover (t0 = primary listeners closed): {f['switched']}/{f['expected']} switched"
        f"{f' ({r.early} had moved before t0: false DOWN under load)' if r.early else ''}"
        f"{' TIMED OUT' if f['timed_out'] else ''}; first decision "
        f"{fmt(f['first_decision'])}, last decision {fmt(f['last_decision'])}, "
        f"peer changed {fmt(f['changed'])}, all switches journaled "
        f"{fmt(f['recorded'])}, all verified "
        f"{fmt(f['last_verified'])} (observed {fmt(f['observed'])}); "
        f"{f['decision_cycles']} decision cycle(s), "
        f"apply batches {f['batch_sizes']} (size: services), "
        f"{f['verify_failed']} verify failures"
    )
    print(f"    progress (elapsed: switched/verified): {f['progress']}")
    print(
        f"    daemon CPU (its probe process included): {r.idle_cpu:.2f} cores in steady state, "
        f"{r.busy_cpu:.2f} cores from t0 until all verified"
    )
    print(f"    API calls: {r.api_failover}")
    for key, value in r.metrics.items():
        print(f"    {key}: {value}")
    print(f"  read-back: {r.peer_check}; daemon stopped {r.stop_seconds:.1f}s after SIGTERM")
    if r.trace:
        print("  requests to moto (sent-answered, seconds):")
        for line in r.trace:
            print(f"    {line}")
    if r.start_profile:
        print("  py-spy, daemon from spawn until the publication was verified (inclusive share):")
        for line in r.start_profile:
            print(f"    {line}")
    if r.idle_profile:
        print("  py-spy, daemon in steady state before t0 (inclusive share of samples):")
        for line in r.idle_profile:
            print(f"    {line}")
    if r.profile:
        print("  py-spy, daemon during failover (inclusive share of samples):")
        for line in r.profile:
            print(f"    {line}")


def goals(n: int, fall: int, interval: float = 1.0) -> tuple[float, float]:
    """Issue 13: (initial publication, failover all verified) in seconds for n services."""
    if n <= 1000:
        return 2.0, interval * fall + 1.0
    return 15.0, interval * fall + 5.0


def spread(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    missing = f", {len(values) - len(got)} timed out" if len(got) < len(values) else ""
    return (
        f"min {min(got):.2f} / median {statistics.median(got):.2f} / max {max(got):.2f}s"
        f" over {len(got)} run(s){missing}"
    )


def print_table(results: list[RunResult], fall: int, interval: float) -> None:
    print(f"\n{'=' * 100}\nSummary (failover: seconds from t0 = primary dead)")
    head = (
        f"{'provider':9} {'run':>3} {'publish':>8} {'detect':>7} {'decided':>8} {'changed':>8} "
        f"{'verified':>9} {'cycles':>6} {'api calls (failover)':<40}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        f = r.failover
        calls = (
            f"{r.api_failover.get('UPDATE msgs')} UPDATE"
            if r.provider == "bind"
            else f"{r.api_failover.get('ChangeResourceRecordSets', 0)} Change + "
            f"{r.api_failover.get('GetChange', 0)} GetChange + "
            f"{r.api_failover.get('ListResourceRecordSets', 0)} List"
        )
        print(
            f"{r.provider:9} {r.number:>3} {fmt(r.publish.get('last_verified')):>8} "
            f"{fmt(f.get('first_decision')):>7} {fmt(f.get('last_decision')):>8} "
            f"{fmt(f.get('changed')):>8} {fmt(f.get('last_verified')):>9} "
            f"{f.get('decision_cycles', '-'):>6} {calls:<40}"
        )
    for provider in sorted({r.provider for r in results}):
        runs = [r for r in results if r.provider == provider]
        n = runs[0].n
        publish_goal, failover_goal = goals(n, fall, interval)
        publish = [r.publish.get("last_verified") for r in runs]
        failover = [r.failover.get("last_verified") for r in runs]
        decided = [r.failover.get("last_decision") for r in runs]
        for label, times, goal in (
            ("initial publication, all verified", publish, publish_goal),
            ("failover, last decision", decided, None),
            ("failover, all verified", failover, failover_goal),
        ):
            verdict = "" if goal is None else ": " + goal_verdict(times, goal)
            print(f"{provider} {n} services, {label}: {spread(times)}{verdict}")


def goal_verdict(times: list[float | None], goal: float) -> str:
    """`meets` only when every run met the goal; otherwise how many did (a run that never
    finished counts as missed), so "at the median" and "in no run" read differently."""
    met = sum(1 for t in times if t is not None and t <= goal)
    if met == len(times):
        return f"meets the {goal:g}s goal"
    return f"MISSES the {goal:g}s goal (met in {met} of {len(times)} run(s))"
