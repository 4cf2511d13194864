"""Journal entries: one shape for every decision and action (SPEC §8 `history`)."""

from __future__ import annotations

import asyncio
from typing import Any

from failover.model import Trigger
from failover.store import Store
from failover.timefmt import rfc3339


class Journal:
    """Builds entries and appends them to the store's fsynced journal, off the event loop."""

    def __init__(self, store: Store, instance: str) -> None:
        self.store = store
        self.instance = instance
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
        body = self.entry(*args, **kwargs)
        await asyncio.to_thread(self.store.append, body)
        return body

    def spawn(self, *args: Any, **kwargs: Any) -> None:
        """Write from synchronous code; the task is kept referenced until it is done."""
        task = asyncio.create_task(self.write(*args, **kwargs))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
