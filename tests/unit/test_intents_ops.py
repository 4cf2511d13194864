"""Drains and switchovers survive the state file like pins (intents.py, intents_ops.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from failover import intents
from failover.core.decide import ServiceState
from failover.core.ops import STEP_LOWERED, Drain, Switchover
from failover.store import StoreSchemaError
from tests.unit.core.conftest import build_service

SHOP = build_service()
SW = Switchover("ovh", "move", "alice", 30, STEP_LOWERED, 123.0, 100.0, "aws", 300)


def test_round_trip() -> None:
    state = ServiceState(drains=(Drain("aws", "kernel", "bob", 1.0, 7201.0),), switchover=SW)
    encoded = intents.encode_state(state)
    assert intents.saved_services({"services": {"shop": encoded}}, Path("s")) == {"shop": encoded}
    assert intents.decode_state(encoded, SHOP) == state


def test_old_files_and_removed_targets() -> None:
    assert intents.decode_state({"mode": "auto"}, SHOP) == ServiceState()  # before drains
    data = intents.encode_state(ServiceState(drains=(Drain("gone", "x", "bob", 1.0),)))
    assert intents.decode_state(data, SHOP).drains == ()


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"drains": "aws"}, "services.shop.drains must be a list"),
        ({"drains": [{"reason": "x"}]}, "services.shop.drains[0] must be a mapping with a target"),
        ({"switchover": {"target": "ovh", "step": "dancing"}}, "needs a target and a step"),
        ({"switchover": {"target": "ovh", "step": "lowered", "ttl": "30"}}, "next_at"),
    ],
)
def test_a_shape_never_written_is_refused(patch: dict[str, object], expected: str) -> None:
    with pytest.raises(StoreSchemaError) as info:
        intents.saved_services({"services": {"shop": {"mode": "auto", **patch}}}, Path("s"))
    assert expected in str(info.value)
