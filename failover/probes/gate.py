"""A FIFO bound on probes in flight, cheaper than `asyncio.Semaphore` when thousands wait.

Why: `asyncio.Semaphore` (3.11) removes each woken waiter from its deque by value, O(waiters),
and wakes through a scan; when a burst of runs queues for the concurrency limit that cost grows
with the queue, exactly when the loop is already late. Here a release hands its slot straight
to the oldest live waiter (popleft), and a cancelled waiter is skipped when reached.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Gate:
    """At most `limit` holders; `acquire` waits its turn (first come, first served)."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Waiters queued (cancelled ones not yet skipped included)."""
        return len(self._waiters)

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot, then cancelled before using it: pass it on
            raise

    def release(self) -> None:
        """Give the slot to the oldest live waiter, else free it."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to it: `_free` stays as it is
                return
        self._free += 1
