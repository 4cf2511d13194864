"""JSON form of the per-service state that survives restarts (mode, pin, flap block).

A saved state that no longer fits the configuration (a pin to a removed target) is dropped
with a warning rather than refusing to start: the operator's config is the newer truth.
"""

from __future__ import annotations

import logging
from typing import Any

from failover.config.types import ServiceConfig
from failover.core.decide import Pin, ServiceState
from failover.model import Mode

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
        )
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("%s: ignoring unreadable saved state (%s)", service.name, exc)
        return ServiceState()
