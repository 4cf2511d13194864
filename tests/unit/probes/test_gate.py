"""The concurrency gate: a bound, first come first served, and no slot lost to cancellation."""

from __future__ import annotations

import asyncio

import pytest

from failover.probes.gate import Gate


async def test_bound_and_fifo_order() -> None:
    gate = Gate(2)
    order: list[int] = []
    holding = 0
    most = 0

    async def worker(i: int) -> None:
        nonlocal holding, most
        await gate.acquire()
        try:
            order.append(i)
            holding += 1
            most = max(most, holding)
            await asyncio.sleep(0.01)
        finally:
            holding -= 1
            gate.release()

    await asyncio.gather(*(worker(i) for i in range(8)))
    assert most == 2
    assert order == list(range(8))  # served in arrival order
    assert gate.waiting == 0


async def test_a_cancelled_waiter_is_skipped_and_loses_no_slot() -> None:
    gate = Gate(1)
    await gate.acquire()
    cancelled = asyncio.ensure_future(gate.acquire())
    served = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    gate.release()  # goes past the cancelled waiter to the live one
    await asyncio.wait_for(served, 1)
    gate.release()
    await asyncio.wait_for(gate.acquire(), 1)  # the slot came back: nothing leaked
    with pytest.raises(asyncio.CancelledError):
        await cancelled


async def test_a_waiter_cancelled_after_being_handed_the_slot_passes_it_on() -> None:
    gate = Gate(1)
    await gate.acquire()
    first = asyncio.ensure_future(gate.acquire())
    second = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    gate.release()  # `first` is handed the slot ...
    first.cancel()  # ... and cancelled before it runs: the slot must go to `second`
    await asyncio.wait_for(second, 1)
    with pytest.raises(asyncio.CancelledError):
        await first
    gate.release()
    await asyncio.wait_for(gate.acquire(), 1)


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Gate(0)
