"""state.json must have the shape the daemon writes: otherwise refuse to start, naming the key.

Issue 10 finding 7: `{"services": 5}` used to be accepted silently, resetting every pin and
pause. Every shape written so far must still load (`{}`, a service missing keys, `pin: null`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from failover import intents
from failover.core.decide import Pin, ServiceState
from failover.model import Mode
from failover.store import StoreCorruptError, StoreSchemaError

REPO = Path(__file__).resolve().parents[2]
PATH = Path("/var/lib/failover/state.json")
FULL = intents.encode_state(
    ServiceState(
        mode=Mode.PINNED,
        pin=Pin("secondary", "incident 42", "alice@host", 1.5e9, force=True),
        blocked=True,
        auto_switches=(1.0, 2.5),
        last_switch_at=2.5,
        last_auto_switch_at=2,
    )
)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"version": 1},
        {"version": 1, "services": {}},
        {"services": {"shop": FULL}},
        {"version": 1, "services": {"shop": FULL, "blog": intents.encode_state(ServiceState())}},
        {"services": {"shop": {}}},
        {"services": {"shop": {"mode": "paused", "pin": None}}},
        {"services": {"shop": {"pin": {"target": "secondary"}}}},
        {"services": {"shop": {**FULL, "a_future_key": [1]}}, "another": "ignored"},
    ],
)
def test_every_shape_written_so_far_loads(data: dict[str, Any]) -> None:
    assert intents.saved_services(data, PATH) == data.get("services", {})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"services": 5}, "services must be a mapping of service name to state, got int"),
        ({"services": None}, "services must be a mapping of service name to state, got null"),
        ({"services": ["shop"]}, "got a list"),
        ({"version": 2}, "version must be 1, got 2"),
        ({"version": True}, "version must be 1, got True"),
        ({"services": {"shop": []}}, "services.shop must be a mapping, got a list"),
        ({"services": {"shop": {"mode": "asleep"}}}, "services.shop.mode must be one of"),
        ({"services": {"shop": {"pin": "secondary"}}}, "services.shop.pin must be a mapping"),
        ({"services": {"shop": {"pin": {"reason": "x"}}}}, "services.shop.pin.target is missing"),
        ({"services": {"shop": {"pin": {"target": 3}}}}, "services.shop.pin.target must be a"),
        (
            {"services": {"shop": {"pin": {"target": "s", "at": "noon"}}}},
            "services.shop.pin.at must be a number, got a string",
        ),
        ({"services": {"shop": {"blocked": "no"}}}, "services.shop.blocked must be true or false"),
        ({"services": {"shop": {"auto_switches": 3}}}, "services.shop.auto_switches must be"),
        ({"services": {"shop": {"auto_switches": [True]}}}, "services.shop.auto_switches"),
        (
            {"services": {"shop": {"last_switch_at": "yesterday"}}},
            "services.shop.last_switch_at must be a number or null",
        ),
    ],
)
def test_a_mismatch_is_refused_naming_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(StoreSchemaError) as info:
        intents.saved_services(data, PATH)
    text = str(info.value)
    assert message in text
    assert str(PATH) in text and "does not match its schema" in text
    assert "move it aside" in text  # what to do
    assert isinstance(info.value, StoreCorruptError)  # exits like any corrupt state file


def test_the_daemon_refuses_to_start_on_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_text('{"services": 5}')
    config = tmp_path / "failover.yaml"
    config.write_text(
        f"""
instance: {{name: t, location: lab, state_dir: "{state}"}}
admin: {{socket: "{tmp_path / "admin.sock"}"}}
providers:
  lab: {{type: builtin, listen: "127.0.0.1:0", verify: false}}
services:
  shop:
    records: [{{provider: lab, zone: example.test, name: shop.example.test, type: A}}]
    targets:
      - name: a
        location: x
        values: [192.0.2.1]
        probes: [{{type: tcp, address: "127.0.0.1:9"}}]
"""
    )
    result = subprocess.run(
        [sys.executable, "-m", "failover", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{state / 'state.json'} does not match its schema" in result.stderr
    assert "services must be a mapping of service name to state, got int" in result.stderr
    assert json.loads((state / "state.json").read_text()) == {"services": 5}  # never reset
