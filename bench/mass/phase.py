"""What one run observes: the journal per phase, metrics deltas, the daemon's CPU."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.parser import text_string_to_metric_families

from bench.mass_peers import JournalTail
from tests.support import DaemonProcess

if TYPE_CHECKING:
    from bench.mass.peers import Peer


def scrape(daemon: DaemonProcess) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(daemon.metrics(timeout=60)):
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
    idle_profile: list[str] = field(default_factory=list)  # the steady state before t0
    start_profile: list[str] = field(default_factory=list)  # spawn -> publication verified
    trace: list[str] = field(default_factory=list)  # `--trace`: Route 53 requests after t0
    early: int = 0
    stop_seconds: float = 0.0
    number: int = 1
    idle_cpu: float = 0.0  # daemon CPU (cores) in steady state: mostly the probes
    busy_cpu: float = 0.0  # daemon CPU (cores) from t0 until all verified


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
    """user + system CPU seconds so far of the daemon and its live children (the probe
    process, `instance.probe_process`)."""
    assert daemon.proc is not None
    pid = daemon.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(_own_cpu(int(p)) for p in [pid, *children])


def _own_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
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
