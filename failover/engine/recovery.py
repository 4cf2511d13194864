"""Write-ahead intents, and what a restart makes of the ones a crash left open.

Every change is journalled as an `intent` (with its plan) and made durable before any provider
call; its outcome entry carries the same `intent` id. A kill -9 between the two leaves an
intent without an outcome: the provider may or may not have applied it. At the next start,
once a service's records are read back, each open intent is compared with what the providers
serve and its outcome is journalled (`reconciled: true`), so `history` never misses a change
that reached DNS.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from failover.engine.context import Context
from failover.model import RecordKey, RecordSet, RecordType, Trigger, canonical_values
from failover.runtime import ServiceRuntime

log = logging.getLogger("failover.engine")

INTENT = "intent"


def new_intent_id() -> str:
    return uuid.uuid4().hex[:16]


def open_intents(entries: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Intents no outcome entry closes, by service, oldest first."""
    opened: dict[str, dict[str, Any]] = {}
    closed: set[str] = set()
    for entry in entries:
        intent_id = entry.get("intent")
        if not isinstance(intent_id, str):
            continue
        if entry.get("kind") == INTENT:
            opened[intent_id] = dict(entry)
        else:
            closed.add(intent_id)
    by_service: dict[str, list[dict[str, Any]]] = {}
    for intent_id, entry in opened.items():
        if intent_id not in closed and isinstance(entry.get("service"), str):
            by_service.setdefault(entry["service"], []).append(entry)
    return by_service


def compare(
    intent: Mapping[str, Any], current: Mapping[RecordKey, RecordSet | None]
) -> dict[str, bool]:
    """Per provider: does it serve every change of the intent? Raises ValueError/KeyError/
    TypeError on an entry that does not have the shape this version writes."""
    applied: dict[str, bool] = {}
    for change in intent["changes"]:
        rtype = RecordType(change["type"])
        key = RecordKey(change["provider"], change["zone"], change["name"], rtype)
        served = current.get(key)
        try:
            now_serves = canonical_values(rtype, served.values) if served is not None else None
        except ValueError:
            now_serves = None
        wanted = canonical_values(rtype, tuple(change["after"]))
        applied[key.provider] = applied.get(key.provider, True) and now_serves == wanted
    return applied


class Recovery:
    """Holds the intents a previous run left open until their services are read back."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pending: dict[str, list[dict[str, Any]]] = {}

    def load(self, entries: Iterable[Mapping[str, Any]]) -> None:
        found = open_intents(entries)
        self.pending = {name: found[name] for name in found if name in self.ctx.services}
        count = sum(len(v) for v in self.pending.values())
        if count:
            log.warning(
                "%d change(s) were started before the last stop without a recorded outcome;"
                " reconciling each against what the providers serve once read back",
                count,
            )

    async def reconcile(self, rt: ServiceRuntime, now: float) -> None:
        """Journal the outcome of each open intent of `rt` (caller holds the lock)."""
        if rt.current is None or rt.name not in self.pending:
            return
        for intent in self.pending.pop(rt.name):
            try:
                applied = compare(intent, rt.current)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("%s: cannot reconcile intent %s: %s", rt.name, intent.get("intent"), exc)
                continue
            done = sorted(p for p, ok in applied.items() if ok)
            missing = sorted(p for p, ok in applied.items() if not ok)
            result = "error" if not done else ("partial" if missing else "ok")
            to = intent.get("to")
            if result == "ok":
                seen = f"found applied at {', '.join(done)}"
            elif result == "partial":
                seen = f"found applied at {', '.join(done)}, not at {', '.join(missing)}"
            else:
                seen = "not applied at any provider"
            reason = (
                f"reconciled after a restart: the change to {to} started before the last stop"
                f" had no recorded outcome; {seen}"
            )
            try:
                trigger = Trigger(intent.get("trigger", "auto"))
            except ValueError:
                trigger = Trigger.AUTO
            entry = await self.ctx.journal.write(
                rt.name,
                str(intent.get("action") or "switch"),
                trigger,
                reason,
                now,
                frm=intent.get("from"),
                to=to,
                result=result,
                intent=intent.get("intent"),
                reconciled=True,
                changes=intent.get("changes"),
                providers=[{"provider": p, "ok": ok} for p, ok in sorted(applied.items())],
            )
            log.warning("%s: %s", rt.name, reason, extra={"service": rt.name})
            if result != "error":
                rt.last_switch = entry
