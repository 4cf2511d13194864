"""Scheduling lag (the `on_lag` hook and its histogram) and the spread of first runs."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import generate_latest

from failover.config.types import HostPort, ProbeConfig, TcpProbeConfig
from failover.metrics import Metrics
from failover.model import ProbeResult
from failover.probes.base import ProbeContext
from failover.probes.scheduler import SPREAD_RATE, ProbeJob, ProbeScheduler


def job(name: str, interval: float = 1.0) -> ProbeJob:
    """A distinct probe per name (its own address: identical probes would run as one)."""
    spec = TcpProbeConfig(
        name=name, address=HostPort(f"{name}.test", 1), interval=interval, timeout=1.0
    )
    return ProbeJob("shop", "primary", spec)


async def instant(_spec: ProbeConfig, _ctx: ProbeContext) -> ProbeResult:
    return ProbeResult(True, "ok", 0.0)


def no_result(*_: object) -> None:
    pass


async def test_on_lag_sees_every_scheduled_run() -> None:
    lags: list[float] = []
    jobs = [job(f"j{i}", interval=0.05) for i in range(5)]
    async with ProbeScheduler(
        jobs, no_result, registry={"tcp": instant}, on_lag=lags.append
    ) as sched:
        await asyncio.sleep(0.4)
    assert len(lags) >= 5 * 4
    assert lags == list(sched.lag_samples)[-len(lags) :]
    assert all(0.0 <= lag < 1.0 for lag in lags)


async def test_run_once_reports_no_lag() -> None:
    lags: list[float] = []
    sched = ProbeScheduler([job("a")], no_result, registry={"tcp": instant}, on_lag=lags.append)
    await sched.run_once()
    assert lags == []  # no planned start, no lag


async def test_a_failing_lag_hook_does_not_stop_probing(caplog: pytest.LogCaptureFixture) -> None:
    results: list[ProbeResult] = []

    def broken(_lag: float) -> None:
        raise ValueError("hook bug")

    async with ProbeScheduler(
        [job("a", interval=0.05)],
        lambda _job, result, _at: results.append(result),
        registry={"tcp": instant},
        on_lag=broken,
    ):
        with caplog.at_level(logging.ERROR, logger="failover.probes.scheduler"):
            await asyncio.sleep(0.3)
    assert len(results) >= 3
    assert "lag callback failed" in caplog.text


async def test_lag_feeds_the_histogram() -> None:
    metrics = Metrics()
    jobs = [job(f"j{i}", interval=0.05) for i in range(3)]
    async with ProbeScheduler(
        jobs, no_result, registry={"tcp": instant}, on_lag=metrics.scheduling_lag.observe
    ) as sched:
        await asyncio.sleep(0.3)
    text = generate_latest(metrics.registry).decode()
    count = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("failover_probe_scheduling_lag_seconds_count")
    )
    assert count == len(sched.lag_samples) > 0
    assert 'failover_probe_scheduling_lag_seconds_bucket{le="0.001"}' in text
    assert 'failover_probe_scheduling_lag_seconds_bucket{le="10.0"}' in text


def test_first_runs_spread_with_the_job_count() -> None:
    few = ProbeScheduler([job(f"j{i}") for i in range(20)], no_result, jitter=0.1)
    assert all(0.0 <= few._first_offset(2.0) < 0.2 for _ in range(500))  # jitter * interval
    many = int(SPREAD_RATE * 3)  # 3 s of first runs at SPREAD_RATE: wider than the interval
    crowd = ProbeScheduler([job(f"j{i}") for i in range(many)], no_result, jitter=0.1)
    offsets = [crowd._first_offset(2.0) for _ in range(2000)]
    assert all(0.0 <= offset < 2.0 for offset in offsets)  # never past the interval
    assert max(offsets) > 1.5
    mid = int(SPREAD_RATE * 0.5)  # 0.5 s of first runs: wider than 0.1 * 2 s, within 2 s
    middle = ProbeScheduler([job(f"j{i}") for i in range(mid)], no_result, jitter=0.1)
    offsets = [middle._first_offset(2.0) for _ in range(2000)]
    assert 0.3 < max(offsets) < 0.5
    still = ProbeScheduler([job(f"j{i}") for i in range(many)], no_result, jitter=0.0)
    assert still._first_offset(2.0) == 0.0  # jitter 0: every job starts at once


async def test_many_jobs_run_once_at_start_then_not_in_one_burst() -> None:
    starts: dict[str, list[float]] = {}
    origin = time.monotonic()

    count = int(SPREAD_RATE * 0.6)
    twice = asyncio.Event()  # every job ran at start and once scheduled

    async def record(spec: ProbeConfig, _ctx: ProbeContext) -> ProbeResult:
        runs = starts.setdefault(spec.name, [])
        runs.append(time.monotonic() - origin)
        if len(runs) == 2 and sum(len(r) >= 2 for r in starts.values()) == count:
            twice.set()
        return ProbeResult(True, "ok", 0.0)

    jobs = [job(f"j{i}", interval=1.0) for i in range(count)]
    async with ProbeScheduler(jobs, no_result, jitter=0.1, registry={"tcp": record}):
        # the start-up runs, then one scheduled run each: waited for rather than slept on,
        # since a loaded machine delays the last ones past any fixed sleep
        await asyncio.wait_for(twice.wait(), 30)
    assert all(runs[0] < 1.0 <= runs[1] for runs in starts.values())  # once at start, not twice
    scheduled = [runs[1] - 1.0 for runs in starts.values()]  # their phase in the interval
    assert max(scheduled) > 0.4  # spread over the widened window (0.6 s)...
    assert sum(1 for s in scheduled if s < 0.2) < count / 2  # ...not crammed into 0.1 s
