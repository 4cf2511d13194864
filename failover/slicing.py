"""Long work on the event loop gives way every few milliseconds.

Why: at 10,000 services one piece of bookkeeping (ending 4,000 switches, building the metrics
view, reading 10,000 verification answers) ran for up to a second without letting the loop
turn. Probes in flight then missed their deadline for a reason on this host, the local-fault
guard rightly saw a stalled loop, and every failover waited ~30 s for it to clear. A `Slicer`
measures how long the current piece has held the loop and yields to it once `SLICE` has gone
by; work that is already short never yields.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import TypeVar

SLICE = 0.005
"""Seconds a piece of work keeps the loop before letting others run (I/O in flight, probes)."""

T = TypeVar("T")

Steps = Generator[None, None, T]
"""Work written as a generator: it yields (None) between items, returns its result."""


class Slicer:
    """Counts the time since the loop last turned; `pause()` gives way when a slice is used."""

    __slots__ = ("_began", "limit")

    def __init__(self, limit: float = SLICE) -> None:
        self.limit = limit
        self._began = time.monotonic()

    def due(self) -> bool:
        """This slice is used up: the caller should give way (sync callers: return and be
        called again)."""
        return time.monotonic() - self._began >= self.limit

    async def pause(self) -> bool:
        """Let the loop run other work if this slice is used up; True when it did."""
        now = time.monotonic()
        if now - self._began < self.limit:
            return False
        await asyncio.sleep(0)
        self._began = time.monotonic()
        return True


def run_whole(steps: Steps[T]) -> T:
    """Run sliced work to its end without giving way (outside the loop, or when it must be
    one consistent snapshot)."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


async def run_sliced(steps: Steps[T], limit: float = SLICE) -> T:
    """Run sliced work on the loop, giving way every `limit` seconds."""
    slicer = Slicer(limit)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        await slicer.pause()
