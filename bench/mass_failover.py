"""Mass failover (issue 4): 1,000 services in ONE zone lose their primary at the same instant.

The real daemon (`python -m failover run -c FILE`) watches N services svc0001.bench.test...
Each has a primary and a secondary target with distinct record values; every primary is probed
with `tcp` (interval 1s, fall 1) against ONE local TCP listener, every secondary (interval 5s)
against another. The records live at the provider under test, in one pre-created, empty zone:

- bind:    rfc2136 -> a real BIND `named` on loopback (TSIG); the daemon verifies every change
           against BIND itself (`verify.nameservers`). UPDATE and QUERY messages are counted
           exactly by BIND's statistics channel (opcode counters), cross-checked by the SOA
           serial delta (BIND bumps it once per UPDATE message that changed the zone).
- route53: route53 -> moto's server (own process) via `endpoint_url`, dummy credentials,
           AWS_EC2_METADATA_DISABLED=true. `verify: false`, because moto serves no DNS: the
           daemon's `verify` entries then only mean "INSYNC" (GetChange). Every HTTP request the
           daemon makes goes through a counting reverse proxy, per Route 53 operation.

Per run: the daemon starts and creates the 1,000 records (timed: initial publication); then the
primaries' listener is closed (t0) and the bench waits until every service has a `verify`
journal entry with result ok for the secondary (t_verified); `t_changed` is when the peer held
every new value (BIND: the SOA serial poll saw the final UPDATE land; moto: the proxy relayed the
200 of the last ChangeResourceRecordSets). Afterwards the peer is read back in full (BIND: every
name queried with dnspython, RD clear, AA required; moto: the zone listed with boto3).

    python bench/mass_failover.py [--services 1000] [--provider bind|route53|both] [--runs 3]
        [--profile] [--fall 2] [--probe-timeout 900ms] [--resync 30s] [--keep]

`--profile` samples the daemon with py-spy during the failover and prints where its CPU went.
(`--patched` is gone: the group commit it sized now lives in the engine and journal. Before it,
per-switch state rewrites and fsyncs under the engine lock made this take 41-109 s.)

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
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client.parser import text_string_to_metric_families

from bench.mass_peers import (
    BENCH_ZONE,
    BenchBind,
    JournalTail,
    MotoPeer,
    Profiler,
    TcpTarget,
    clean_aws_env,
)
from tests.providers.bind import KEY_NAME
from tests.support import DaemonProcess, free_port

PRIMARY_HOST, SECONDARY_HOST = "127.0.0.61", "127.0.0.62"
GOAL = 10.0  # seconds, issue 4


def service_name(i: int) -> str:
    return f"svc{i:04d}"


def values(i: int) -> tuple[str, str]:
    """Distinct primary / secondary values per service (10.1.x.y / 10.2.x.y)."""
    return f"10.1.{i // 250}.{i % 250 + 1}", f"10.2.{i // 250}.{i % 250 + 1}"


def config_text(
    workdir: Path,
    n: int,
    provider_block: str,
    primary: TcpTarget,
    secondary: TcpTarget,
    metrics_port: int,
    fall: int = 2,
    probe_timeout: str = "900ms",
    resync: str = "",
) -> str:
    lines = [
        f'instance: {{name: bench, location: lab, state_dir: "{workdir / "state"}"'
        + (f", resync_interval: {resync}" if resync else "")
        + "}",
        f'admin: {{socket: "{workdir / "admin.sock"}"}}',
        f'metrics: {{listen: "127.0.0.1:{metrics_port}"}}',
        "providers:",
        provider_block,
        "defaults:",
        f"  probe: {{interval: 1s, timeout: {probe_timeout}}}",
        f"  health: {{fall: {fall}, rise: 1}}",
        "  policy: {failback: manual, cooldown: 1s, max_auto_switches: 1000, flap_window: 1m,"
        " startup_grace: 10s}",
        "services:",
    ]
    for i in range(1, n + 1):
        name = service_name(i)
        p, s = values(i)
        lines += [
            f"  {name}:",
            f"    records: [{{provider: dns, zone: {BENCH_ZONE}, name: {name}.{BENCH_ZONE},"
            " type: A, ttl: 30}]",
            "    targets:",
            f"      - {{name: primary, location: cloud-a, values: [{p}],"
            f' probes: [{{type: tcp, address: "{primary.address}"}}]}}',
            f"      - {{name: secondary, location: cloud-b, values: [{s}],"
            f' probes: [{{type: tcp, address: "{secondary.address}", interval: 5s}}]}}',
        ]
    return "\n".join(lines) + "\n"


def bind_block(bind: BenchBind, workdir: Path) -> str:
    secret = workdir / "tsig.secret"
    secret.write_text(bind.secret + "\n")
    return (
        "  dns:\n"
        "    type: rfc2136\n"
        "    server: 127.0.0.1\n"
        f"    port: {bind.port}\n"
        f'    tsig: {{name: {KEY_NAME}, algorithm: hmac-sha256, secret: "${{file:{secret}}}"}}\n'
        f'    verify: {{nameservers: ["127.0.0.1:{bind.port}"], timeout: 30s}}\n'
        "    timeout: 10s"
    )


def route53_block(moto: MotoPeer) -> str:
    return (
        "  dns:\n"
        "    type: route53\n"
        f'    endpoint_url: "{moto.proxy_url}"\n'
        "    verify: false        # moto serves no DNS: nothing to query\n"
        "    timeout: 30s"
    )


# --------------------------------------------------------------------------- metrics


def scrape(daemon: DaemonProcess) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(daemon.metrics()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def total(m: dict[str, Any], name: str, **labels: str) -> float:
    return sum(
        v for lab, v in m.get(name, []) if all(lab.get(k) == want for k, want in labels.items())
    )


def histogram_delta(before: dict[str, Any], after: dict[str, Any], name: str) -> dict[str, Any]:
    """Summed over every label set: count, mean, and the bucket bounds of p50/p99/max."""
    count = total(after, f"{name}_count") - total(before, f"{name}_count")
    tsum = total(after, f"{name}_sum") - total(before, f"{name}_sum")
    buckets: Counter[float] = Counter()
    for src, sign in ((after, 1), (before, -1)):
        for labels, value in src.get(f"{name}_bucket", []):
            buckets[float(labels["le"])] += sign * value
    bounds = sorted(buckets)

    def quantile(q: float) -> float | None:
        for le in bounds:
            if count and buckets[le] >= q * count:
                return le
        return None

    return {
        "count": int(count),
        "mean": tsum / count if count else None,
        "p50_le": quantile(0.5),
        "p99_le": quantile(0.99),
        "max_le": quantile(1.0),
    }


# --------------------------------------------------------------------------- daemon


class BenchDaemon(DaemonProcess):
    """DaemonProcess with a longer start-up allowance (1,000 services to read back)."""

    patched = ""  # run bench/mass_patch.py with these fixes monkeypatched in, instead

    def start(self, timeout: float = 120.0) -> BenchDaemon:  # type: ignore[override]
        entry = [str(Path(__file__).with_name("mass_patch.py"))] if self.patched else []
        with self.log.open("ab") as log:
            env = {**os.environ, **self.env}
            if self.patched:
                env["MASS_PATCH"] = self.patched
            self.proc = subprocess.Popen(
                [sys.executable, *(entry or ["-m", "failover"]), "run", "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.time() + timeout
        while not self.ready():  # raises at once when the daemon exits
            if time.time() > deadline:
                raise SystemExit(f"daemon not ready after {timeout:g}s; see {self.log}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 180.0) -> int:  # type: ignore[override]
        """SIGTERM; the daemon first lets in-flight changes land, which can take a while."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"  !! daemon {self.proc.pid} still running {timeout:g}s after SIGTERM: killed")
            self.proc.kill()
            return self.proc.wait(10)


@dataclass
class Phase:
    """One mass change (initial publication or failover) as the journal and the peer saw it."""

    t0: float
    to: str
    expected: set[str]  # services that must move (not those already on `to` at t0)
    timed_out: bool = False
    switches: dict[str, dict[str, Any]] = field(default_factory=dict)
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_verify: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    changed_at: float | None = None  # peer holds every new value
    seen_all_at: float | None = None  # bench observed the last verify entry
    recorded_at: float | None = None  # bench observed the last switch/publish entry
    progress: list[tuple[float, int, int]] = field(default_factory=list)

    def feed(self, entries: list[dict[str, Any]]) -> None:
        now = time.time()
        before = (len(self.switches), len(self.verified))
        self._feed(entries)
        after = (len(self.switches), len(self.verified))
        if after != before:
            if self.expected <= self.switches.keys() and self.recorded_at is None:
                self.recorded_at = now
            if not self.progress or now - self.t0 >= self.progress[-1][0] + 1.0:
                self.progress.append((now - self.t0, *after))

    def _feed(self, entries: list[dict[str, Any]]) -> None:
        # Entries count by when they were appended (read after t0), not by their `ts`: a switch
        # entry's ts is the start of the engine cycle that decided it, which can precede t0
        # when that cycle first spent seconds re-reading records.
        for e in entries:
            if e.get("to") != self.to:
                if e.get("kind") in ("refused", "alarm"):
                    self.errors.append(e)
                continue
            kind, service = e.get("kind"), e.get("service", "")
            if kind in ("switch", "publish") and e.get("result") == "ok":
                self.switches[service] = e
            elif kind in ("switch", "publish", "retry"):
                self.errors.append(e)
            elif kind == "verify":
                if e.get("result") == "ok":
                    self.verified[service] = e
                    self.failed_verify.pop(service, None)
                else:
                    self.failed_verify[service] = e

    def summary(self) -> dict[str, Any]:
        decided = sorted(e["ts"] for e in self.switches.values())
        verified = sorted(e["ts"] for e in self.verified.values())
        waves = Counter(round(e["ts"], 3) for e in self.switches.values())
        batch_sizes = Counter(
            p.get("batch_size") for e in self.switches.values() for p in e.get("providers", [])
        )
        n = len(self.expected)
        return {
            "expected": n,
            "timed_out": self.timed_out,
            "switched": len(self.switches),
            "verified": len(self.verified),
            "verify_failed": len(self.failed_verify),
            "first_decision": decided[0] - self.t0 if decided else None,
            "last_decision": decided[-1] - self.t0 if decided else None,
            "changed": self.changed_at - self.t0 if self.changed_at else None,
            "recorded": self.recorded_at - self.t0 if self.recorded_at else None,
            "progress": " ".join(f"{t:.0f}s:{s}/{v}" for t, s, v in self.progress),
            "last_verified": verified[-1] - self.t0 if len(verified) >= n else None,
            "observed": self.seen_all_at - self.t0 if self.seen_all_at else None,
            "decision_cycles": len(waves),
            "batch_sizes": dict(sorted(batch_sizes.items(), key=lambda kv: -(kv[0] or 0))),
        }


# --------------------------------------------------------------------------- one run


@dataclass
class RunResult:
    provider: str
    n: int
    start_ready: float = 0.0
    publish: dict[str, Any] = field(default_factory=dict)
    failover: dict[str, Any] = field(default_factory=dict)
    api_publish: dict[str, Any] = field(default_factory=dict)
    api_failover: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    peer_check: str = ""
    load: str = ""
    profile: list[str] = field(default_factory=list)
    early: int = 0
    stop_seconds: float = 0.0
    patched: str = ""
    number: int = 1
    idle_cpu: float = 0.0  # daemon CPU (cores) in steady state: mostly the probes
    busy_cpu: float = 0.0  # daemon CPU (cores) from t0 until all verified


class Peer:
    """What the run needs from a provider's peer: a config block, call counters, a poll of
    "every new value is there", and a full read-back."""

    name = ""

    def block(self, workdir: Path) -> str:
        raise NotImplementedError

    def counters(self) -> dict[str, Any]:
        raise NotImplementedError

    def delta(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def changed_at(self, expected_serial_bumps: int | None = None) -> float | None:
        raise NotImplementedError

    def read_back(self, n: int, which: int) -> str:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class BindPeer(Peer):
    name = "bind"

    def __init__(self, workdir: Path) -> None:
        self.server = BenchBind(workdir / "bind").start()
        self.own_queries = 0  # SOA polls and read-backs by this bench, not the daemon's
        self._serial = self._poll_serial()
        self._quiet_since = time.time()
        self._changed = time.time()

    def block(self, workdir: Path) -> str:
        return bind_block(self.server, workdir)

    def _poll_serial(self) -> int:
        self.own_queries += 1
        return self.server.soa_serial()

    def counters(self) -> dict[str, Any]:
        stats = self.server.stats()
        return {
            "serial": self._poll_serial(),
            "UPDATE": stats.get("opcodes", {}).get("UPDATE", 0),
            "QUERY": stats.get("opcodes", {}).get("QUERY", 0),
            "UpdateDone": stats.get("nsstats", {}).get("UpdateDone", 0),
            "UpdateFail": stats.get("nsstats", {}).get("UpdateFail", 0)
            + stats.get("nsstats", {}).get("UpdateRej", 0)
            + stats.get("nsstats", {}).get("UpdateBadPrereq", 0),
            "ReqTCP": stats.get("nsstats", {}).get("ReqTCP", 0),
            "own_queries": self.own_queries,
        }

    def delta(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        own = after["own_queries"] - before["own_queries"] - 1  # the counters() poll itself
        return {
            "UPDATE msgs": after["UPDATE"] - before["UPDATE"],
            "updates done": after["UpdateDone"] - before["UpdateDone"],
            "updates failed": after["UpdateFail"] - before["UpdateFail"],
            "SOA serial +": after["serial"] - before["serial"],
            "daemon QUERY msgs": after["QUERY"] - before["QUERY"] - own,
            "requests over TCP": after["ReqTCP"] - before["ReqTCP"],
        }

    def track(self) -> None:
        """Poll the SOA serial (cheap, one UDP query): remember when it last moved."""
        serial = self._poll_serial()
        if serial != self._serial:
            self._serial = serial
            self._changed = time.time()

    def changed_at(self, expected_serial_bumps: int | None = None) -> float | None:
        return self._changed

    def read_back(self, n: int, which: int) -> str:
        names = [f"{service_name(i)}.{BENCH_ZONE}" for i in range(1, n + 1)]
        got = self.server.answers(names)
        self.own_queries += len(names)
        bad = [name for i, name in enumerate(names, 1) if got[name] != ([values(i)[which]], True)]
        if bad:
            return f"{len(bad)}/{n} names wrong, e.g. {bad[0]}: {got[bad[0]]}"
        return f"all {n} names answer the {'secondary' if which else 'primary'} value (AA)"

    def close(self) -> None:
        self.server.stop()


class MotoPeerAdapter(Peer):
    name = "route53"

    def __init__(self, moto: MotoPeer) -> None:
        self.moto = moto
        moto.reset()

    def block(self, workdir: Path) -> str:
        return route53_block(self.moto)

    def counters(self) -> dict[str, Any]:
        ops, sizes, _ = self.moto.counts.snapshot()
        return {"ops": ops, "sizes": sizes}

    def delta(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        ops = after["ops"] - before["ops"]
        sizes = after["sizes"][len(before["sizes"]) :]
        out: dict[str, Any] = {"HTTP requests": sum(ops.values())}
        out.update(sorted(ops.items()))
        out["changes per ChangeResourceRecordSets"] = sizes
        return out

    def track(self) -> None:
        return None

    def changed_at(self, expected_serial_bumps: int | None = None) -> float | None:
        return self.moto.counts.snapshot()[2] or None

    def read_back(self, n: int, which: int) -> str:
        records = self.moto.records()
        bad = [
            name
            for i in range(1, n + 1)
            if records.get(name := f"{service_name(i)}.{BENCH_ZONE}") != [values(i)[which]]
        ]
        if bad:
            return f"{len(bad)}/{n} record sets wrong, e.g. {bad[0]}: {records.get(bad[0])}"
        return f"all {n} record sets hold the {'secondary' if which else 'primary'} value"

    def close(self) -> None:
        return None


def wait_phase(
    phase: Phase, tail: JournalTail, peer: Peer, timeout: float, daemon: DaemonProcess
) -> None:
    """Until every expected service has a `verify` entry with result ok (or the timeout)."""
    deadline = time.time() + timeout
    while not phase.expected <= phase.verified.keys():
        if time.time() > deadline:
            phase.timed_out = True
            print(
                f"  !! timed out after {timeout:g}s: {len(phase.switches)} switched, "
                f"{len(phase.verified)} verified of {len(phase.expected)}, "
                f"{len(phase.failed_verify)} failed verification; errors: {phase.errors[:2]}",
                file=sys.stderr,
            )
            return
        if daemon.proc is not None and daemon.proc.poll() is not None:
            raise SystemExit(f"daemon exited: {daemon.log.read_text()[-3000:]}")
        phase.feed(tail.poll())
        peer.track()  # type: ignore[attr-defined]
        time.sleep(0.02)
    phase.seen_all_at = time.time()
    phase.changed_at = peer.changed_at()


def cpu_seconds(daemon: DaemonProcess) -> float:
    """user + system CPU seconds of the daemon process so far."""
    assert daemon.proc is not None
    fields = Path(f"/proc/{daemon.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(tail: JournalTail, phase: Phase, quiet: float = 2.0, limit: float = 60.0) -> None:
    """Wait until the journal has been quiet for `quiet` seconds (late entries written)."""
    last, deadline = time.time(), time.time() + limit
    while time.time() < deadline and time.time() - last < quiet:
        entries = tail.poll()
        if entries:
            phase.feed(entries)
            last = time.time()
        time.sleep(0.1)


def one_run(
    provider: str, n: int, workdir: Path, moto: MotoPeer | None, args: argparse.Namespace
) -> RunResult:
    if args.patched:
        raise SystemExit("--patched is obsolete: the group commit it sized is in the engine now")
    result = RunResult(provider, n, patched=args.patched)
    primary = TcpTarget(PRIMARY_HOST).start()
    secondary = TcpTarget(SECONDARY_HOST).start()
    peer: Peer = BindPeer(workdir) if provider == "bind" else MotoPeerAdapter(moto)  # type: ignore[arg-type]
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
        )
    )
    daemon = BenchDaemon(config, metrics_port, workdir / "admin.sock")
    daemon.patched = args.patched
    tail = JournalTail(workdir / "state" / "journal.jsonl")
    try:
        c0 = peer.counters()
        spawned = time.time()
        publish = Phase(spawned, "primary", {service_name(i) for i in range(1, n + 1)})
        daemon.start()
        result.start_ready = time.time() - spawned
        wait_phase(publish, tail, peer, args.timeout, daemon)
        result.publish = publish.summary()
        result.publish["ready"] = result.start_ready
        settle(tail, publish)  # the post-publication re-read, late journal entries
        cpu0 = cpu_seconds(daemon)
        time.sleep(5.0)
        result.idle_cpu = (cpu_seconds(daemon) - cpu0) / 5.0
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


# --------------------------------------------------------------------------- report


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:6.2f}s"


def print_run(r: RunResult, number: int) -> None:
    p, f = r.publish, r.failover
    daemon = f"PATCHED daemon (bench/mass_patch.py: {r.patched})" if r.patched else "daemon"
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
        f"  failover (t0 = primary listener closed): {f['switched']}/{f['expected']} switched"
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
        f"    daemon CPU: {r.idle_cpu:.2f} cores in steady state (probes), "
        f"{r.busy_cpu:.2f} cores from t0 until all verified"
    )
    print(f"    API calls: {r.api_failover}")
    for key, value in r.metrics.items():
        print(f"    {key}: {value}")
    print(f"  read-back: {r.peer_check}; daemon stopped {r.stop_seconds:.1f}s after SIGTERM")
    if r.profile:
        print("  py-spy, daemon during failover (inclusive share of samples):")
        for line in r.profile:
            print(f"    {line}")


def print_table(results: list[RunResult]) -> None:
    print(f"\n{'=' * 100}\nSummary (seconds from t0 = primary dead; goal < {GOAL:g}s)")
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
            f"{r.provider:9} {r.number:>3} {fmt(r.publish['last_verified']):>8} "
            f"{fmt(f['first_decision']):>7} {fmt(f['last_decision']):>8} "
            f"{fmt(f['changed']):>8} {fmt(f['last_verified']):>9} {f['decision_cycles']:>6} "
            f"{calls:<40}"
        )
    for provider in sorted({r.provider for r in results}):
        times = [r.failover["last_verified"] for r in results if r.provider == provider]
        times = [t for t in times if t is not None]
        if times:
            verdict = "meets" if max(times) < GOAL else "MISSES"
            print(
                f"{provider}: failover verified in median {statistics.median(times):.2f}s "
                f"(min {min(times):.2f}, max {max(times):.2f}) over {len(times)} run(s): "
                f"{verdict} the {GOAL:g}s goal"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--provider", choices=("bind", "route53", "both"), default="both")
    parser.add_argument("--runs", type=int, default=1, help="fresh daemon and zone per run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--timeout", type=float, default=300, help="per phase, seconds")
    parser.add_argument("--fall", type=int, default=2, help="health.fall of every target")
    parser.add_argument("--probe-timeout", default="900ms", help="tcp probe timeout")
    parser.add_argument(
        "--patched",
        default="",
        help="experiment: comma-separated fixes to monkeypatch into the daemon "
        "(bench/mass_patch.py: commit, noreread) instead of plain `python -m failover run`",
    )
    parser.add_argument(
        "--resync", default="", help="instance.resync_interval (default: the daemon's, 30s)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the daemon during the failover phase"
    )
    args = parser.parse_args()
    providers = ["bind", "route53"] if args.provider == "both" else [args.provider]
    root = Path(tempfile.mkdtemp(prefix="failover-mass-"))
    print(
        f"mass failover: {args.services} services in one zone; tcp probes, primaries every 1s "
        f"(timeout {args.probe_timeout}), secondaries every 5s, fall {args.fall}; "
        f"resync_interval {args.resync or 'default (30s)'}; "
        f"daemon: {'bench/mass_patch.py ' + args.patched if args.patched else 'failover run'}; "
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
        print_table(results)
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
