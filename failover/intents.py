"""JSON form of the per-service state that survives restarts (mode, pin, flap block).

A saved state that no longer fits the configuration (a pin to a removed target) is dropped
with a warning rather than refusing to start: the operator's config is the newer truth. A state
file that does not have the shape `encode_state` writes (a hand edit, another tool, a bug) is
refused instead, naming the key (`saved_services`): starting on it would silently reset every
pin and pause, which is exactly what an operator relies on during an incident.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from failover.config.types import ServiceConfig
from failover.core.decide import Pin, ServiceState
from failover.intents_ops import check_ops, decode_ops, encode_ops
from failover.model import Mode
from failover.store import StoreSchemaError

log = logging.getLogger("failover.intents")


def encode_state(state: ServiceState) -> dict[str, Any]:
    pin = state.pin
    return {
        "mode": state.mode.value,
        "pin": None
        if pin is None
        else {
            "target": pin.target,
            "reason": pin.reason,
            "actor": pin.actor,
            "at": pin.at,
            "force": pin.force,
        },
        "blocked": state.blocked,
        "auto_switches": list(state.auto_switches),
        "last_switch_at": state.last_switch_at,
        "last_auto_switch_at": state.last_auto_switch_at,
        **encode_ops(state.drains, state.switchover),
    }


def decode_state(data: Any, service: ServiceConfig) -> ServiceState:
    if not isinstance(data, dict):
        return ServiceState()
    try:
        mode = Mode(data.get("mode", "auto"))
        raw_pin = data.get("pin")
        pin = None
        if isinstance(raw_pin, dict):
            pin = Pin(
                target=str(raw_pin["target"]),
                reason=str(raw_pin.get("reason", "")),
                actor=str(raw_pin.get("actor", "unknown")),
                at=float(raw_pin.get("at", 0.0)),
                force=bool(raw_pin.get("force", False)),
            )
        if pin is not None and service.target(pin.target) is None:
            log.warning(
                "%s: dropping the saved pin to %s, which is no longer a target",
                service.name,
                pin.target,
            )
            pin = None
            mode = Mode.AUTO if mode is Mode.PINNED else mode
        if mode is Mode.PINNED and pin is None:
            mode = Mode.AUTO
        last = data.get("last_switch_at")
        last_auto = data.get("last_auto_switch_at")
        return ServiceState(
            mode=mode,
            pin=pin,
            blocked=bool(data.get("blocked", False)),
            auto_switches=tuple(float(t) for t in data.get("auto_switches", ())),
            last_switch_at=float(last) if last is not None else None,
            last_auto_switch_at=float(last_auto) if last_auto is not None else None,
            **decode_ops(data, service),
        )
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("%s: ignoring unreadable saved state (%s)", service.name, exc)
        return ServiceState()


STATE_VERSION = 1


class _Mismatch(ValueError):
    pass


def saved_services(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The per-service states of a loaded state file, checked against its schema.

    Accepts every shape written so far: `{}` (first start), no `version`, a service without
    some keys (their defaults apply), `pin: null`; unknown keys are ignored (a newer release
    may add some). Raises StoreSchemaError naming the first key that does not fit."""
    try:
        version = data.get("version", STATE_VERSION)
        if version != STATE_VERSION or isinstance(version, bool):
            raise _Mismatch(f"version must be {STATE_VERSION}, got {version!r}")
        services = data.get("services", {})
        if not isinstance(services, dict):
            raise _Mismatch(
                f"services must be a mapping of service name to state, got {_kind(services)}"
            )
        for name, state in services.items():
            _check_service(state, f"services.{name}")
    except _Mismatch as exc:
        raise StoreSchemaError(path, str(exc)) from None
    return dict(services)


def _check_service(state: Any, where: str) -> None:
    if not isinstance(state, dict):
        raise _Mismatch(f"{where} must be a mapping, got {_kind(state)}")
    mode = state.get("mode", Mode.AUTO.value)
    if mode not in {m.value for m in Mode}:
        choices = ", ".join(m.value for m in Mode)
        raise _Mismatch(f"{where}.mode must be one of {choices}, got {mode!r}")
    pin = state.get("pin")
    if pin is not None:
        if not isinstance(pin, dict):
            raise _Mismatch(f"{where}.pin must be a mapping or null, got {_kind(pin)}")
        if "target" not in pin:
            raise _Mismatch(f"{where}.pin.target is missing")
        for key in ("target", "reason", "actor"):
            _expect(pin, key, f"{where}.pin", _string, "a string")
        _expect(pin, "at", f"{where}.pin", _number, "a number")
        _expect(pin, "force", f"{where}.pin", _boolean, "true or false")
    _expect(state, "blocked", where, _boolean, "true or false")
    switches = state.get("auto_switches", [])
    if not isinstance(switches, list) or not all(_number(t) for t in switches):
        raise _Mismatch(f"{where}.auto_switches must be a list of times, got {_kind(switches)}")
    for key in ("last_switch_at", "last_auto_switch_at"):
        if state.get(key) is not None:
            _expect(state, key, where, _number, "a number or null")
    problem = check_ops(state, where)
    if problem is not None:
        raise _Mismatch(problem)


def _expect(
    data: dict[str, Any], key: str, where: str, check: Callable[[Any], bool], what: str
) -> None:
    """A key may be absent (its default applies); present, it must pass `check`."""
    if key in data and not check(data[key]):
        raise _Mismatch(f"{where}.{key} must be {what}, got {_kind(data[key])}")


def _string(value: Any) -> bool:
    return isinstance(value, str)


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _kind(value: Any) -> str:
    names = {type(None): "null", bool: "a boolean", int: "int", float: "float", str: "a string"}
    names |= {list: "a list", dict: "a mapping"}
    return names.get(type(value), type(value).__name__)
