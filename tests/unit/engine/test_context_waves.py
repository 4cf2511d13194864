"""`Context.locked`: the outcomes a mass failover ends at once are recorded in one turn of the
engine lock, in order, each caller getting its own result or error."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest

from failover.engine.context import Context
from tests.support.locks import CountingLock


def context() -> Context:
    nothing = cast(Any, None)  # `locked` touches only the lock
    return Context(nothing, nothing, {}, nothing, nothing, nothing, {}, lock=CountingLock())


async def test_a_wave_of_records_takes_the_lock_once_in_order() -> None:
    ctx = context()
    ran: list[int] = []

    def record(n: int) -> int:
        ran.append(n)
        return n * 10

    async with ctx.lock:  # a decision cycle holds the lock while 200 changes end
        callers = [asyncio.create_task(ctx.locked(lambda n=n: record(n))) for n in range(200)]
        await asyncio.sleep(0)
    assert await asyncio.gather(*callers) == [n * 10 for n in range(200)]
    assert ran == list(range(200))
    assert cast(CountingLock, ctx.lock).turns == 2  # the cycle's turn, then one for the wave


async def test_an_error_reaches_its_caller_only_and_a_cancelled_caller_is_skipped() -> None:
    ctx = context()
    ran: list[str] = []

    def fail() -> None:
        ran.append("fail")
        raise ValueError("broken record")

    async with ctx.lock:
        failing = asyncio.create_task(ctx.locked(fail))
        gone = asyncio.create_task(ctx.locked(lambda: ran.append("gone")))
        fine = asyncio.create_task(ctx.locked(lambda: ran.append("fine") or "ok"))
        await asyncio.sleep(0)
        gone.cancel()
    with pytest.raises(ValueError, match="broken record"):
        await failing
    assert await fine == "ok"
    assert gone.cancelled() and ran == ["fail", "fine"]


def busy(seconds: float) -> None:
    """Hold the thread (and so the loop) like a heavy record does."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def test_a_long_wave_lets_the_loop_run_between_slices_but_keeps_the_lock() -> None:
    ctx = context()
    seen_locked: list[bool] = []

    async def other_work() -> None:  # a probe or an apply waiting for its turn of the loop
        while True:
            seen_locked.append(ctx.lock.locked())
            await asyncio.sleep(0)

    side = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    seen_locked.clear()
    records = [asyncio.create_task(ctx.locked(lambda: busy(0.002))) for _ in range(20)]
    await asyncio.gather(*records)
    side.cancel()
    assert True in seen_locked  # the loop turned while the wave (40 ms of records) ran
    assert cast(CountingLock, ctx.lock).turns == 1  # ...in one turn of the lock
