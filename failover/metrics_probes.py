"""The per-probe metrics: one compact object per probe, rendered at scrape time.

Why not prometheus_client's own histogram: its children (a lock and an object per bucket) cost
~4 KB per probe, most of the per-target memory at 10,000 services.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from failover.exposition import Family, TextCache
from failover.model import ProbeResult

PROBE_PHASES = frozenset({"resolve", "connect", "tls", "first_byte", "transfer", "query", "total"})
PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)


class _ProbeSeries:
    """One probe's figures: duration buckets (cumulative at render), sum, last phases."""

    __slots__ = ("buckets", "count", "expiry", "phases", "status", "total")

    def __init__(self) -> None:
        self.buckets = [0] * len(PROBE_BUCKETS)  # runs per bucket (not cumulative)
        self.count = 0
        self.total = 0.0
        self.phases: dict[str, float] | None = None
        self.status: int | None = None
        self.expiry: float | None = None


class ProbeCollector(Collector):
    """The per-probe metrics (duration histogram, phase, HTTP status, certificate expiry),
    written on the loop and rendered from a copy: one small object per probe instead of a
    prometheus_client child (with its own lock) per bucket and per label set."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, str], _ProbeSeries] = {}

    def series(self, labels: tuple[str, str, str]) -> _ProbeSeries:
        found = self._series.get(labels)
        if found is None:
            found = self._series[labels] = _ProbeSeries()
        return found

    def observe(self, labels: tuple[str, str, str], result: ProbeResult) -> None:
        s = self.series(labels)
        index = bisect.bisect_left(PROBE_BUCKETS, result.duration)  # first bound >= duration
        if index < len(PROBE_BUCKETS):  # beyond the last bound: counted by +Inf only
            s.buckets[index] += 1
        s.count += 1
        s.total += result.duration
        phases = {p: v for p, v in result.timings.items() if p in PROBE_PHASES}
        if phases:
            s.phases = {**(s.phases or {}), **phases}
        status = result.detail.get("status")
        if isinstance(status, int):
            s.status = status
        expiry = result.detail.get("cert_expiry")
        if isinstance(expiry, int | float):
            s.expiry = float(expiry)

    def collect(self) -> Iterator[Metric]:
        for family in self.families():
            yield family.metric()

    def text(self, out: list[str], cache: TextCache) -> None:
        for family in self.families():
            family.text(out, cache)

    def families(self) -> list[Family]:
        names = ["service", "target", "probe"]
        duration = Family(
            "failover_probe_duration_seconds", "Duration of probe runs.", "histogram", names
        )
        phase = Family(
            "failover_probe_phase_duration_seconds",
            "Duration of each phase of the last probe run (resolve, connect, tls, first_byte…).",
            "gauge",
            [*names, "phase"],
        )
        status = Family(
            "failover_probe_http_status_code",
            "HTTP status code of the last probe run that got a response.",
            "gauge",
            names,
        )
        expiry = Family(
            "failover_probe_tls_cert_expiry_timestamp_seconds",
            "Expiry (unix time) of the certificate the probe last saw.",
            "gauge",
            names,
        )
        for labels, s in list(self._series.items()):  # a copy: the loop may add a probe
            buckets, running = [], 0
            counts = list(s.buckets)
            for bound, n in zip(PROBE_BUCKETS, counts, strict=True):
                running += n
                buckets.append((repr(float(bound)), float(running)))
            buckets.append(("+Inf", float(s.count)))
            duration.add_histogram(labels, buckets, s.total)
            for name, seconds in sorted((s.phases or {}).items()):
                phase.add([*labels, name], seconds)
            if s.status is not None:
                status.add(list(labels), float(s.status))
            if s.expiry is not None:
                expiry.add(list(labels), s.expiry)
        return [duration, phase, status, expiry]
