"""Human renderings of admin API bodies for the CLI (status, history, plans)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

HEALTH_WORD = {"up": "UP", "down": "DOWN", "unknown": "UNKNOWN"}


def local_time(text: str | None, *, utc: bool = False) -> str:
    """An RFC 3339 time of the daemon (UTC) as RFC 3339 in this machine's time zone, with its
    offset (2026-03-01T09:48:12+01:00), or in UTC with `utc` (…T08:48:12Z). Seconds only."""
    if not text:
        return "-"
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if utc:
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return when.astimezone().isoformat(timespec="seconds")


def _left(until: str | None) -> str:
    if not until:
        return ""
    try:
        when = datetime.fromisoformat(until.replace("Z", "+00:00"))
    except ValueError:
        return ""
    left = max(0.0, (when - datetime.now(UTC)).total_seconds())
    return f", {left:.0f}s left"


def status_text(body: dict[str, Any], *, utc: bool = False) -> str:
    role = "leader" if body.get("leader") else f"follower (leader: {body.get('leader_name')})"
    lines = [
        f"instance {body.get('instance')} [{role}]" + ("  DRY-RUN" if body.get("dry_run") else "")
    ]
    if body.get("coordination") and "standalone" not in str(body["coordination"]):
        lines.append(f"coordination: {body['coordination']}")
    if body.get("history"):
        lines.append(f"history: {body['history'].get('text')}")
    child = body.get("probe_process")
    if isinstance(child, dict):
        line = f"probes: child process pid {child.get('pid') or '(starting again)'}"
        if child.get("restarts"):
            line += f", started again {child['restarts']} time(s), last: {child.get('last_exit')}"
        lines.append(line)
    journal = body.get("journal") or {}
    if journal.get("unwritable"):
        lines.append(f"ALARM journal_unwritable: {journal.get('reason')}")
    if body.get("isolated"):
        lines.append(
            "  ISOLATED: this vantage point sees every target fail in several locations; it "
            "makes no automatic switch until that clears"
        )
    failing = [n for n, c in (body.get("canaries") or {}).items() if c.get("failing")]
    if failing:
        lines.append(f"  canaries failing: {', '.join(sorted(failing))}")
    for name, svc in body.get("services", {}).items():
        flags = [f"mode {svc['mode']}"]
        drill = svc.get("drill")
        if isinstance(drill, dict):
            flags.append(
                f"DRILL {drill.get('from')} -> {drill.get('to')}: {drill.get('step')}"
                f"{_left(drill.get('hold_ends_at')) if drill.get('step') == 'holding' else ''}"
            )
        if svc.get("blocked"):
            flags.append("BLOCKED (failover ack)")
        if svc.get("pin"):
            pin = svc["pin"]
            flags.append(f"pinned to {pin['target']} by {pin['actor']}")
        lines.append("")
        fallback = svc.get("fallback") or {}
        shown = "(fallback)" if fallback.get("active") else svc.get("active") or "(none)"
        lines.append(f"{name}: active {shown}  [{', '.join(flags)}]")
        if isinstance(drill, dict):
            stop = drill.get("stop_requested_by")
            lines.append(
                f"  drill:    by {drill.get('actor')}, hold {drill.get('hold_seconds'):g}s, then "
                f"back to {drill.get('from')}; automatic decisions wait for it"
                + (f" (stop asked by {stop})" if stop else "")
                + f"; stop it: failover drill {name} --stop"
            )
        else:
            lines.append(f"  decision: {svc.get('reason')}")
        lines += ops_lines(svc, utc=utc)
        if svc.get("alarms"):
            lines.append(f"  alarms:   {', '.join(svc['alarms'])}")
        if svc.get("last_error"):
            lines.append(f"  error:    {svc['last_error']}")
        last = svc.get("last_switch")
        if last:
            lines.append(
                f"  last switch: {local_time(last.get('time'), utc=utc)} "
                f"{last.get('from') or '(none)'}"
                f" -> {last.get('to')} ({last.get('trigger')})"
            )
        lines.append("  targets:")
        for tname, target in svc.get("targets", {}).items():
            mark = "*" if tname == svc.get("active") else " "
            health = HEALTH_WORD.get(target["health"], target["health"])
            values = ",".join(target.get("values", []))
            drained = " DRAINED" if target.get("drained") else ""
            lines.append(
                f"   {mark} {tname:<18} {health:<8} {target.get('location') or '-':<10} "
                f"{values:<20} {target.get('reason', '')}{drained}"
            )
            pool = target.get("pool")
            if isinstance(pool, dict):
                parts = [
                    f"{v} {HEALTH_WORD.get(m['health'], m['health'])}"
                    + (" (published)" if m.get("published") else "")
                    for v, m in pool.get("values", {}).items()
                ]
                lines.append(f"       pool, min_up {pool.get('min_up')}: {', '.join(parts)}")
        if fallback:
            state = "SERVED NOW" if fallback.get("active") else "not served"
            lines.append(
                f"  fallback: {','.join(fallback.get('values', []))} "
                f"(all_down: {fallback.get('policy')}) {state}"
            )
        lines.append("  records:")
        for record in svc.get("records", []):
            values = ",".join(record["values"]) if record.get("values") else "(absent)"
            sync = "in sync" if record.get("in_sync") else "NOT in sync"
            if record.get("error"):
                sync = record["error"]
            elif record.get("verify_method") == "api":
                sync += " (verified through the API only)"
            lines.append(
                f"     {record['provider']:<10} {record['name']} {record['type']} "
                f"{record.get('ttl')}  {values}  {sync}"
            )
    return "\n".join(lines)


def ops_lines(svc: dict[str, Any], *, utc: bool = False) -> list[str]:
    """A running switchover (its step, the next one and when) and the drains, one line each."""
    out = []
    sw = svc.get("switchover")
    if isinstance(sw, dict):
        out.append(
            f"  switchover: to {sw.get('target')} (TTL {sw.get('ttl')}s) by {sw.get('actor')}: "
            f"step {sw.get('step')}; next: {sw.get('next_step')} at "
            f"{local_time(sw.get('next_at'), utc=utc)}"
        )
    for target, d in (svc.get("drains") or {}).items():
        until = f" until {local_time(d.get('until'), utc=utc)}" if d.get("until") else ""
        out.append(
            f"  drained:  {target} ({d.get('source')}, {d.get('actor')}): {d.get('reason')}{until}"
        )
    return out


def history_text(entries: list[dict[str, Any]], *, utc: bool = False) -> str:
    if not entries:
        return "(no journal entries)"
    lines = []
    # an intent is shown only while no outcome follows it (a crash between the two)
    closed = {e.get("intent") for e in entries if e.get("kind") != "intent" and e.get("intent")}
    several = len({e.get("instance") for e in entries}) > 1  # a history shared by instances
    for entry in entries:
        if entry.get("kind") == "intent":
            if entry.get("intent") in closed:
                continue
            entry = {**entry, "result": "no outcome yet"}
        move = ""
        if entry.get("from") or entry.get("to"):
            move = f" {entry.get('from') or '(none)'} -> {entry.get('to') or '(none)'}"
        result = f" [{entry['result']}]" if entry.get("result") else ""
        if entry.get("kind") in ("drain", "undrain") and entry.get("target"):
            move = f" {entry['target']}"  # the drained target (a drain moves nothing itself)
        if entry.get("kind") == "switchover" and entry.get("step"):
            result = f" [{entry['step']}{', ' + entry['result'] if entry.get('result') else ''}]"
        lines.append(
            f"{local_time(entry.get('time'), utc=utc)}  {entry.get('service', '-'):<12} "
            f"{entry.get('kind', '?'):<8} {entry.get('trigger', '-'):<6}{move}{result}  "
            f"{entry.get('reason', '')}  ({entry.get('actor', '-')}"
            + (f" on {entry.get('instance')})" if several else ")")
        )
        for provider in entry.get("providers", []) or []:
            if entry.get("kind") == "verify":
                verified = "verified" if provider.get("verified_by") != "api" else "read back (API)"
                parts = [
                    f"{label} {provider[key] * 1000:.0f}ms"
                    for label, key in (
                        ("in sync", "in_sync_seconds"),
                        (verified, "verify_seconds"),
                    )
                    if provider.get(key) is not None
                ]
                summary = ", ".join(parts) or provider.get("verify_reason")
                lines.append(f"{'':27}{provider['provider']}: {summary}")
                continue
            if entry.get("reconciled"):
                serves = "serves it" if provider.get("ok") else "does not serve it"
                lines.append(f"{'':27}{provider['provider']}: {serves} (read back)")
            elif provider.get("ok"):
                lines.append(
                    f"{'':27}{provider['provider']}: accepted in "
                    f"{(provider.get('accepted_seconds') or 0) * 1000:.0f}ms"
                )
            else:
                lines.append(f"{'':27}{provider['provider']}: FAILED {provider.get('error')}")
    return "\n".join(lines)


def plan_text(body: dict[str, Any]) -> str:
    lines = [f"Plan: {body.get('service')} -> {body.get('target')}"]
    changes = body.get("plan") or []
    if not changes:
        lines.append("  no record changes: DNS already serves this target")
    for change in changes:
        before = ",".join(change["before"]) if change.get("before") else "(absent)"
        lines.append(
            f"  {change['provider']:<10} {change['name']} {change['type']} ttl {change['ttl']}: "
            f"{before} -> {','.join(change['after'])}"
        )
    for violation in body.get("violations") or []:
        lines.append(f"  safety rule {violation['rule']}: {violation['message']}")
    if body.get("coordination"):
        lines.append(f"  coordination: {body['coordination']}")
    return "\n".join(lines)


def probe_result_json(job: Any, result: Any) -> dict[str, Any]:
    return {
        "service": job.service,
        "target": job.target,
        "probe": job.spec.name,
        "type": job.spec.type,
        "ok": result.ok,
        "reason": result.reason,
        "duration_seconds": result.duration,
        "timings": dict(result.timings),
        "detail": dict(result.detail),
    }


def probe_results_text(results: list[tuple[Any, Any]]) -> str:
    lines = []
    for job, result in results:
        mark = "PASS" if result.ok else "FAIL"
        phases = " ".join(
            f"{phase} {seconds * 1000:.1f}ms" for phase, seconds in result.timings.items()
        )
        lines.append(
            f"{mark}  {job.target}/{job.spec.name} ({job.spec.type}) in "
            f"{result.duration * 1000:.1f}ms: {result.reason}"
        )
        if phases:
            lines.append(f"      {phases}")
    return "\n".join(lines)


def drill_report_text(report: dict[str, Any]) -> str:
    lines = [
        f"Drill {report['service']}: {report['from']} -> {report['to']} -> {report['from']}: "
        f"{report['result'].upper()}",
        f"  {report['reason']}",
    ]
    for step in report.get("steps", []):
        verified = {True: "verified", False: "NOT verified", None: "not checked"}[
            step.get("verified")
        ]
        lines.append(f"  {step['step']}: {step['result']} in {step['seconds']:.2f}s, {verified}")
        for p in step.get("providers", []):
            if not p.get("ok"):
                lines.append(f"    {p['provider']}: FAILED {p.get('error')}")
                continue
            if p.get("verified") is False:
                lines.append(f"    {p['provider']}: NOT verified: {p.get('verify_reason')}")
                continue
            parts = [
                f"{label} {p[key] * 1000:.0f}ms"
                for label, key in (
                    ("accepted", "accepted_seconds"),
                    ("in sync", "in_sync_seconds"),
                    ("verified", "verify_seconds"),
                )
                if p.get(key) is not None
            ]
            lines.append(f"    {p['provider']}: {', '.join(parts)}")
    health = report.get("hold_health", {})
    lines.append(
        f"  hold {report['hold_seconds']:g}s: {health.get('up', 0)}/{health.get('samples', 0)} "
        "health samples UP"
    )
    for reason in health.get("reasons", []):
        lines.append(f"    seen: {reason}")
    return "\n".join(lines)


def unverified_lines(verification: list[dict[str, Any]]) -> list[str]:
    """One line per provider whose change a name server did not confirm, naming the server."""
    return [
        f"{v.get('provider')}: NOT verified: {v.get('verify_reason') or v.get('error')}"
        for v in verification
        if v.get("verified") is False or not v.get("in_sync", True)
    ]
