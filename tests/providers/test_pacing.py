"""The providers' pacer: a token bucket that serves urgent requests (DNS writes) first."""

from __future__ import annotations

import asyncio

import pytest

from failover.providers.pacing import READ, STATUS, WRITE, Pacer


async def test_a_burst_then_the_rate() -> None:
    pacer = Pacer(20)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.gather(*(pacer.take() for _ in range(30)))
    assert loop.time() - began >= 0.45  # 20 at once, then 10 more at 20 per second


async def test_a_write_then_a_poll_go_before_the_reads_queued_earlier() -> None:
    pacer = Pacer(10)
    for _ in range(10):
        await pacer.take()  # the bucket is empty
    order: list[str] = []

    async def take(name: str, priority: int) -> None:
        await pacer.take(priority)
        order.append(name)

    reads = [asyncio.create_task(take(f"read{i}", READ)) for i in range(3)]
    await asyncio.sleep(0)
    poll = asyncio.create_task(take("poll", STATUS))
    await asyncio.sleep(0)
    write = asyncio.create_task(take("write", WRITE))
    await asyncio.gather(*reads, poll, write)
    assert order == ["write", "poll", "read0", "read1", "read2"]


async def test_writes_and_polls_alternate_while_both_wait() -> None:
    # strictly by priority, every poll waited for the last write of a mass failover
    pacer = Pacer(20)
    for _ in range(20):
        await pacer.take()  # the bucket is empty
    order: list[str] = []

    async def take(name: str, priority: int) -> None:
        await pacer.take(priority)
        order.append(name)

    tasks = [asyncio.create_task(take(f"write{i}", WRITE)) for i in range(3)]
    tasks += [asyncio.create_task(take(f"poll{i}", STATUS)) for i in range(3)]
    tasks.append(asyncio.create_task(take("read", READ)))
    await asyncio.gather(*tasks)
    assert order == ["write0", "poll0", "write1", "poll1", "write2", "poll2", "read"]


async def test_a_poll_goes_before_a_second_write_in_a_row() -> None:
    pacer = Pacer(10)
    for _ in range(10):
        await pacer.take(WRITE)  # the bucket is empty, and a write took the last token
    order: list[str] = []

    async def take(name: str, priority: int) -> None:
        await pacer.take(priority)
        order.append(name)

    tasks = [asyncio.create_task(take("write", WRITE)), asyncio.create_task(take("read", READ))]
    await asyncio.sleep(0)
    gone = asyncio.create_task(pacer.take(STATUS))  # a poll cancelled while waiting: no turn
    tasks.append(asyncio.create_task(take("poll", STATUS)))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(*tasks)
    assert order == ["poll", "write", "read"]


async def test_a_cancelled_waiter_is_skipped_and_the_next_one_served() -> None:
    pacer = Pacer(5)
    for _ in range(5):
        await pacer.take()
    gone = asyncio.create_task(pacer.take(WRITE))
    await asyncio.sleep(0)
    gone.cancel()
    served = asyncio.create_task(pacer.take())
    await asyncio.wait_for(served, timeout=30)  # the dispatcher did not stop at the dead one
    assert gone.cancelled() and served.done()
    await pacer.take()  # and it goes on pacing afterwards


def test_the_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)
