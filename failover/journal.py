"""Journal entries: one shape for every decision and action (SPEC §8 `history`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from failover.model import Trigger
from failover.store import Store
from failover.timefmt import rfc3339

log = logging.getLogger("failover.journal")


class Journal:
    """Builds entries and appends them to the store's fsynced journal, off the event loop.

    `on_entry` sees every entry once it is written (the daemon wires notifications to it): one
    hook point, since every event worth telling is journalled. It must not block.
    """

    def __init__(
        self,
        store: Store,
        instance: str,
        on_entry: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.store = store
        self.instance = instance
        self._queued: list[dict[str, Any]] = []
        self._state: tuple[Callable[[], Any], Callable[[Any], None]] | None = None
        self._seq = 0  # queued items (entries or state saves) so far
        self._done = 0  # of which durable
        self._committer: asyncio.Task[None] | None = None
        self.on_entry = on_entry
        self._background: set[asyncio.Task[dict[str, Any]]] = set()

    def entry(
        self,
        service: str,
        kind: str,
        trigger: Trigger,
        reason: str,
        now: float,
        *,
        frm: str | None = None,
        to: str | None = None,
        actor: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "time": rfc3339(now),
            "ts": now,
            "instance": self.instance,
            "service": service,
            "kind": kind,
            "trigger": trigger.value,
            "actor": actor or f"failover@{self.instance}",
            "from": frm,
            "to": to,
            "reason": reason,
        }
        body.update({k: v for k, v in extra.items() if v is not None})
        return body

    async def write(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Append an entry and return once it is on disk (through the group commit, so the
        journal keeps the order in which entries were made)."""
        body = self.enqueue(*args, **kwargs)
        await self.sync()
        return body

    # -- group commit: many entries and one state snapshot per write+fsync ---------------------

    def enqueue(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Queue an entry for the next group commit; `sync()` waits until it is on disk.

        Used where many writes happen under the engine's lock (a mass failover): the lock is
        released before anyone waits for the disk, so 1,000 switches cost a few fsyncs instead
        of 1,000 serialised ones."""
        body = self.entry(*args, **kwargs)
        self._queued.append(body)
        self._seq += 1
        self._kick()
        return body

    def mark_state(self, snapshot: Callable[[], Any], write: Callable[[Any], None]) -> None:
        """Have the next group commit save the state (snapshot taken at commit time)."""
        self._state = (snapshot, write)
        self._seq += 1
        self._kick()

    async def sync(self) -> None:
        """Return once everything queued before this call is durable."""
        target = self._seq
        while self._done < target:
            self._kick()
            assert self._committer is not None
            await asyncio.shield(self._committer)

    def _kick(self) -> None:
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit())

    async def _commit(self) -> None:
        while self._done < self._seq:
            target = self._seq
            entries, self._queued = self._queued, []
            state, self._state = self._state, None
            snapshot = state[0]() if state is not None else None
            await asyncio.to_thread(self._write_batch, entries, state, snapshot)
            self._done = target
            for body in entries:
                self._notify(body)

    def _write_batch(
        self,
        entries: list[dict[str, Any]],
        state: tuple[Callable[[], Any], Callable[[Any], None]] | None,
        snapshot: Any,
    ) -> None:
        if state is not None:
            state[1](snapshot)
        self.store.append_many(entries)

    def _notify(self, body: dict[str, Any]) -> None:
        if self.on_entry is not None:
            try:
                self.on_entry(body)
            except Exception:  # a hook's bug must never fail the action being journalled
                log.exception("journal hook failed on a %s entry", body.get("kind"))

    def spawn(self, *args: Any, **kwargs: Any) -> None:
        """Write from synchronous code; the task is kept referenced until it is done."""
        task = asyncio.create_task(self.write(*args, **kwargs))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
