"""A token bucket that serves requests by priority: a DNS write waits for the rate and at most
one status poll, never behind the listings queued before it; a status poll goes before a listing.

Route 53 allows 5 requests per second per account, writes, reads and GetChange polls alike.
During a mass failover the engine reads records back and polls changes while new batches
are due; served in arrival order, a batch waited behind them (a second and more at 1,000
services). Served strictly by priority, the polls waited behind every batch instead: with
decisions spread over a probe interval, one small batch went out per token, and every change
was confirmed only after the last one (1,000 services: 9 batches, then 9 polls, 3.6 s). So
when writes and polls both wait, they alternate: each batch holds what was decided during
one more token, there are fewer of them, and earlier changes are confirmed while later ones
are still being written. Tokens refill at `rate` per second up to `rate` (bursts included);
waiters are served by priority (with that alternation), then in arrival order; a waiter
cancelled before its turn takes none. A listing never takes the last `READ_RESERVE` tokens:
a periodic re-read of a large zone (34 pages at 10,000 records) used every token as it came,
so the first batch of a failover that began during it waited for the rate; now the batch and
its poll find their tokens, and listings still run at the full rate when nothing else does.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Awaitable, Callable

WRITE, STATUS, READ = 0, 1, 2  # priorities: a change, a poll of its status, a listing
READ_RESERVE = 2.0  # tokens a listing leaves in the bucket: the next write and its poll


class Pacer:
    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`clock` (default: the running loop's) and `sleep` are replaceable so the tests
        can say exactly when each request gets its turn."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self._clock = clock
        self._sleep = sleep
        self.reserve = max(0.0, min(READ_RESERVE, self.rate - 1.0))  # left by reads to the rest
        self._tokens = self.rate
        self._refilled: float | None = None
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._dispatcher: asyncio.Task[None] | None = None
        self._last: int | None = None  # priority of the request that took the last token
        self.taken = 0  # tokens handed out, and given back unused: what the API was sent
        self.refunded = 0

    async def take(self, priority: int = READ) -> None:
        """Return once this request may be sent (WRITE first, then STATUS, then READ)."""
        self._refill()
        if self._tokens >= self._need(priority) and not self._queued_before(priority):
            self._tokens -= 1.0
            self._last = priority
            self.taken += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), turn))
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch(), name="pacer")
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # its turn came, then it was cancelled
                self.refund()  # before it could send anything: the token goes back
            raise

    def _need(self, priority: int) -> float:
        """Tokens the bucket must hold for a request of `priority` to take one."""
        return 1.0 + self.reserve if priority == READ else 1.0

    def _queued_before(self, priority: int) -> bool:
        """A listing waits behind every waiter; a write or a poll only behind another of
        those (a listing waiting for the reserve to refill never holds them back)."""
        return any(p != READ or priority == READ for p, _, t in self._waiters if not t.done())

    def _refill(self) -> None:
        now = self._clock() if self._clock is not None else asyncio.get_running_loop().time()
        if self._refilled is not None:
            self._tokens = min(self.rate, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now

    async def _dispatch(self) -> None:
        while True:
            while self._waiters and self._waiters[0][2].done():  # cancelled: takes no turn
                heapq.heappop(self._waiters)
            if not self._waiters:
                return
            self._refill()
            chosen = self._next()
            need = self._need(chosen[0])
            if self._tokens < need:
                # wake at the next whole token at the latest: a listing waits for the
                # reserve, but a write or poll may queue meanwhile (a request that took the
                # last token before it), and its turn comes with that next token
                target = min(need, math.floor(self._tokens) + 1.0)
                await self._sleep((target - self._tokens) / self.rate)
                continue
            self._waiters.remove(chosen)
            heapq.heapify(self._waiters)
            self._tokens -= 1.0
            self._last = chosen[0]
            self.taken += 1
            chosen[2].set_result(None)

    def refund(self) -> None:
        """A token taken for a request that was never sent goes back (up to the bucket)."""
        self._refill()
        self._tokens = min(self.rate, self._tokens + 1.0)
        self.refunded += 1

    def _next(self) -> tuple[int, int, asyncio.Future[None]]:
        """The first live waiter by priority, except that a status poll goes before a second
        write in a row (the waiters are a handful: a scan is cheaper than a second heap)."""
        if self._waiters[0][0] == WRITE and self._last == WRITE:
            polls = [w for w in self._waiters if w[0] == STATUS and not w[2].done()]
            if polls:
                return min(polls)
        return self._waiters[0]
