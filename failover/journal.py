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
        body = self.entry(*args, **kwargs)
        await asyncio.to_thread(self.store.append, body)
        if self.on_entry is not None:
            try:
                self.on_entry(body)
            except Exception:  # a hook's bug must never fail the action being journalled
                log.exception("journal hook failed on a %s entry", body.get("kind"))
        return body

    def spawn(self, *args: Any, **kwargs: Any) -> None:
        """Write from synchronous code; the task is kept referenced until it is done."""
        task = asyncio.create_task(self.write(*args, **kwargs))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
