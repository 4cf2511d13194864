"""Probe scheduler: every job on its own interval, bounded concurrency, one deadline per run.

Each job runs once at start (through the concurrency gate, so health is known after one pass),
then on a fixed-rate schedule whose phase is a random offset in [0, jitter * interval) to spread
the load, a window widened for a long job list so that scheduled runs start at about
`SPREAD_RATE` per second at most (never wider than the interval): runs are fixed-rate, so runs
that start bunched stay bunched, and thousands of jobs crammed into a tenth of their interval
would queue for the concurrency limit every interval. The first scheduled run comes one interval
plus that offset after the start-up; a start-up run that queued for a slot skips the slots that
would come less than an interval after it began (the phase, hence the spread, is kept): fall and
rise count runs an interval apart. Then next = previous planned start + interval, on the
monotonic clock, so no drift. A run that overran skips the slots it missed instead of bunching
them. One FIFO gate (`probes.gate`) bounds the probes in flight. The scheduler owns timeouts:
each run is wrapped in `asyncio.timeout(spec.timeout)`, and gets its own `ProbeRun`
(`ProbeContext.for_run`) so a timeout says where the run was (`timeout after 500ms in tls`) and
keeps the timings of the phases it got through. Every result goes to `on_result`, timeouts and
probe crashes included (as failed results); every scheduled run's lag (planned -> actual start,
waiting for a slot included) goes to `lag_samples` and to `on_lag` (the daemon's
`failover_probe_scheduling_lag_seconds` histogram).

Identical probes run once (`probes.sharing`): jobs whose probe configurations are the same but
for their name (many services behind one load balancer) form one group, one task, one run per
interval, and each result goes to every job of the group. `distinct` says how many run.

One long-lived task per group, sleeping until its next slot, is cheap next to a run: the
scheduling itself (sleep, deadline, the concurrency gate) is a few percent of the prober's CPU,
the rest being the connection, the request and the event loop's work on them (see
`bench/probes.py`).

What runs share is only what is safe to share: one HTTP session whose connector opens a fresh
connection per request, and the TLS contexts (`ProbeContext.tls`). No connection is reused: a
health check must see a fresh TCP and TLS handshake each time (see `probes.http`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import aiohttp

from failover.config.types import ProbeConfig
from failover.model import ProbeResult
from failover.probes import http
from failover.probes.base import ProbeContext, ProbeFn, ProbeRun
from failover.probes.gate import Gate
from failover.probes.loopwatch import LoopWatch
from failover.probes.net import LOCAL_ERRNOS, local_fault_of
from failover.probes.registry import PROBES
from failover.probes.sharing import ProbeIdentity, identity

log = logging.getLogger(__name__)

LAG_SAMPLES = 1024
"""How many recent scheduling lags `ProbeScheduler.lag_samples` keeps."""

LOCAL_LAG_SHARE = 0.5
"""A run cut by its deadline while the loop stalled for at least this share of the probe's
timeout (and at least `LOCAL_LAG_MIN`) is a local fault: the target was not given its time."""
LOCAL_LAG_MIN = 0.1

SPREAD_RATE = 1000.0
"""Scheduled first runs per second, on average, above which the phase window widens past
jitter * interval (up to the interval): 5,000 jobs at 1 s spread over the whole second, not
over 100 ms."""

JobKey = tuple[str, str, str]


@dataclass(frozen=True)
class ProbeJob:
    """One probe of one target of one service."""

    service: str
    target: str
    spec: ProbeConfig
    settle: int = 1
    """Runs in a row that make its target's verdict (the larger of fall and rise): a probe
    with `fast_interval` keeps that pace for this many runs after its result changes."""

    @property
    def key(self) -> JobKey:
        return (self.service, self.target, self.spec.name)

    def __hash__(self) -> int:  # the spec may hold a dict (headers); equal jobs share a key
        return hash(self.key)


ResultCallback = Callable[[ProbeJob, ProbeResult, float], None]
"""Called with (job, result, finished_at) where finished_at is wall-clock `time.time()`."""

LagCallback = Callable[[float], None]
"""Called with each scheduled run's lag in seconds (e.g. a histogram's `observe`)."""


_QUEUED = 0.005
"""Seconds a start-up run must have waited for a slot to count as queued (`_loop`)."""


class ProbeScheduler:
    """Runs probe jobs forever (`start` … `aclose`) or once (`run_once`)."""

    def __init__(
        self,
        jobs: Iterable[ProbeJob],
        on_result: ResultCallback,
        *,
        concurrency: int = 256,
        jitter: float = 0.1,
        registry: Mapping[str, ProbeFn] = PROBES,
        on_lag: LagCallback | None = None,
        lean_http: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")
        self._registry = registry
        self._on_result = on_result
        self._on_lag = on_lag
        self._concurrency = concurrency
        self._jitter = jitter
        self._lean_http = lean_http
        self._jobs = self._index(jobs)
        self._groups = self._group(self._jobs.values())
        self._gate = Gate(concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._ctx: ProbeContext | None = None
        self._tasks: dict[ProbeIdentity, asyncio.Task[None]] = {}
        self._retired: set[asyncio.Task[None]] = set()
        self.lag_samples: deque[float] = deque(maxlen=LAG_SAMPLES)
        """Recent scheduling lags: seconds from a run's planned start to the probe's start
        (includes waiting for a concurrency slot)."""
        self.skipped_runs = 0
        """Slots skipped because a run (or the wait for a slot) overran its interval."""
        self.watch = LoopWatch()

    @property
    def jobs(self) -> tuple[ProbeJob, ...]:
        return tuple(self._jobs.values())

    @property
    def distinct(self) -> int:
        """How many probes run: identical probes of several jobs run once."""
        return len(self._groups)

    @property
    def running(self) -> bool:
        return self._session is not None

    def _index(self, jobs: Iterable[ProbeJob]) -> dict[JobKey, ProbeJob]:
        index: dict[JobKey, ProbeJob] = {}
        for job in jobs:
            if job.spec.type not in self._registry:
                raise ValueError(f"{'/'.join(job.key)}: unknown probe type {job.spec.type!r}")
            if job.spec.interval <= 0 or job.spec.timeout <= 0:
                raise ValueError(f"{'/'.join(job.key)}: interval and timeout must be positive")
            if job.key in index:
                raise ValueError(f"duplicate probe job {'/'.join(job.key)}")
            index[job.key] = job
        return index

    @staticmethod
    def _group(jobs: Iterable[ProbeJob]) -> dict[ProbeIdentity, list[ProbeJob]]:
        groups: dict[ProbeIdentity, list[ProbeJob]] = {}
        for job in jobs:
            groups.setdefault(identity(job.spec), []).append(job)
        return groups

    async def start(self) -> None:
        """Open the shared HTTP session and start one task per job."""
        if self._session is not None:
            raise RuntimeError("probe scheduler already started")
        self._session = http.new_session(self._concurrency)
        self._ctx = ctx = ProbeContext(self._session, lean_http=self._lean_http)
        self.watch.start()
        for ident, members in self._groups.items():
            self._spawn(ident, members[0], ctx)

    def set_jobs(self, jobs: Iterable[ProbeJob]) -> None:
        """Swap in a new job list: probes still wanted (same identity) keep running undisturbed,
        their results now going to the new list's jobs.

        Raises ValueError, changing nothing, when the list is invalid. Call from the loop's thread.
        """
        new = self._index(jobs)
        groups = self._group(new.values())
        for ident, task in list(self._tasks.items()):
            if ident not in groups or task.done():
                del self._tasks[ident]
                self._retire(task)
        self._jobs, self._groups = new, groups
        if self._ctx is not None:
            for ident, members in groups.items():
                if ident not in self._tasks:
                    self._spawn(ident, members[0], self._ctx)

    async def run_once(self) -> list[tuple[ProbeJob, ProbeResult]]:
        """Run every distinct probe once, concurrently (bounded); every job's result, in job
        order. Does not call on_result."""
        groups = list(self._groups.values())
        if self._ctx is not None:
            ctx = self._ctx
            results = await asyncio.gather(*(self._execute(g[0], ctx) for g in groups))
        else:
            async with http.new_session(self._concurrency) as session:
                ctx = ProbeContext(session, lean_http=self._lean_http)
                results = await asyncio.gather(*(self._execute(g[0], ctx) for g in groups))
        by_job = {job.key: r for group, r in zip(groups, results, strict=True) for job in group}
        return [(job, by_job[job.key]) for job in self._jobs.values()]

    async def aclose(self) -> None:
        """Cancel every job task, wait for them, close the session. Idempotent."""
        for task in self._tasks.values():
            self._retire(task)
        self._tasks.clear()
        pending = list(self._retired)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await self.watch.aclose()
        session, self._session, self._ctx = self._session, None, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> ProbeScheduler:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def _spawn(self, ident: ProbeIdentity, job: ProbeJob, ctx: ProbeContext) -> None:
        """Start the task of one distinct probe; `job` is its first job (spec and name)."""
        loop = asyncio.get_running_loop()
        name = f"probe {'/'.join(job.key)}"
        self._tasks[ident] = loop.create_task(self._loop(ident, job, ctx), name=name)

    def _retire(self, task: asyncio.Task[None]) -> None:
        task.cancel()
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def _loop(self, ident: ProbeIdentity, job: ProbeJob, ctx: ProbeContext) -> None:
        interval = job.spec.interval
        began = time.monotonic()
        # One run at once, through the FIFO gate: at start-up (and for a probe a reload adds)
        # every target's health is known after one pass over the probes, not after a whole
        # interval, so records get published that much sooner. Its wait for a slot is not
        # scheduling lag (nothing was planned yet). The fixed-rate runs then start on this
        # probe's phase, an interval after the first run began at least (within `_QUEUED`
        # and a timer's millisecond): fall and rise still count runs an interval apart.
        first, first_started = await self._execute_timed(job, ctx)
        self._deliver(ident, first, time.time())
        pace = _FastPace(job.spec.fast_interval, first.ok)
        planned = began + interval + self._first_offset(interval)
        # a start-up run that queued for its slot (beyond a timer's precision) keeps its phase,
        # hence the spread, and skips the slot that would come too soon after it began
        while planned < first_started + interval - _QUEUED:
            planned += interval
        due, on_grid = planned, True
        while True:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            result, _ = await self._execute_timed(job, ctx, due)
            self._deliver(ident, result, time.time())
            fast = pace.after(result.ok, self._settle(ident))
            now = time.monotonic()
            if on_grid:  # this run was the grid's slot (a timer may fire a hair early)
                planned += interval
            while planned <= now:  # the grid goes on under fast runs; a grid run that
                planned += interval  # overran skips the slots it missed
                self.skipped_runs += on_grid
            due, on_grid = (planned, True) if fast is None else (now + fast, False)

    def _settle(self, ident: ProbeIdentity) -> int:
        """The longest verdict among the jobs this probe feeds."""
        return max((job.settle for job in self._groups.get(ident, ())), default=1)

    def _first_offset(self, interval: float) -> float:
        if self._jitter == 0.0:
            return 0.0
        window = max(self._jitter * interval, len(self._groups) / SPREAD_RATE)
        return random.uniform(0.0, min(interval, window))

    async def _execute(
        self, job: ProbeJob, ctx: ProbeContext, planned: float | None = None
    ) -> ProbeResult:
        return (await self._execute_timed(job, ctx, planned))[0]

    async def _execute_timed(
        self, job: ProbeJob, ctx: ProbeContext, planned: float | None = None
    ) -> tuple[ProbeResult, float]:
        """One run through the gate: its result and when it began (after its wait for a slot)."""
        gate = self._gate
        await gate.acquire()
        try:
            started = time.monotonic()
            if planned is not None:
                self._record_lag(max(0.0, started - planned))
            return await self._probe(job, ctx, started), started
        finally:
            gate.release()

    async def _probe(self, job: ProbeJob, ctx: ProbeContext, started: float) -> ProbeResult:
        spec = job.spec
        run_ctx = ctx.for_run()
        deadline = asyncio.timeout(spec.timeout)
        try:
            async with deadline:
                result = await self._registry[spec.type](spec, run_ctx)
        except Exception as exc:
            elapsed = time.monotonic() - started
            if isinstance(exc, TimeoutError) and deadline.expired():
                return self._timed_out(spec, elapsed, run_ctx.run, started)
            if isinstance(exc, OSError) and exc.errno in LOCAL_ERRNOS:
                return local_result(LOCAL_ERRNOS[exc.errno], f"probe error: {exc}", elapsed)
            log.exception("probe %s crashed", "/".join(job.key))
            return ProbeResult(False, f"probe error: {type(exc).__name__}", elapsed)
        kind = None if result.ok else local_fault_of(result.reason)
        if kind is not None:
            return local_result(kind, result.reason, result.duration, result)
        return result

    def _timed_out(
        self, spec: ProbeConfig, elapsed: float, run: ProbeRun, started: float
    ) -> ProbeResult:
        """A run cut by its deadline; a local fault when the loop itself stalled meanwhile."""
        result = timeout_result(spec.timeout, elapsed, run)
        stall = self.watch.worst_stall(started, time.monotonic())
        if stall >= max(LOCAL_LAG_MIN, LOCAL_LAG_SHARE * spec.timeout):
            why = f"event loop stalled {round(stall * 1000)}ms during the run; {result.reason}"
            return local_result("loop_lag", why, elapsed, result)
        return result

    def _record_lag(self, lag: float) -> None:
        self.lag_samples.append(lag)
        if self._on_lag is not None:
            try:
                self._on_lag(lag)
            except Exception:
                log.exception("lag callback failed")

    def _deliver(self, ident: ProbeIdentity, result: ProbeResult, finished_at: float) -> None:
        """Hand one run's result to every job of its group (as the group is now)."""
        for job in self._groups.get(ident, ()):
            try:
                self._on_result(job, result, finished_at)
            except Exception:
                log.exception("result callback failed for %s", "/".join(job.key))


def local_result(
    kind: str, reason: str, elapsed: float, base: ProbeResult | None = None
) -> ProbeResult:
    """A failed run that says nothing about the target: `detail["local_fault"]` names why."""
    text = reason if reason.startswith("local fault") else f"local fault ({kind}): {reason}"
    timings = dict(base.timings) if base is not None else {}
    detail = {**(base.detail if base is not None else {}), "local_fault": kind}
    return ProbeResult(False, text[:300], elapsed, timings, detail)


def timeout_result(timeout: float, elapsed: float, run: ProbeRun) -> ProbeResult:
    """The failed result of a run cut by its deadline: `timeout after 500ms in tls`, with the
    timings of the phases it went through (the cut one counted up to the deadline)."""
    where = f" in {run.phase}" if run.phase else ""
    timings = run.snapshot() if run.phase or run.timings else {}
    if timings:
        timings["total"] = elapsed
    reason = f"timeout after {round(timeout * 1000)}ms{where}"
    return ProbeResult(False, reason, elapsed, timings, dict(run.detail))


class _FastPace:
    """HAProxy's `fastinter` for one probe: after a run whose result differs from the one
    before, the next runs come `fast_interval` apart until as many runs in a row agree as a
    verdict needs (`settle`), then the probe goes back to its phase grid. A primary that dies
    between two runs is then DOWN after one interval at most plus (fall - 1) fast runs,
    instead of fall intervals; fall and rise still count consecutive runs."""

    __slots__ = ("_fast", "_last", "_streak")

    def __init__(self, fast: float | None, last: bool) -> None:
        self._fast = fast
        self._last = last
        self._streak = 0  # runs in a row since the result changed (0: settled)

    def after(self, ok: bool, settle: int) -> float | None:
        """The delay before the next run when it is a fast one, else None (the grid)."""
        changed, self._last = ok != self._last, ok
        if self._fast is None:
            return None
        self._streak = 1 if changed else (self._streak + 1 if self._streak else 0)
        if self._streak and self._streak < settle:
            return self._fast
        self._streak = 0
        return None
