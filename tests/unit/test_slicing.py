"""Sliced work gives the event loop a turn every `limit` seconds, and only then."""

from __future__ import annotations

import asyncio
import time

from failover.slicing import Slicer, Steps, run_sliced, run_whole


def steps(count: int, each: float) -> Steps[int]:
    for _ in range(count):
        end = time.monotonic() + each
        while time.monotonic() < end:  # CPU work, as a big loop body is
            pass
        yield
    return count


async def turns_during(work: asyncio.Future[int] | asyncio.Task[int]) -> int:
    turns = 0

    async def count() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count())
    await asyncio.sleep(0)
    turns = 0
    await work
    counter.cancel()
    return turns


async def test_sliced_work_lets_the_loop_turn_and_returns_its_result() -> None:
    work = asyncio.ensure_future(run_sliced(steps(20, 0.002), limit=0.005))
    assert await turns_during(work) >= 2  # 40 ms of work, 5 ms slices
    assert work.result() == 20


async def test_short_work_does_not_yield() -> None:
    slicer = Slicer(limit=60.0)
    assert not slicer.due()
    assert await slicer.pause() is False


async def test_run_whole_never_yields() -> None:
    async def whole() -> int:
        return run_whole(steps(5, 0.002))

    work = asyncio.ensure_future(whole())
    assert await turns_during(work) <= 1
    assert work.result() == 5
