"""Per-run probe metrics: each probe's series are looked up once and kept, and what is exported
is always the latest run's figures (the kept series are the registry's own)."""

from __future__ import annotations

from failover.config.types import HttpProbeConfig
from failover.metrics import Metrics
from failover.model import ProbeResult
from failover.probes.scheduler import ProbeJob

JOB = ProbeJob(
    "shop", "primary", HttpProbeConfig(name="web", url="http://x/", interval=1, timeout=1)
)
LABELS = {"service": "shop", "target": "primary", "probe": "web"}


def sample(metrics: Metrics, name: str, **extra: str) -> float | None:
    return metrics.registry.get_sample_value(name, LABELS | extra)


def test_repeated_results_update_the_exported_series() -> None:
    metrics = Metrics()
    metrics.observe_probe(JOB, ProbeResult(False, "connect refused", 0.002, {"connect": 0.002}))
    assert sample(metrics, "failover_probe_duration_seconds_count") == 1
    assert sample(metrics, "failover_probe_phase_duration_seconds", phase="connect") == 0.002
    assert sample(metrics, "failover_probe_http_status_code") is None  # no response yet

    timings = {"connect": 0.001, "first_byte": 0.003, "total": 0.004, "odd": 9.0}
    metrics.observe_probe(JOB, ProbeResult(True, "status 200", 0.004, timings, {"status": 200}))
    metrics.observe_probe(JOB, ProbeResult(False, "status 503", 0.005, timings, {"status": 503}))
    assert sample(metrics, "failover_probe_duration_seconds_count") == 3
    assert sample(metrics, "failover_probe_duration_seconds_sum") == 0.011
    assert sample(metrics, "failover_probe_phase_duration_seconds", phase="connect") == 0.001
    assert sample(metrics, "failover_probe_phase_duration_seconds", phase="first_byte") == 0.003
    assert sample(metrics, "failover_probe_phase_duration_seconds", phase="odd") is None
    assert sample(metrics, "failover_probe_http_status_code") == 503
    assert sample(metrics, "failover_probe_tls_cert_expiry_timestamp_seconds") is None
    metrics.observe_probe(JOB, ProbeResult(True, "ok", 0.01, {}, {"cert_expiry": 1.9e9}))
    assert sample(metrics, "failover_probe_tls_cert_expiry_timestamp_seconds") == 1.9e9
    other = ProbeJob("blog", "primary", JOB.spec)  # the same probe fed to another service
    metrics.observe_probe(other, ProbeResult(True, "status 200", 0.004, timings, {"status": 200}))
    assert sample(metrics, "failover_probe_http_status_code") == 503
    blog = {"service": "blog", "target": "primary", "probe": "web"}
    assert metrics.registry.get_sample_value("failover_probe_http_status_code", blog) == 200
