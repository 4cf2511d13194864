"""`Journal.sync` waits for the commit round that carries its entries, never for the journal
to fall quiet: under a steady flow of entries (a mass failover) the committer runs for seconds,
and a decision cycle that waited for it stopped deciding for hundreds of milliseconds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from failover.journal import Journal
from failover.model import Trigger
from failover.store import Store


class SlowStore(Store):
    """A real store whose appends take a little while (a busy disk)."""

    def append_lines(self, lines: list[bytes]) -> None:
        time.sleep(0.005)
        super().append_lines(lines)


async def test_sync_returns_while_entries_keep_coming(tmp_path: Path) -> None:
    store = SlowStore(tmp_path)
    journal = Journal(store, "fo-a")
    stop = asyncio.Event()

    async def flow() -> int:
        n = 0
        while not stop.is_set():
            journal.enqueue("svc", "verify", Trigger.AUTO, f"flow {n}", float(n))
            n += 1
            await asyncio.sleep(0.001)
        return n

    producer = asyncio.create_task(flow())
    await asyncio.sleep(0.05)  # the committer is busy with the flow
    journal.enqueue("shop", "switch", Trigger.AUTO, "mine", 1.0, to="secondary")
    async with asyncio.timeout(10):  # the old sync waited for the flow to stop: never
        await journal.sync()
    assert not producer.done()  # returned while the journal was still busy
    assert "mine" in store.journal_path.read_text()  # and its entry is on disk
    stop.set()
    await producer
    await journal.sync()
    await journal.close()
