"""Which values belong to what: a target's own values (any non-empty subset for a pool) and
the service's fallback. Every comparison of what DNS serves against the config goes through
here, so pools and the fallback are recognised everywhere (classification, drift, splits)."""

from __future__ import annotations

from failover.config.types import ServiceConfig, TargetConfig
from failover.model import RecordType, values_for_type

# The name a published fallback goes by (decisions, plans, journal, status): not a valid
# target name, so it never collides with one.
FALLBACK = "(fallback)"


def serves(target: TargetConfig, rtype: RecordType, served: tuple[str, ...] | None) -> bool:
    """Do these canonical values belong to `target`? All its values, or for a pool any
    non-empty subset of them."""
    if served is None:
        return False
    want = values_for_type(rtype, target.values)
    if target.pool is None:
        return served == want
    return bool(served) and set(served) <= set(want)


def is_fallback(service: ServiceConfig, rtype: RecordType, served: tuple[str, ...] | None) -> bool:
    """Do these canonical values equal the service's fallback answer for this record type?"""
    fb = service.fallback
    return fb is not None and served is not None and served == values_for_type(rtype, fb.values)


def target_values(service: ServiceConfig, name: str) -> tuple[str, ...] | None:
    """All the values `name` may publish (a target's, or the fallback's); None if unknown."""
    if name == FALLBACK:
        return service.fallback.values if service.fallback is not None else None
    t = service.target(name)
    return t.values if t is not None else None
