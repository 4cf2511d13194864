"""/metrics at scale (issue 13): CPU of one render for N services x 2 targets.

Builds the daemon's metrics as a 10,000-service daemon holds them (a probe histogram per
target, every live family: target health, active target, mode, phase, alarms, vantage views,
drains) and times `Metrics.render` (the scrape's own writer, failover/exposition.py) against
prometheus_client's `generate_latest` on the same registry, which writes the same bytes (the
bench checks). CPU seconds of the calling thread, min / median / max over the runs.

    python bench/metrics_render.py [--services 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import generate_latest

from failover.metrics import LiveView, Metrics, ProbeView, ServiceView, TargetView
from failover.model import Health, Mode, ProbeResult

TARGETS = ("primary", "secondary")


def build(services: int) -> tuple[Metrics, LiveView]:
    metrics = Metrics()
    names = [f"svc{i:05d}" for i in range(services)]
    metrics.prime([(name, [(t, ["tcp"]) for t in TARGETS]) for name in names])
    result = ProbeResult(True, "ok", 0.0004, {"connect": 0.0003, "total": 0.0004}, {})
    for name in names:
        for target in TARGETS:
            job = SimpleNamespace(service=name, target=target, spec=SimpleNamespace(name="tcp"))
            metrics.observe_probe(job, result)
    views = tuple(
        ServiceView(
            name,
            Mode.AUTO,
            "primary",
            tuple(TargetView(t, Health.UP, (ProbeView("tcp", True),)) for t in TARGETS),
            phase="steady",
        )
        for name in names
    )
    vantage = tuple(
        (name, t, h.value, int(h is Health.UP)) for name in names for t in TARGETS for h in Health
    )
    drained = tuple((name, t, False) for name in names for t in TARGETS)
    view = LiveView("bench", True, False, views, vantage, drained=drained)
    metrics.attach_live(lambda: view)
    return metrics, view


def cpu(fn: object) -> tuple[float, bytes]:
    began = time.thread_time()
    body = fn()  # type: ignore[operator]
    return time.thread_time() - began, body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    metrics, view = build(args.services)
    ours, theirs = [], []
    body = b""
    for _ in range(args.runs):
        took, body = cpu(lambda: metrics.render(view))
        ours.append(took)
        took, reference = cpu(lambda: generate_latest(metrics.registry))
        theirs.append(took)
        if body != reference:
            raise SystemExit("the scrape's writer and prometheus_client disagree")
    lines = body.count(b"\n")

    def figures(values: list[float]) -> str:
        return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f} s"

    print(f"/metrics for {args.services} services x {len(TARGETS)} targets: ", end="")
    print(f"{len(body) / 1e6:.1f} MB, {lines} lines, the same bytes both ways")
    print(f"  Metrics.render (failover/exposition.py): {figures(ours)} of CPU (min/median/max)")
    print(f"  prometheus_client generate_latest:        {figures(theirs)} of CPU")
    print(f"  {statistics.median(theirs) / statistics.median(ours):.1f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
