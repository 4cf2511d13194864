"""`ServiceLatency` writes what prometheus_client's histogram writes for the same
observations (its `_created` series aside), bounds included."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from failover.metrics import LATENCY_BUCKETS
from failover.metrics_latency import ServiceLatency

NAME, DOC = "failover_detection_to_publish_seconds", "First failed probe -> accepted."


def test_the_compact_histogram_renders_as_prometheus_clients_own() -> None:
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = ServiceLatency(NAME, DOC, LATENCY_BUCKETS)
    ours_registry.register(ours)
    theirs = Histogram(NAME, DOC, ["service"], buckets=LATENCY_BUCKETS, registry=theirs_registry)
    samples = {"shop": [0.05, 0.3, 2.0, 1000.0], "api": [0.0], 'é "q"': [120.0, 7.5]}
    for service, values in samples.items():
        for value in values:  # 0.05 and 120 on a bound: counted in it (le is inclusive)
            ours.observe(service, value)
            theirs.labels(service).observe(value)
    expected = [
        line
        for line in generate_latest(theirs_registry).decode().splitlines()
        if "_created" not in line
    ]
    assert generate_latest(ours_registry).decode().splitlines() == expected
