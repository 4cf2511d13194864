"""The providers' pacer: a token bucket that serves urgent requests (DNS writes) first."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools

import pytest

from failover.providers.pacing import READ, STATUS, WRITE, Pacer


class FakeTime:
    """A clock that moves only when the test says so: sleepers wake in order of their time."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), woken))
        await woken

    def wake_next(self) -> None:
        """Move to the first sleeper's time and wake it, without letting anything run yet."""
        when, _, woken = heapq.heappop(self._sleepers)
        self.now = max(self.now, when)
        woken.set_result(None)

    async def advance(self, seconds: float) -> None:
        """Move to now + `seconds`, waking every sleeper due on the way at its own time."""
        until = self.now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= until + 1e-9:
            when, _, woken = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            woken.set_result(None)
            await settle()
        self.now = until


async def settle() -> None:
    for _ in range(10):  # let woken tasks run and queue what they do next
        await asyncio.sleep(0)


class Turns:
    """A pacer whose bucket is empty, and the order in which named requests get their turn."""

    def __init__(self, pacer: Pacer) -> None:
        self.pacer = pacer
        self.order: list[str] = []

    @classmethod
    async def emptied(cls, rate: int, last: int = STATUS) -> Turns:
        """Every token taken (by polls: a listing leaves a reserve), the last one by a request
        of priority `last`."""
        pacer = Pacer(rate)
        for _ in range(rate):
            await pacer.take(last)
        return cls(pacer)

    def ask(self, name: str, priority: int) -> asyncio.Task[None]:
        async def take() -> None:
            await self.pacer.take(priority)
            self.order.append(name)

        return asyncio.create_task(take())


async def test_a_burst_then_the_rate() -> None:
    pacer = Pacer(20)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.gather(*(pacer.take() for _ in range(30)))
    assert loop.time() - began >= 0.45  # 18 at once (listings leave 2), then 12 at 20 a second


async def test_a_write_then_a_poll_go_before_the_reads_queued_earlier() -> None:
    turns = await Turns.emptied(10)
    reads = [turns.ask(f"read{i}", READ) for i in range(3)]
    await asyncio.sleep(0)
    poll = turns.ask("poll", STATUS)
    await asyncio.sleep(0)
    write = turns.ask("write", WRITE)
    await asyncio.gather(*reads, poll, write)
    assert turns.order == ["write", "poll", "read0", "read1", "read2"]


async def test_writes_and_polls_alternate_while_both_wait() -> None:
    # strictly by priority, every poll waited for the last write of a mass failover
    turns = await Turns.emptied(20)
    tasks = [turns.ask(f"write{i}", WRITE) for i in range(3)]
    tasks += [turns.ask(f"poll{i}", STATUS) for i in range(3)]
    tasks.append(turns.ask("read", READ))
    await asyncio.gather(*tasks)
    assert turns.order == ["write0", "poll0", "write1", "poll1", "write2", "poll2", "read"]


async def test_a_poll_goes_before_a_second_write_in_a_row() -> None:
    turns = await Turns.emptied(10, last=WRITE)  # a write took the last token
    tasks = [turns.ask("write", WRITE), turns.ask("read", READ)]
    await asyncio.sleep(0)
    gone = asyncio.create_task(turns.pacer.take(STATUS))  # cancelled while waiting: no turn
    tasks.append(turns.ask("poll", STATUS))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(*tasks)
    assert turns.order == ["poll", "write", "read"]


async def test_a_cancelled_waiter_is_skipped_and_the_next_one_served() -> None:
    pacer = Pacer(5)
    for _ in range(5):
        await pacer.take(STATUS)
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


async def test_a_listing_leaves_the_reserve_to_a_write_and_its_poll() -> None:
    pacer = Pacer(5)
    reads = [asyncio.create_task(pacer.take(READ)) for _ in range(4)]
    await asyncio.sleep(0)
    assert sum(r.done() for r in reads) == 3  # 5 tokens, 2 kept back: the 4th waits
    write, poll = pacer.take(WRITE), pacer.take(STATUS)
    await asyncio.wait_for(asyncio.gather(write, poll), timeout=0.1)  # no refill needed
    assert not reads[3].done()
    await asyncio.gather(*reads)  # the listing goes on once the bucket holds the reserve again


async def test_a_write_does_not_wait_behind_a_listing_waiting_for_the_reserve() -> None:
    pacer = Pacer(5)
    for _ in range(3):
        await pacer.take(READ)
    listing = asyncio.create_task(pacer.take(READ))  # 2 tokens: below the reserve, it waits
    await asyncio.sleep(0)
    await asyncio.wait_for(pacer.take(WRITE), timeout=0.1)
    assert not listing.done()
    await listing


@pytest.mark.parametrize(("rate", "at_once"), [(1, 1), (2, 1), (3, 1), (5, 3)])
async def test_the_reserve_never_stops_a_slow_account_from_listing(rate: int, at_once: int) -> None:
    # one token a second: a listing may take it; at 2 it leaves one, from 3 on two
    time = FakeTime()
    pacer = Pacer(rate, clock=time.clock, sleep=time.sleep)
    listings = [asyncio.create_task(pacer.take(READ)) for _ in range(at_once + 2)]
    await settle()
    assert sum(t.done() for t in listings) == at_once
    await time.advance(2.0 / rate)  # then one per token, at the full rate
    assert all(t.done() for t in listings)


async def test_a_request_cancelled_after_its_turn_came_gives_the_token_back() -> None:
    time = FakeTime()
    pacer = Pacer(5, clock=time.clock, sleep=time.sleep)
    for _ in range(5):
        await pacer.take(WRITE)
    write = asyncio.create_task(pacer.take(WRITE))
    await settle()  # queued; the dispatcher sleeps until the next token
    time.wake_next()
    await asyncio.sleep(0)  # the dispatcher hands the write its token...
    assert pacer.taken == 6 and not write.done()
    write.cancel()  # ...and the write is cancelled before it resumes (a reload, a timeout)
    with contextlib.suppress(asyncio.CancelledError):
        await write
    assert pacer.refunded == 1  # given back: the next request needs no wait
    await asyncio.wait_for(pacer.take(WRITE), timeout=1)


async def test_a_write_queued_behind_a_listing_is_served_with_the_next_token() -> None:
    # the dispatcher slept until the listing's reserve (0.4 s at 5/s) while a write queued
    # behind a poll that took the last token waited for it too: it is due at the next token
    time = FakeTime()
    pacer = Pacer(5, clock=time.clock, sleep=time.sleep)
    for _ in range(4):
        await pacer.take(STATUS)  # 1 token left
    listing = asyncio.create_task(pacer.take(READ))  # needs 3: waits
    await settle()
    await pacer.take(STATUS)  # a poll takes the last token at once
    write = asyncio.create_task(pacer.take(WRITE))
    await time.advance(0.19)
    assert not write.done()
    await time.advance(0.02)  # the next token: 0.2 s
    assert write.done() and not listing.done()
    await time.advance(0.6)  # then the listing, once 3 tokens are back (0.2 + 0.6 s)
    assert listing.done()


async def test_a_burst_then_the_rate_exactly() -> None:
    time = FakeTime()
    pacer = Pacer(5, clock=time.clock, sleep=time.sleep)
    served: list[float] = []

    async def poll() -> None:
        await pacer.take(STATUS)
        served.append(time.now)

    polls = [asyncio.create_task(poll()) for _ in range(8)]
    await time.advance(1.0)
    await asyncio.gather(*polls)
    assert served == pytest.approx([0.0] * 5 + [0.2, 0.4, 0.6])


async def test_a_refunded_token_is_there_for_the_next_request() -> None:
    time = FakeTime()
    pacer = Pacer(5, clock=time.clock, sleep=time.sleep)
    for _ in range(5):
        await pacer.take(WRITE)
    pacer.refund()  # a write turn no request used
    await asyncio.wait_for(pacer.take(WRITE), timeout=1)  # no time passed: the refund served it
    assert (pacer.taken, pacer.refunded) == (6, 1)
    for _ in range(7):
        pacer.refund()
    for _ in range(5):
        await asyncio.wait_for(pacer.take(WRITE), timeout=1)
    extra = asyncio.create_task(pacer.take(WRITE))  # never more than the bucket holds
    await settle()
    assert not extra.done()
    await time.advance(0.2)
    assert extra.done()
