"""The scrape's own text writer says byte for byte what prometheus_client would."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import generate_latest

from failover.exposition import Family, TextCache
from failover.metrics import LiveView, Metrics, ProbeView, ServiceView, TargetView
from failover.model import Health, Mode, ProbeResult

ODD = 'we\\ird "name"\nline'  # every character the format escapes


def rich_metrics() -> tuple[Metrics, LiveView]:
    metrics = Metrics()
    metrics.prime([("shop", [("aws", ["http"]), ("ovh", ["tcp"])]), (ODD, [("a", [ODD])])])
    for duration, status in ((0.004, 200), (0.3, 503), (42.0, None), (float("nan"), None)):
        job = SimpleNamespace(service="shop", target="aws", spec=SimpleNamespace(name="http"))
        detail = {"status": status} if status else {"cert_expiry": 1_900_000_000.5}
        timings = {"connect": 0.001, "total": duration}
        metrics.observe_probe(job, ProbeResult(status == 200, "r", duration, timings, detail))
    metrics.switches.labels("shop", "aws", "ovh", "auto").inc(3)
    metrics.scheduling_lag.observe(0.002)
    pool = (("10.0.0.1", "up", True), ("10.0.0.2", "down", False), (ODD, "unknown", False))
    shop = ServiceView(
        "shop",
        Mode.AUTO,
        "ovh",
        (
            TargetView("aws", Health.DOWN, (ProbeView("http", False),)),
            TargetView("ovh", Health.UP, (ProbeView("tcp", True), ProbeView("x", None)), pool),
        ),
        frozenset({"drift", "split_answer"}),
        "confirming",
        True,
    )
    odd = ServiceView(ODD, Mode.PAUSED, None, (TargetView("a", Health.UNKNOWN),), phase="steady")
    view = LiveView(
        ODD,
        True,
        False,
        (shop, odd),
        (("shop", "aws", "down", 2), ("shop", "aws", "up", 1), (ODD, "a", "unknown", 1)),
        journal_unwritable=True,
        journal_pending=12,
        journal_lost=7,
        local_fault=True,
        drained=(("shop", "aws", True), (ODD, "a", False)),
    )
    metrics.attach_live(lambda: view)
    return metrics, view


def test_render_is_what_prometheus_client_writes() -> None:
    metrics, view = rich_metrics()
    fast = metrics.render(view)
    assert fast == generate_latest(metrics.registry)
    assert (
        b'failover_journal_lost_entries_total{instance="we\\\\ird \\"name\\"\\nline"} 7.0' in fast
    )
    assert b"failover_probe_duration_seconds_sum" in fast and b'le="+Inf"' in fast


def test_render_without_a_live_view_yet() -> None:
    metrics = Metrics()
    metrics.prime([("web", [("a", ["http"])])])
    assert metrics.render() == generate_latest(metrics.registry)


def test_unlabelled_families_and_values_seen_once() -> None:
    gauge = Family("g", "a gauge\\ with\nnewline", "gauge", [])
    gauge.add([], 1e22)
    histogram = Family("h", "h", "histogram", [])
    histogram.add_histogram([], [("1.0", 2.0), ("+Inf", 3.0)], 2.5)
    cache, out = TextCache(), []
    gauge.text(out, cache)
    histogram.text(out, cache)
    reference = SimpleNamespace(collect=lambda: [gauge.metric(), histogram.metric()])
    assert "".join(out).encode() == generate_latest(reference)  # type: ignore[arg-type]
