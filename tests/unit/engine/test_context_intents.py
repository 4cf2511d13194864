"""`Context._intents_snapshot`: the intents handed to the store, and which of them the store
needs to look at (`changed`): the services named since the last snapshot whose state
changed, or every one (None) on a full scan, so a change nobody named is saved all the same."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any, cast

from failover.core.decide import Mode, ServiceState
from failover.engine import context as context_module
from failover.engine.context import Context
from failover.store import ServiceBodies


def context(names: list[str]) -> Context:
    nothing = cast(Any, None)
    services = {n: cast(Any, SimpleNamespace(state=ServiceState())) for n in names}
    ctx = Context(nothing, nothing, {}, nothing, nothing, nothing, {}, services=services)
    ctx.journal = cast(Any, SimpleNamespace(mark_state=lambda *_: None))
    ctx.coord = cast(Any, SimpleNamespace(save_intents=lambda _: None))
    return ctx


def test_a_named_change_is_all_the_store_is_told_to_look_at() -> None:
    ctx = context(["a", "b", "c"])
    first = ctx._intents_snapshot()
    assert isinstance(first, ServiceBodies) and first.changed is None  # the first: full
    ctx.services["b"].state = dataclasses.replace(ServiceState(), mode=Mode.PAUSED)
    ctx.save_intents_soon("b")
    ctx.save_intents_soon("c")  # named, but its state did not change
    second = ctx._intents_snapshot()
    assert second.changed == frozenset({"b"})
    assert second["b"] is not first["b"] and second["a"] is first["a"]


def test_a_change_nobody_named_is_found_by_the_next_full_scan(monkeypatch: Any) -> None:
    ctx = context(["a", "b"])
    ctx._intents_snapshot()
    ctx.services["a"].state = dataclasses.replace(ServiceState(), mode=Mode.PAUSED)
    assert "a" not in ctx._intents_snapshot().changed  # type: ignore[operator]
    monkeypatch.setattr(context_module, "FULL_SCAN_EVERY", 0.0)
    full = ctx._intents_snapshot()
    assert full.changed is None and full["a"]["mode"] == "paused"
