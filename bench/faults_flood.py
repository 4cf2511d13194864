"""Scrape flood against a real daemon (issue 10, finding 2): does the decision loop keep up?

    python bench/faults_flood.py [--fillers 200] [--clients 200] [--seconds 6] [--repo PATH]

One daemon (`failover run`, builtin DNS provider) watches `shop` (HTTP probes every 200 ms,
fall 2, rise 2, timeout 150 ms) and `--fillers` services probed every 5 s, whose series make
the /metrics body large (about 6 KB per service). `--clients` scrapers in another process
fetch /metrics back to back on keep-alive connections. Phases:

- idle:     no flood, the reference.
- flood:    the flood with every target healthy: any switch (of any service) is false.
- failover: the flood, then shop's primary stops: seconds until DNS serves the secondary.

Columns: healthz p50/max over polls every 200 ms (a poll without a 200 within 5 s counts as
`miss`), the probes' scheduling lag (mean and p99 from the daemon's histogram, measured
after each phase), false switches of any service during the phase (in `failover`, all but
shop's one), failover time, scrapes served.
`--repo` runs the daemon of another checkout (e.g. the commit before the fix) with these
same peers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.flood_support import Attacker, answer_time, fillers
from tests.support import REPO, DaemonProcess, Lab, TargetServer, wait_until

LAG = "failover_probe_scheduling_lag_seconds"


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of `name` with `labels` (and any others)."""
    total = 0.0
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] == name and all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


class Poller:
    """/healthz every 200 ms in a thread, while a phase runs."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.samples: list[float | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.samples.append(answer_time(self.daemon, timeout=5.0))

    def stop(self) -> tuple[str, str, int]:
        self._stop.set()
        self._thread.join(10)
        ok = [s for s in self.samples if s is not None]
        misses = len(self.samples) - len(ok)
        p50 = f"{statistics.median(ok) * 1000:.0f}ms" if ok else "-"
        worst = f"{max(ok) * 1000:.0f}ms" if ok else "-"
        return p50, worst, misses


def lag_figures(before: str, after: str) -> tuple[str, str]:
    count = metric_sum(after, LAG + "_count") - metric_sum(before, LAG + "_count")
    total = metric_sum(after, LAG + "_sum") - metric_sum(before, LAG + "_sum")
    if count <= 0:
        return "-", "-"
    buckets = []
    for line in after.splitlines():
        if line.startswith(LAG + "_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
    p99 = "-"
    for le, cumulative in sorted(buckets):
        prior = metric_sum(before, LAG + "_bucket", le=_le_text(le, before))
        if cumulative - prior >= 0.99 * count:
            p99 = f"<={le * 1000:g}ms" if le != float("inf") else ">10s"
            break
    return f"{total / count * 1000:.1f}ms", p99


def _le_text(le: float, text: str) -> str:
    for line in text.splitlines():
        if line.startswith(LAG + "_bucket"):
            raw = line.split('le="')[1].split('"')[0]
            if float(raw) == le:
                return raw
    return str(le)


def scrape_metrics(daemon: DaemonProcess) -> str:
    return str(wait_until(lambda: daemon.metrics(timeout=10), 60, "a scrape after the phase"))


def run(args: argparse.Namespace, workdir: Path) -> list[tuple[str, ...]]:
    filler = TargetServer("127.0.0.43").start()
    lab = Lab(
        workdir,
        addresses=("127.0.0.41", "127.0.0.42"),
        repo=Path(args.repo),
        instance="flood-1",
        more_services=fillers(filler, args.fillers),
    )
    primary, secondary, daemon = lab.primary, lab.secondary, lab.daemon
    rows = []
    try:
        lab.start(ready_timeout=120)
        lab.wait_answer(primary.host, timeout=60)
        size = len(scrape_metrics(daemon).encode())
        print(f"metrics body: {size / 1e6:.2f} MB, {args.fillers + 1} services", file=sys.stderr)
        for phase in ("idle", "flood", "failover"):
            before = scrape_metrics(daemon)
            switches = len(daemon.switches(None))
            poller = Poller(daemon)
            attacker = None
            if phase != "idle":
                attacker = Attacker(
                    "scrape", "--port", str(lab.metrics_port), "--count", str(args.clients)
                )
                attacker.line()
            failover = "-"
            if phase == "failover":
                time.sleep(1.0)
                primary.stop()
                t0 = time.monotonic()
                try:
                    lab.wait_answer(secondary.host, timeout=120)
                    failover = f"{time.monotonic() - t0:.2f}s"
                except AssertionError:
                    failover = ">120s"
            else:
                time.sleep(args.seconds)
            served = json.loads(attacker.stop())["scrapes"] if attacker else 0
            p50, worst, misses = poller.stop()
            after = scrape_metrics(daemon)
            mean, p99 = lag_figures(before, after)
            moved = len(daemon.switches(None)) - switches
            false = moved if phase != "failover" else max(0, moved - 1)
            rows.append(
                (phase, p50, worst, str(misses), mean, p99, str(false), failover, str(served))
            )
        for entry in daemon.journal():
            if entry.get("kind") in ("local_fault", "local_fault_cleared", "switch"):
                print(entry["kind"], entry.get("reason", "")[:160], file=sys.stderr)
    finally:
        lab.close()
        filler.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fillers", type=int, default=200)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repo", default=str(REPO), help="checkout whose daemon runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="faults-flood-") as tmp:
        rows = run(args, Path(tmp))
    head = (
        "phase",
        "healthz p50",
        "healthz max",
        "miss",
        "lag mean",
        "lag p99",
        "false sw",
        "failover",
        "scrapes",
    )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
