"""Open intents and their comparison with what the providers serve (engine/recovery.py)."""

from __future__ import annotations

from failover.engine.recovery import compare, open_intents
from failover.model import RecordKey, RecordSet, RecordType

KEY_OVH = RecordKey("ovh", "example.com", "shop.example.com", RecordType.A)
KEY_R53 = RecordKey("route53", "example.com", "shop.example.com", RecordType.A)


def change(key: RecordKey, *after: str) -> dict[str, object]:
    return {"provider": key.provider, "zone": key.zone, "name": key.name, "type": "A",
            "ttl": 60, "before": None, "after": list(after)}  # fmt: skip


INTENT = {"kind": "intent", "service": "shop", "intent": "i1", "to": "ovh",
          "changes": [change(KEY_OVH, "192.0.2.7"), change(KEY_R53, "192.0.2.7")]}  # fmt: skip


def test_an_intent_with_an_outcome_is_closed() -> None:
    entries = [
        INTENT,
        {"kind": "switch", "service": "shop", "intent": "i1"},
        {**INTENT, "intent": "i2"},
        {"kind": "pin", "service": "shop"},
        {**INTENT, "service": "api", "intent": "i3"},
        {"kind": "intent", "service": 5, "intent": "i4"},  # not a service name: ignored
    ]
    found = open_intents(entries)
    assert {name: [e["intent"] for e in v] for name, v in found.items()} == {
        "shop": ["i2"],
        "api": ["i3"],
    }


def test_compare_per_provider_in_canonical_form() -> None:
    current: dict[RecordKey, RecordSet | None] = {
        KEY_OVH: RecordSet(KEY_OVH.name, RecordType.A, 60, ("192.0.2.7",)),
        KEY_R53: RecordSet(KEY_R53.name, RecordType.A, 60, ("198.51.100.1",)),
    }
    assert compare(INTENT, current) == {"ovh": True, "route53": False}
    current[KEY_R53] = None
    assert compare(INTENT, current) == {"ovh": True, "route53": False}
    current[KEY_R53] = RecordSet(KEY_R53.name, RecordType.A, 30, ("192.0.2.7",))
    assert compare(INTENT, current) == {"ovh": True, "route53": True}


def test_history_shows_an_intent_only_while_it_has_no_outcome() -> None:
    from failover.render import history_text

    base = {"time": "2026-12-05T07:00:00Z", "service": "shop", "trigger": "auto", "to": "ovh"}
    done = [
        {**base, "kind": "intent", "intent": "i1", "reason": "r"},
        {**base, "kind": "switch", "intent": "i1", "result": "ok", "reason": "r"},
    ]
    assert "intent" not in history_text(done)
    crashed = [{**base, "kind": "intent", "intent": "i2", "reason": "r"}]
    assert "[no outcome yet]" in history_text(crashed)
    reconciled = [
        *crashed,
        {**base, "kind": "switch", "intent": "i2", "result": "ok", "reconciled": True,
         "reason": "reconciled", "providers": [{"provider": "ovh", "ok": True}]},
    ]  # fmt: skip
    text = history_text(reconciled)
    assert "no outcome yet" not in text and "ovh: serves it (read back)" in text
