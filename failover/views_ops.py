"""What `status` and the metrics show of drains and planned switchovers (engine/drain.py,
engine/switchover.py): added to the views the engine already builds (views.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from failover.core import drain as drain_rules
from failover.core.ops import STEP_LOWERED, STEP_RESTORE, STEP_SCHEDULED, STEP_SWITCHED, Switchover
from failover.runtime import ServiceRuntime
from failover.timefmt import rfc3339

NEXT = {
    STEP_SCHEDULED: "lower the TTL",
    STEP_LOWERED: "switch",
    STEP_SWITCHED: "restore the TTL",
    STEP_RESTORE: "restore the TTL",
}


def switchover_json(sw: Switchover | None) -> dict[str, Any] | None:
    """What `status` shows of a switchover: its step and when the next one is due."""
    if sw is None:
        return None
    return {
        "target": sw.target,
        "reason": sw.reason,
        "actor": sw.actor,
        "ttl": sw.ttl,
        "old_ttl": sw.old_ttl or None,
        "origin": sw.origin,
        "step": sw.step,
        "next_step": NEXT[sw.step],
        "next_at": rfc3339(sw.next_at),
        "created_at": rfc3339(sw.created_at),
    }


def drains_json(rt: ServiceRuntime, now: float) -> dict[str, Any]:
    """The targets drained now, by name: why, by whom (or which window), since and until."""
    return {
        name: {
            "reason": d.reason,
            "source": d.source,
            "actor": d.actor,
            "since": rfc3339(d.since),
            "until": rfc3339(d.until) if d.until is not None else None,
        }
        for name, d in drain_rules.drained(rt.config, rt.state, now).items()
    }


def with_ops(
    body: dict[str, Any], services: Mapping[str, ServiceRuntime], now: float
) -> dict[str, Any]:
    """The status body with `drains` and `switchover` per service, `drained` per target."""
    for name, view in body.get("services", {}).items():
        rt = services.get(name)
        if rt is None:
            continue
        drains = drains_json(rt, now)
        view["drains"] = drains
        view["switchover"] = switchover_json(rt.state.switchover)
        for target, tview in view.get("targets", {}).items():
            tview["drained"] = drains.get(target)
    return body


def drained_view(
    services: Mapping[str, ServiceRuntime], now: float
) -> tuple[tuple[str, str, bool], ...]:
    """(service, target, drained) for every target: the `failover_target_drained` gauge."""
    out: list[tuple[str, str, bool]] = []
    for name, rt in services.items():
        drains = drain_rules.drained(rt.config, rt.state, now)
        out.extend((name, t.name, t.name in drains) for t in rt.config.targets)
    return tuple(out)
