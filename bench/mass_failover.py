"""Mass failover (issue 4): 1,000 services in ONE zone lose their primary at the same instant.

The real daemon (`python -m failover run -c FILE`) watches N services svc0001.bench.test...
Each has a primary and a secondary target with distinct record values; every primary is probed
with `tcp` (interval 1s, fall 2) against its own port on 127.0.0.61, every secondary (interval
5s) against its own port on 127.0.0.62 (one listener process per address, accepting and closing
at once): 2 x N distinct probes, since the daemon runs identical probes once (the bench checks
the configuration before starting). N listening sockets per process: RLIMIT_NOFILE is raised
when that needs it (root), or the bench says how many descriptors it needs. The records live at
the provider under test, in one pre-created, empty zone:

- bind:    rfc2136 -> a real BIND `named` on loopback (TSIG); the daemon verifies every change
           against BIND itself (`verify.nameservers`) and reads the zone in one transfer (BIND
           allows 127.0.0.1; `--no-zone-transfer`: one query per name). UPDATE and QUERY
           messages are counted exactly by BIND's statistics channel (opcode counters),
           cross-checked by the SOA serial delta (BIND bumps it once per UPDATE message that
           changed the zone).
- route53: route53 -> moto's server (own process) via `endpoint_url`, dummy credentials,
           AWS_EC2_METADATA_DISABLED=true. `verify: false`, because moto serves no DNS: the
           daemon's `verify` entries then only mean "INSYNC" (GetChange). Every HTTP request the
           daemon makes goes through a counting reverse proxy, per Route 53 operation.

Per run: the daemon starts and creates the 1,000 records (timed: initial publication); then the
primaries' listening sockets are closed (t0) and the bench waits until every service has a `verify`
journal entry with result ok for the secondary (t_verified); `t_changed` is when the peer held
every new value (BIND: the SOA serial poll saw the final UPDATE land; moto: the proxy relayed the
200 of the last ChangeResourceRecordSets). Afterwards the peer is read back in full (BIND: every
name queried with dnspython, RD clear, AA required; moto: the zone listed with boto3).

    python bench/mass_failover.py [--services 1000|10000] [--provider bind|route53|both]
        [--runs 3] [--profile] [--profile-start] [--trace] [--no-zone-transfer] [--fall 2]
        [--probe-timeout 900ms] [--resync 30s] [--probe-process] [--keep]

The summary prints min/median/max over the runs of each provider for the initial publication
(from spawn until every record is verified) and the failover, against issue 13's goals:
publication <= 2 s for 1,000 services (<= 15 s for 10,000), failover all verified
<= interval x fall + 1 s for 1,000 (+ 5 s for 10,000). The parts live in `bench/mass/`.

`--profile` samples the daemon with py-spy in the steady state before t0 (the 5 s of the idle
CPU figure) and during the failover, and prints where its CPU went;
`--profile-start` does the same from the daemon's spawn until the initial publication is verified
(interpreter start, imports, the first reads and probe round, the decisions and writes);
`--trace` prints every request the daemon sent moto, with when it was sent and answered.

Columns of the summary, in seconds from t0: `detect`/`decided` are the `ts` of the first/last
switch entry (the start of the engine cycle that decided it), `changed` the peer holding every
new value, `verified` the last `verify` entry with result ok. `failover_dns_changes_total`
counts apply batches per zone, not API calls (an rfc2136 batch may be split into several
UPDATE messages, a Route 53 batch into several ChangeResourceRecordSets of <= 500 UPSERTs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bytecode import compile_failover
from bench.mass.config import (
    PRIMARY_HOST,
    SECONDARY_HOST,
    BenchDaemon,
    config_text,
    service_name,
)
from bench.mass.peers import BindPeer, MotoPeerAdapter, Peer
from bench.mass.phase import (
    Phase,
    RunResult,
    cpu_seconds,
    histogram_delta,
    scrape,
    settle,
    total,
    wait_phase,
)
from bench.mass.report import print_run, print_table
from bench.mass_peers import JournalTail, MotoPeer, Profiler, clean_aws_env
from bench.tcp_targets import FD_MARGIN, TcpTarget, raise_nofile, require_distinct
from tests.support import free_port


def one_run(
    provider: str, n: int, workdir: Path, moto: MotoPeer | None, args: argparse.Namespace
) -> RunResult:
    result = RunResult(provider, n)
    primary = TcpTarget(PRIMARY_HOST, n).start()
    secondary = TcpTarget(SECONDARY_HOST, n).start()
    peer: Peer = (
        BindPeer(workdir, not args.no_zone_transfer)
        if provider == "bind"
        else MotoPeerAdapter(moto)  # type: ignore[arg-type]
    )
    metrics_port = free_port()
    config = workdir / "failover.yaml"
    config.write_text(
        config_text(
            workdir,
            n,
            peer.block(workdir),
            primary,
            secondary,
            metrics_port,
            args.fall,
            args.probe_timeout,
            args.resync,
            (args.interval, args.secondary_interval),
            args.probe_process,
        )
    )
    daemon = BenchDaemon(config, metrics_port, workdir / "admin.sock")
    tail = JournalTail(workdir / "state" / "journal.jsonl")
    try:
        print(f"  {provider} run: {require_distinct(config, 2 * n)}", flush=True)
        c0 = peer.counters()
        spawned = time.time()
        publish = Phase(spawned, "primary", {service_name(i) for i in range(1, n + 1)})
        start_profiler: list[Profiler] = []

        def profile_start(pid: int) -> None:
            start_profiler.append(Profiler(pid, workdir / "failover.start.pyspy.txt"))

        daemon.start(on_spawn=profile_start if args.profile_start else None)
        result.start_ready = time.time() - spawned
        try:
            wait_phase(publish, tail, peer, args.timeout, daemon)
        finally:
            for profiler in start_profiler:
                profiler.stop()
                result.start_profile = profiler.summary()
        result.publish = publish.summary()
        result.publish["ready"] = result.start_ready
        settle(tail, publish)  # the post-publication re-read, late journal entries
        idle_profiler = None
        if args.profile and daemon.proc is not None:
            idle_profiler = Profiler(daemon.proc.pid, workdir / "failover.idle.pyspy.txt")
            time.sleep(1.0)  # py-spy attached
        cpu0 = cpu_seconds(daemon)
        time.sleep(5.0)
        result.idle_cpu = (cpu_seconds(daemon) - cpu0) / 5.0
        if idle_profiler is not None:
            idle_profiler.stop()
            result.idle_profile = idle_profiler.summary()
        c1 = peer.counters()
        result.api_publish = peer.delta(c0, c1)
        result.peer_check = "publication: " + peer.read_back(n, 0)
        c1 = peer.counters()
        m0 = scrape(daemon)
        load = Path("/proc/loadavg").read_text().split()[:3]

        profiler = None
        if args.profile and daemon.proc is not None:
            profiler = Profiler(daemon.proc.pid, workdir / "failover.pyspy.txt")
            time.sleep(1.0)  # py-spy attached
        tail.poll()
        on_primary = {s for s, target in tail.published.items() if target == "primary"}
        result.early = n - len(on_primary)  # moved before t0: false DOWNs under load
        failover = Phase(time.time(), "secondary", on_primary)
        cpu0 = cpu_seconds(daemon)
        primary.stop()  # t0: the primary region dies
        try:
            wait_phase(failover, tail, peer, args.timeout, daemon)
        finally:
            if profiler is not None:
                profiler.stop()
                result.profile = profiler.summary()
        result.failover = failover.summary()
        if failover.seen_all_at:
            result.busy_cpu = (cpu_seconds(daemon) - cpu0) / (failover.seen_all_at - failover.t0)
        result.load = f"load {' '.join(load)} before t0"
        time.sleep(1.0)
        failover.feed(tail.poll())
        c2 = peer.counters()
        m1 = scrape(daemon)
        result.api_failover = peer.delta(c1, c2)
        if args.trace and moto is not None:
            for name, start, end in (
                ("publication, from spawn", spawned, failover.t0),
                ("failover, from t0", failover.t0, float("inf")),
            ):
                result.trace.append(name)
                result.trace += [
                    f"  {sent - start:6.2f}-{done - start:6.2f} {op}"
                    + (f" ({size} changes)" if size else "")
                    for sent, done, op, size in moto.counts.snapshot_timeline()
                    if start <= sent < end
                ]
        result.peer_check += "; failover: " + peer.read_back(n, 1)
        result.metrics = {
            "failover_dns_changes_total{result=ok}": total(
                m1, "failover_dns_changes_total", result="ok"
            )
            - total(m0, "failover_dns_changes_total", result="ok"),
            "failover_dns_changes_total{result=error}": total(
                m1, "failover_dns_changes_total", result="error"
            )
            - total(m0, "failover_dns_changes_total", result="error"),
            "failover_switches_total": total(m1, "failover_switches_total")
            - total(m0, "failover_switches_total"),
            "failover_provider_errors_total": total(m1, "failover_provider_errors_total")
            - total(m0, "failover_provider_errors_total"),
            "detection_to_publish": histogram_delta(
                m0, m1, "failover_detection_to_publish_seconds"
            ),
            "dns_change_duration": histogram_delta(m0, m1, "failover_dns_change_duration_seconds"),
            "dns_propagation": histogram_delta(m0, m1, "failover_dns_propagation_seconds"),
            # late probe runs delay detection: the last decisions wait for them
            "probe_scheduling_lag": histogram_delta(
                m0, m1, "failover_probe_scheduling_lag_seconds"
            ),
        }
        if failover.errors:
            result.metrics["journal errors"] = failover.errors[:3]
    finally:
        try:
            stopping = time.time()
            daemon.stop()
            result.stop_seconds = time.time() - stopping
        finally:
            primary.stop()
            secondary.stop()
            peer.close()
    log = daemon.log.read_text()
    if "Traceback" in log:
        print(f"  !! Traceback in {daemon.log}", file=sys.stderr)
    return result


def seconds(text: str) -> float:
    """'1s', '500ms', '2m' -> seconds (the bench's own flags)."""
    for unit, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--provider", choices=("bind", "route53", "both"), default="both")
    parser.add_argument("--runs", type=int, default=1, help="fresh daemon and zone per run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--profile-start",
        action="store_true",
        help="py-spy the daemon from its spawn until every record is published and verified",
    )
    parser.add_argument("--timeout", type=float, default=300, help="per phase, seconds")
    parser.add_argument("--fall", type=int, default=2, help="health.fall of every target")
    parser.add_argument("--probe-timeout", default="900ms", help="tcp probe timeout")
    parser.add_argument(
        "--resync", default="", help="instance.resync_interval (default: the daemon's, 30s)"
    )
    parser.add_argument(
        "--interval",
        default="1s",
        help="probe interval of the primaries (10,000 x 1 s exceeds what one core probes)",
    )
    parser.add_argument("--secondary-interval", default="5s", help="of the secondaries")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the daemon during the failover phase"
    )
    parser.add_argument(
        "--no-zone-transfer",
        action="store_true",
        help="bind: read one query per name (zone_transfer: false), as a refusing server",
    )
    parser.add_argument("--trace", action="store_true", help="print each Route 53 request, timed")
    parser.add_argument(
        "--probe-process",
        action="store_true",
        help="instance.probe_process: true (the probes in a child process); without it,"
        " false (in the loop), never the default `auto`",
    )
    args = parser.parse_args()
    providers = ["bind", "route53"] if args.provider == "both" else [args.provider]
    raise_nofile(args.services + FD_MARGIN, f"{args.services} listening sockets per listener")
    compile_failover()  # start as an installed daemon does: from bytecode (bench/bytecode.py)
    root = Path(tempfile.mkdtemp(prefix="failover-mass-"))
    print(
        f"mass failover: {args.services} services in one zone; tcp probes, primaries every "
        f"{args.interval} (timeout {args.probe_timeout}), secondaries every "
        f"{args.secondary_interval}, fall {args.fall}; "
        f"resync_interval {args.resync or 'default (30s)'}; "
        f"probes {'in a child process' if args.probe_process else 'in the loop'}; "
        f"{os.cpu_count()} CPUs"
    )
    moto: MotoPeer | None = None
    results: list[RunResult] = []
    try:
        if "route53" in providers:
            clean_aws_env()
            moto = MotoPeer(root).start()
        for provider in providers:
            for number in range(1, args.runs + 1):
                workdir = root / f"{provider}-{number}"
                workdir.mkdir()
                r = one_run(provider, args.services, workdir, moto, args)
                r.number = number
                results.append(r)
                print_run(r, number)
        print_table(results, args.fall, seconds(args.interval))
    finally:
        if moto is not None:
            moto.stop()
        if args.keep:
            print(f"work directory kept: {root}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
