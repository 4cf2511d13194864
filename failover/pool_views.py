"""What `status` and the metrics show of pools and of the fallback (views.py calls these).

Kept apart from views.py so the traffic policies read as one unit: a pool target's values with
each one's health and whether DNS serves it, and a service's fallback with whether it is served.
"""

from __future__ import annotations

from typing import Any

from failover.config.types import TargetConfig
from failover.core.health import TargetHealth
from failover.model import canonical_values
from failover.runtime import ServiceRuntime


def served_values(rt: ServiceRuntime) -> set[str]:
    """Every value the service's records serve now, across records and providers."""
    out: set[str] = set()
    for record in rt.config.records:
        rs = (rt.current or {}).get(record.key)
        if rs is None:
            continue
        try:
            out |= set(canonical_values(record.type, rs.values))
        except ValueError:
            continue
    return out


def pool_json(rt: ServiceRuntime, target: TargetConfig) -> dict[str, Any] | None:
    """A pool target's `pool` in `status`: min_up, and each value's health and publication."""
    if target.pool is None:
        return None
    members = rt.members.get(target.name, {})
    active = rt.published.kind == "target" and target.name in (
        rt.published.matches or (rt.published.target,)
    )
    served = served_values(rt) if active else set()
    values: dict[str, Any] = {}
    for value, _ in target.pool.members:
        health = members.get(value)
        values[value] = {
            "health": health.health.value if health else "unknown",
            "reason": health.reason if health else "no probe result yet",
            "published": value in served,
        }
    return {"min_up": target.pool.min_up, "values": values}


def fallback_json(rt: ServiceRuntime, decided: TargetHealth | None = None) -> dict[str, Any] | None:
    """A service's `fallback` in `status`: its values, the policy, whether it is served, its
    health here and the health the decision uses (`decided`: the quorum's with several
    instances; this instance's when not given)."""
    fb = rt.config.fallback
    if fb is None:
        return None
    decided = decided or rt.fallback_health
    return {
        "values": list(fb.values),
        "location": fb.location,
        "policy": rt.config.policy.all_down,
        "active": rt.published.kind == "fallback",
        # with probes, published only while they say it is UP
        "health": rt.fallback_health.health.value if rt.fallback_health else None,
        "reason": rt.fallback_health.reason if rt.fallback_health else None,
        "decided": decided.health.value if decided else None,
    }


def pool_metrics(rt: ServiceRuntime, target: TargetConfig) -> tuple[tuple[str, str, bool], ...]:
    """(value, health, published) of each value of a pool target, for the metrics."""
    body = pool_json(rt, target)
    if body is None:
        return ()
    return tuple((v, m["health"], bool(m["published"])) for v, m in body["values"].items())
