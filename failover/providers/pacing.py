"""A token bucket that serves requests by priority: a DNS write waits only for the rate, never
behind the status polls and listings queued before it; a status poll goes before a listing.

Route 53 allows 5 requests per second per account, writes, reads and GetChange polls alike.
During a mass failover the engine reads records back and polls changes while new batches
are due; served in arrival order, a batch waited behind them (a second and more at 1,000
services). Tokens refill at `rate` per second up to `rate` (bursts included); waiters are
served by priority, then in arrival order; a waiter cancelled before its turn takes none.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

WRITE, STATUS, READ = 0, 1, 2  # priorities: a change, a poll of its status, a listing


class Pacer:
    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self._tokens = self.rate
        self._refilled: float | None = None
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._dispatcher: asyncio.Task[None] | None = None

    async def take(self, priority: int = READ) -> None:
        """Return once this request may be sent (WRITE first, then STATUS, then READ)."""
        self._refill()
        if not self._waiters and self._tokens >= 1.0:
            self._tokens -= 1.0
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), turn))
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch(), name="pacer")
        await turn

    def _refill(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._refilled is not None:
            self._tokens = min(self.rate, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now

    async def _dispatch(self) -> None:
        while self._waiters:
            self._refill()
            if self._tokens < 1.0:
                await asyncio.sleep((1.0 - self._tokens) / self.rate)
                continue
            _, _, turn = heapq.heappop(self._waiters)
            if turn.cancelled():
                continue
            self._tokens -= 1.0
            turn.set_result(None)
