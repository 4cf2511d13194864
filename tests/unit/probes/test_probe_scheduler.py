"""The probe scheduler against real local targets. Timing asserts are loose on purpose."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable
from typing import Any

import pytest
from probe_targets import Target

from failover.config.types import HostPort, HttpProbeConfig, ProbeConfig, TcpProbeConfig
from failover.model import ProbeResult
from failover.probes.base import ProbeContext, ProbeFn
from failover.probes.registry import PROBES
from failover.probes.scheduler import ProbeJob, ProbeScheduler
from failover.probes.sharing import identity


class Results:
    """on_result collector."""

    def __init__(self) -> None:
        self.calls: list[tuple[ProbeJob, ProbeResult, float]] = []

    def __call__(self, job: ProbeJob, result: ProbeResult, finished_at: float) -> None:
        self.calls.append((job, result, finished_at))

    def of(self, name: str) -> list[ProbeResult]:
        return [result for job, result, _ in self.calls if job.spec.name == name]


def http_job(url: str, name: str = "h", interval: float = 1.0, timeout: float = 1.0) -> ProbeJob:
    spec = HttpProbeConfig(name=name, url=url, interval=interval, timeout=timeout)
    return ProbeJob("shop", "primary", spec)


def tcp_job(port: int, name: str = "t", interval: float = 1.0, timeout: float = 1.0) -> ProbeJob:
    spec = TcpProbeConfig(
        name=name, address=HostPort("127.0.0.1", port), interval=interval, timeout=timeout
    )
    return ProbeJob("shop", "primary", spec)


def scheduler(jobs: Iterable[ProbeJob], results: Results, **kw: Any) -> ProbeScheduler:
    return ProbeScheduler(jobs, results, **kw)


def probe_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("probe ")]


async def test_jobs_repeat_at_their_interval(tcp_server: tuple[int, list[int]]) -> None:
    port, _ = tcp_server
    results = Results()
    jobs = [tcp_job(port, "fast", interval=0.1), tcp_job(port, "slow", interval=0.4)]
    started = time.time()
    async with scheduler(jobs, results) as sched:
        await asyncio.sleep(1.0)
    fast, slow = results.of("fast"), results.of("slow")
    assert len(fast) >= 5
    assert 2 <= len(slow) < len(fast)
    assert all(r.ok for r in fast + slow)
    assert all(started <= at <= time.time() for _, _, at in results.calls)
    assert len(sched.lag_samples) == len(results.calls) - 2  # the start-up runs are not planned
    assert all(lag >= 0 for lag in sched.lag_samples)


async def test_a_first_run_at_once_then_runs_spread_by_jitter() -> None:
    starts: dict[str, list[float]] = {}
    origin = time.monotonic()

    async def record_start(spec: ProbeConfig, _ctx: ProbeContext) -> ProbeResult:
        starts.setdefault(spec.name, []).append(time.monotonic() - origin)
        return ProbeResult(True, "ok", 0.0)

    jobs = [tcp_job(1 + i, f"j{i}", interval=1.0) for i in range(20)]
    async with scheduler(jobs, Results(), jitter=0.25, registry={"tcp": record_start}):
        await asyncio.sleep(1.6)
    assert len(starts) == 20
    assert all(runs[0] < 0.2 for runs in starts.values())  # health known after one pass
    second = [runs[1] for runs in starts.values()]  # one interval on, within 0.25 * 1 s
    assert all(len(runs) == 2 for runs in starts.values()), starts
    # fall counts intervals (a millisecond: the probe function is called a hair after its start)
    assert all(runs[1] - runs[0] >= 1.0 - 1e-3 for runs in starts.values())
    assert len({round(s, 3) for s in second}) > 1


async def test_a_first_run_that_waited_for_a_slot_is_still_one_interval_from_the_next() -> None:
    """With one slot, the first runs queue for 0.1 s each: the last of five begins 0.4 s late.
    The grid (no jitter: every phase at the start-up) would run them all again 1 s after the
    start-up, 0.6 s after that one began, and fall would count runs less than an interval
    apart. The first job keeps its slot; the others skip it and keep their phase."""
    starts: dict[str, list[float]] = {}
    origin = time.monotonic()

    async def slow_start(spec: ProbeConfig, _ctx: ProbeContext) -> ProbeResult:
        starts.setdefault(spec.name, []).append(time.monotonic() - origin)
        if len(starts[spec.name]) == 1:
            await asyncio.sleep(0.1)
        return ProbeResult(True, "ok", 0.0)

    jobs = [tcp_job(1 + i, f"j{i}", interval=1.0, timeout=2.0) for i in range(5)]
    options: dict[str, Any] = {"jitter": 0.0, "concurrency": 1, "registry": {"tcp": slow_start}}
    async with scheduler(jobs, Results(), **options):
        await asyncio.sleep(2.5)
    firsts = sorted(runs[0] for runs in starts.values())
    assert firsts[-1] - firsts[0] >= 0.35, starts  # they did queue for the slot
    assert all(len(runs) >= 2 for runs in starts.values()), starts
    assert all(runs[1] - runs[0] >= 1.0 - 1e-3 for runs in starts.values()), starts
    assert starts["j0"][1] < 1.5  # it did not queue: on the grid's first slot
    assert all(1.9 < starts[f"j{i}"][1] < 2.5 for i in range(1, 5)), starts  # the next slot


async def test_timeout_gives_a_failed_result(target: Target) -> None:
    results = Results()
    sched = scheduler([http_job(f"{target.url}/slow", timeout=0.2)], results)
    [(_, result)] = await sched.run_once()
    assert not result.ok
    assert result.reason == "timeout after 200ms in first_byte"
    assert 0.19 <= result.duration < 2.0  # uvloop timers have 1 ms resolution
    assert result.timings["total"] == result.duration
    assert results.calls == []  # run_once returns results, it does not call on_result


async def test_timeout_in_the_loop(target: Target) -> None:
    results = Results()
    async with scheduler([http_job(f"{target.url}/slow", interval=0.2, timeout=0.1)], results):
        await asyncio.sleep(0.7)
    assert len(results.calls) >= 2
    assert {r.reason for _, r, _ in results.calls} == {"timeout after 100ms in first_byte"}


async def test_a_timeout_names_the_phase_of_its_own_run() -> None:
    async def phased(spec: ProbeConfig, ctx: ProbeContext) -> ProbeResult:
        ctx.run.start("resolve")
        await asyncio.sleep(0.01)
        ctx.run.enter(f"phase-{spec.name}")  # concurrent runs must not see each other's phase
        ctx.run.detail["seen"] = spec.name
        await asyncio.sleep(10)
        return ProbeResult(True, "never", 0.0)

    jobs = [tcp_job(port, name, timeout=0.2) for port, name in enumerate(("a", "b", "c"), 1)]
    outcome = await scheduler(jobs, Results(), registry={"tcp": phased}).run_once()
    assert [r.reason for _, r in outcome] == [
        f"timeout after 200ms in phase-{name}" for name in ("a", "b", "c")
    ]
    for job, result in outcome:
        assert set(result.timings) == {"resolve", f"phase-{job.spec.name}", "total"}
        assert result.timings["resolve"] >= 0.005
        assert result.detail == {"seen": job.spec.name}


async def test_a_timeout_without_phases_names_none() -> None:
    async def opaque(_spec: ProbeConfig, _ctx: ProbeContext) -> ProbeResult:
        await asyncio.sleep(10)
        return ProbeResult(True, "never", 0.0)

    [(_, result)] = await scheduler(
        [tcp_job(1, timeout=0.1)], Results(), registry={"tcp": opaque}
    ).run_once()
    assert result.reason == "timeout after 100ms"
    assert result.timings == {}


async def test_run_once_runs_every_job_in_order(target: Target, closed_port: int) -> None:
    jobs = [
        http_job(f"{target.url}/ok", "a"),
        tcp_job(closed_port, "b"),
        http_job(f"{target.url}/fail", "c"),
    ]
    sched = scheduler(jobs, Results())
    outcome = await sched.run_once()
    assert [job.spec.name for job, _ in outcome] == ["a", "b", "c"]
    assert [r.reason for _, r in outcome] == [
        "status 200",
        "connect refused",
        "status 503 not in [200]",
    ]
    async with sched:  # also on the running scheduler's session
        assert [r.ok for _, r in await sched.run_once()] == [True, False, False]


async def test_concurrency_is_bounded(target: Target) -> None:
    jobs = [http_job(f"{target.url}/busy?{i}", f"b{i}") for i in range(8)]  # 8 distinct probes
    sched = scheduler(jobs, Results(), concurrency=3)
    outcome = await sched.run_once()
    assert all(r.ok for _, r in outcome)
    assert 2 <= target.max_in_flight <= 3
    target.max_in_flight = 0
    async with scheduler([dataclasses.replace(j) for j in jobs], Results(), concurrency=2):
        await asyncio.sleep(0.6)
    assert 1 <= target.max_in_flight <= 2


async def test_set_jobs_keeps_unchanged_tasks(tcp_server: tuple[int, list[int]]) -> None:
    port, _ = tcp_server
    results = Results()
    # distinct probes of one server: identical ones would share one task (test_sharing.py)
    kept, changed, removed = (
        tcp_job(port, n, interval=0.1, timeout=t)
        for n, t in (("kept", 1.0), ("changed", 1.1), ("gone", 1.2))
    )
    async with scheduler([kept, changed, removed], results) as sched:
        await asyncio.sleep(0.05)
        before = dict(sched._tasks)
        changed_again = dataclasses.replace(
            changed, spec=dataclasses.replace(changed.spec, interval=0.2)
        )
        added = tcp_job(port, "added", interval=0.1)
        sched.set_jobs([dataclasses.replace(kept), changed_again, added])
        after = dict(sched._tasks)
        kept_id, changed_id, removed_id = (identity(j.spec) for j in (kept, changed, removed))
        assert after[kept_id] is before[kept_id]
        assert identity(changed_again.spec) not in before
        assert changed_id not in after and removed_id not in after
        await asyncio.sleep(0)
        assert before[removed_id].cancelled()
        assert before[changed_id].cancelled()
        assert sched.jobs == (kept, changed_again, added)
        await asyncio.sleep(0.5)
    assert results.of("added")
    assert len(probe_tasks()) == 0


async def test_set_jobs_rejects_invalid_lists_without_change(
    tcp_server: tuple[int, list[int]],
) -> None:
    port, _ = tcp_server
    job = tcp_job(port)
    async with scheduler([job], Results(), registry={"tcp": PROBES["tcp"]}) as sched:
        tasks = dict(sched._tasks)
        with pytest.raises(ValueError, match="duplicate"):
            sched.set_jobs([job, job])
        with pytest.raises(ValueError, match="unknown probe type 'http'"):
            sched.set_jobs([job, http_job("http://127.0.0.1:1/")])
        assert sched._tasks == tasks
        assert sched.jobs == (job,)


async def test_a_crashing_probe_does_not_kill_the_loop() -> None:
    calls = 0

    async def crash(_spec: ProbeConfig, _ctx: ProbeContext) -> ProbeResult:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise RuntimeError("boom")
        raise TimeoutError  # not the scheduler's deadline: a crash too

    results = Results()
    async with scheduler([tcp_job(1, interval=0.05)], results, registry={"tcp": crash}):
        await asyncio.sleep(0.5)
    reasons = [r.reason for _, r, _ in results.calls]
    assert len(reasons) >= 4
    assert set(reasons) == {"probe error: RuntimeError", "probe error: TimeoutError"}
    assert not any(r.ok for _, r, _ in results.calls)


async def test_a_failing_callback_does_not_kill_the_loop(tcp_server: tuple[int, list[int]]) -> None:
    port, _ = tcp_server
    calls = 0

    def on_result(_job: ProbeJob, _result: ProbeResult, _at: float) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("callback bug")

    async with ProbeScheduler([tcp_job(port, interval=0.05)], on_result):
        await asyncio.sleep(0.4)
    assert calls >= 3


async def test_overruns_skip_missed_slots() -> None:
    async def sluggish(_spec: ProbeConfig, _ctx: ProbeContext) -> ProbeResult:
        await asyncio.sleep(0.35)
        return ProbeResult(True, "ok", 0.35)

    registry: dict[str, ProbeFn] = {"tcp": sluggish}
    results = Results()
    job = tcp_job(1, interval=0.1, timeout=1.0)
    async with scheduler([job], results, jitter=0.0, registry=registry) as sched:
        await asyncio.sleep(1.2)
    assert len(results.calls) >= 2
    assert sched.skipped_runs >= 3
    # Bunching would start each run as soon as the previous ended, ever later than planned.
    assert max(sched.lag_samples) < 0.3


async def test_aclose_leaves_nothing_behind(
    target: Target, tcp_server: tuple[int, list[int]]
) -> None:
    port, _ = tcp_server
    jobs = [http_job(f"{target.url}/slow", "slow", interval=5.0, timeout=5.0), tcp_job(port)]
    sched = scheduler(jobs, Results(), jitter=0.0)
    await sched.start()
    with pytest.raises(RuntimeError):
        await sched.start()
    await asyncio.sleep(0.1)  # the slow probe is in flight
    assert len(probe_tasks()) == 2
    await sched.aclose()
    assert not sched.running
    assert probe_tasks() == []
    await sched.aclose()  # idempotent


def test_job_key_and_hash() -> None:
    spec = HttpProbeConfig(
        name="h", url="http://x/", interval=1.0, timeout=1.0, headers={"X-A": "1"}
    )
    job = ProbeJob("shop", "primary", spec)
    assert job.key == ("shop", "primary", "h")
    assert len({job, ProbeJob("shop", "primary", dataclasses.replace(spec))}) == 1


def test_invalid_arguments() -> None:
    job = tcp_job(1)
    with pytest.raises(ValueError, match="unknown probe type"):
        ProbeScheduler([job], Results(), registry={})
    with pytest.raises(ValueError, match="duplicate"):
        ProbeScheduler([job, job], Results())
    with pytest.raises(ValueError, match="concurrency"):
        ProbeScheduler([job], Results(), concurrency=0)
    assert ProbeScheduler([job], Results()).jobs == (job,)
    assert PROBES.keys() >= {"http", "tcp"}
