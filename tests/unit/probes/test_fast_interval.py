"""`fast_interval` (HAProxy's fastinter): after a run whose result changed, the next runs come
fast until as many agree as a verdict needs, then the probe is back on its interval."""

from __future__ import annotations

import asyncio
import itertools
import time

from failover.config.types import HostPort, ProbeConfig, TcpProbeConfig
from failover.model import ProbeResult
from failover.probes.base import ProbeContext
from failover.probes.registry import PROBES
from failover.probes.scheduler import ProbeJob, ProbeScheduler


def job(fast: float | None, settle: int, port: int = 9, interval: float = 1.0) -> ProbeJob:
    spec = TcpProbeConfig("tcp", HostPort("127.0.0.1", port), interval, 0.5, fast_interval=fast)
    return ProbeJob("shop", "primary", spec, settle)


async def run_script(
    fast: float | None, settle: int, script: list[bool], seconds: float
) -> list[float]:
    """Start times of the runs, the results following `script` (then repeating its last)."""
    starts: list[float] = []
    origin = time.monotonic()

    async def scripted(_spec: ProbeConfig, _ctx: ProbeContext) -> ProbeResult:
        ok = script[min(len(starts), len(script) - 1)]
        starts.append(time.monotonic() - origin)
        return ProbeResult(ok, "ok" if ok else "refused", 0.0)

    registry = {"tcp": scripted}
    scheduler = ProbeScheduler([job(fast, settle)], lambda *_: None, jitter=0.0, registry=registry)
    await scheduler.start()
    await asyncio.sleep(seconds)
    await scheduler.aclose()
    return starts


async def test_a_changed_result_is_rechecked_fast_until_the_verdict_settles() -> None:
    # start-up run ok, then the grid run (~1 s) fails: two fast runs (settle 3), then the grid
    starts = await run_script(0.05, 3, [True, False], 2.6)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) >= 5, starts
    assert gaps[0] > 0.5  # the start-up run, then the first grid run
    assert gaps[1] < 0.5 and gaps[2] < 0.5  # the failure, re-checked fast twice
    assert gaps[3] > 0.5  # three failures in a row: back on the interval


async def test_without_fast_interval_runs_stay_an_interval_apart() -> None:
    starts = await run_script(None, 3, [True, False], 2.6)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps and all(gap > 0.5 for gap in gaps), starts


async def test_a_steady_result_never_runs_fast() -> None:
    starts = await run_script(0.05, 3, [True], 2.6)
    assert all(b - a > 0.5 for a, b in itertools.pairwise(starts)), starts


async def test_a_real_port_that_dies_fails_twice_within_one_interval() -> None:
    results: list[tuple[float, bool]] = []
    first = asyncio.Event()

    def deliver(_job: ProbeJob, result: ProbeResult, _at: float) -> None:
        results.append((time.monotonic(), result.ok))
        first.set()

    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    scheduler = ProbeScheduler([job(0.05, 2, port)], deliver, jitter=0.0, registry=PROBES)
    await scheduler.start()
    await first.wait()
    server.close()  # the target dies: connect is refused from now on
    await server.wait_closed()
    await asyncio.sleep(1.6)
    await scheduler.aclose()
    failures = [at for at, ok in results if not ok]
    assert results[0][1] is True and len(failures) >= 2, results
    assert failures[1] - failures[0] < 0.5  # fall 2 reached 50 ms after the first failure
