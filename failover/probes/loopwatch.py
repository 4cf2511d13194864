"""The event loop's own lag, so a probe that timed out because the loop stalled is not
counted against its target.

Why: when the loop is held (a burst of work, a starved CPU), a probe's response waits in the
socket while its deadline fires: the target answered in time, this process did not look. A
ticker sleeping `TICK` at a time measures how late it wakes; a run whose deadline expired while
the loop stalled for a good part of its timeout is a local fault (engine/inputs.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

TICK = 0.05  # seconds between two wake-ups of the ticker
KEEP = 512  # stalls remembered (only the recent ones matter: a run lasts one timeout at most)
MIN_STALL = 0.02  # lateness below this is ordinary scheduling noise, not recorded


class LoopWatch:
    """Records the loop's stalls as (start, end) on the monotonic clock."""

    def __init__(self, tick: float = TICK) -> None:
        self.tick = tick
        self.stalls: deque[tuple[float, float]] = deque(maxlen=KEEP)
        self.last_beat = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self.last_beat = time.monotonic()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop watch")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            planned = time.monotonic() + self.tick
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            if now - planned >= MIN_STALL:
                self.stalls.append((planned, now))
            self.last_beat = now

    def worst_stall(self, start: float, end: float) -> float:
        """The longest stall overlapping [start, end], counting one still in progress."""
        worst = 0.0
        if self._task is not None:
            worst = max(0.0, time.monotonic() - self.last_beat - self.tick)
        for began, ended in reversed(self.stalls):
            if ended < start:
                break
            if began <= end:
                worst = max(worst, ended - began)
        return worst
