"""An asyncio lock that counts how often it was taken: how the engine tests see its turns."""

from __future__ import annotations

import asyncio


class CountingLock(asyncio.Lock):
    def __init__(self) -> None:
        super().__init__()
        self.turns = 0

    async def acquire(self) -> bool:
        self.turns += 1
        return await super().acquire()
