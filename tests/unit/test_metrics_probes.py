"""The compact per-probe metrics render what a prometheus_client histogram and gauges would."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from failover.metrics import Metrics
from failover.metrics_probes import PROBE_BUCKETS
from failover.model import ProbeResult

LABELS = {"service": "web", "target": "a", "probe": "http"}


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("failover_probe_")
    }


def test_primed_probe_is_a_zero_histogram() -> None:
    m = Metrics()
    m.prime([("web", [("a", ["http"])])])
    got = samples(m)
    key = tuple(sorted(LABELS.items()))
    assert got[("failover_probe_duration_seconds_count", key)] == 0
    assert got[("failover_probe_duration_seconds_sum", key)] == 0
    buckets = [
        v for (name, _), v in got.items() if name == "failover_probe_duration_seconds_bucket"
    ]
    assert buckets == [0.0] * (len(PROBE_BUCKETS) + 1)


def test_runs_fill_cumulative_buckets_and_last_values() -> None:
    m = Metrics()
    job = SimpleNamespace(service="web", target="a", spec=SimpleNamespace(name="http"))
    for duration, status in ((0.004, 200), (0.2, 503), (0.25, 503), (30.0, 200)):
        timings = {"connect": duration / 2, "total": duration, "bogus": 1.0}
        detail = {"status": status, "cert_expiry": 1_900_000_000}
        m.observe_probe(job, ProbeResult(True, "ok", duration, timings, detail))
    got = samples(m)
    key = tuple(sorted(LABELS.items()))

    def bucket(le: str) -> float:
        return got[
            ("failover_probe_duration_seconds_bucket", tuple(sorted({**LABELS, "le": le}.items())))
        ]

    assert [bucket(le) for le in ("0.005", "0.1", "0.25", "0.5", "10.0", "+Inf")] == [
        1,
        1,
        3,
        3,
        3,
        4,
    ]
    assert got[("failover_probe_duration_seconds_count", key)] == 4
    assert round(got[("failover_probe_duration_seconds_sum", key)], 6) == 30.454
    phase = "failover_probe_phase_duration_seconds"
    assert got[(phase, tuple(sorted({**LABELS, "phase": "total"}.items())))] == 30.0
    assert got[(phase, tuple(sorted({**LABELS, "phase": "connect"}.items())))] == 15.0
    assert not any(name == phase and ("phase", "bogus") in labels for name, labels in got)
    assert got[("failover_probe_http_status_code", key)] == 200
    assert got[("failover_probe_tls_cert_expiry_timestamp_seconds", key)] == 1.9e9
