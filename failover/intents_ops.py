"""JSON form of the drains and the planned switchover kept with a service's pin (intents.py).

Kept apart so the pin's codec stays small; the same rules apply: a saved intent that no longer
fits the configuration (a drain of a removed target) is dropped with a warning, a shape that
`encode_ops` never writes is refused by `check_ops` (the state file's schema check).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from typing import Any

from failover.config.types import ServiceConfig
from failover.core.ops import STEPS, Drain, Switchover

log = logging.getLogger("failover.intents")


def encode_ops(drains: tuple[Drain, ...], switchover: Switchover | None) -> dict[str, Any]:
    return {
        "drains": [asdict(d) for d in drains],
        "switchover": asdict(switchover) if switchover is not None else None,
    }


def decode_ops(data: dict[str, Any], service: ServiceConfig) -> dict[str, Any]:
    """`drains` and `switchover` for ServiceState(**...); unreadable parts are dropped."""
    drains: list[Drain] = []
    for raw in data.get("drains") or ():
        try:
            d = Drain(
                target=str(raw["target"]),
                reason=str(raw.get("reason", "")),
                actor=str(raw.get("actor", "unknown")),
                at=float(raw.get("at", 0.0)),
                until=float(raw["until"]) if raw.get("until") is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: ignoring an unreadable saved drain (%s)", service.name, exc)
            continue
        if service.target(d.target) is None:
            log.warning("%s: dropping the drain of %s, no longer a target", service.name, d.target)
            continue
        drains.append(d)
    switchover = None
    raw_sw = data.get("switchover")
    if isinstance(raw_sw, dict):
        try:
            switchover = Switchover(
                target=str(raw_sw["target"]),
                reason=str(raw_sw.get("reason", "")),
                actor=str(raw_sw.get("actor", "unknown")),
                ttl=int(raw_sw["ttl"]),
                step=str(raw_sw["step"]),
                next_at=float(raw_sw["next_at"]),
                created_at=float(raw_sw.get("created_at", 0.0)),
                origin=str(raw_sw["origin"]) if raw_sw.get("origin") is not None else None,
                old_ttl=int(raw_sw.get("old_ttl", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: ignoring an unreadable saved switchover (%s)", service.name, exc)
        else:
            if switchover.step not in STEPS:
                log.warning("%s: ignoring a switchover at unknown step", service.name)
                switchover = None
            elif service.target(switchover.target) is None:  # the TTL still needs restoring
                log.warning(
                    "%s: the switchover target %s is no longer a target; restoring the TTL",
                    service.name,
                    switchover.target,
                )
    return {"drains": tuple(drains), "switchover": switchover}


def check_ops(state: dict[str, Any], where: str) -> str | None:
    """The first key of `drains` / `switchover` that does not fit, as a message; else None."""
    drains = state.get("drains", [])
    if drains is not None:
        if not isinstance(drains, list):
            return f"{where}.drains must be a list, got {type(drains).__name__}"
        for i, d in enumerate(drains):
            at = f"{where}.drains[{i}]"
            if not isinstance(d, dict) or not isinstance(d.get("target"), str):
                return f"{at} must be a mapping with a target"
            if not _number(d.get("at", 0.0)) or not (d.get("until") is None or _number(d["until"])):
                return f"{at}.at and .until must be times"
    sw = state.get("switchover")
    if sw is not None:
        if not isinstance(sw, dict):
            return f"{where}.switchover must be a mapping or null"
        if not isinstance(sw.get("target"), str) or sw.get("step") not in STEPS:
            return f"{where}.switchover needs a target and a step ({', '.join(STEPS)})"
        if not _number(sw.get("next_at")) or not isinstance(sw.get("ttl"), int):
            return f"{where}.switchover.next_at must be a time and .ttl an integer"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
