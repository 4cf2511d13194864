"""A planned switchover: lower the TTL, wait out the old one, switch, restore the TTL. Pure.

The engine (`engine/switchover.py`) carries the steps out; here are the plans it submits and
the times it waits, computed from the state alone so a restart mid-way resumes exactly:

  scheduled --(at)--> lower the TTL of the published records to `ttl`
  lowered   --(old TTL elapsed)--> pin the target and publish it with the short TTL, verified
  switched  --(ttl elapsed after verification)--> restore
  restore   --> publish the configured TTL again (same values); done

Every failure goes to `restore`: whatever happened, the short TTL is never left behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from failover.config.types import ServiceConfig
from failover.core.health import TargetHealth
from failover.core.ops import (
    STEP_LOWERED,
    STEP_RESTORE,
    STEP_SCHEDULED,
    STEP_SWITCHED,
    Switchover,
)
from failover.core.plan import RULE_TARGET_NOT_UP, RULE_UNKNOWN_TARGET, Plan, Violation
from failover.model import Change, Health, RecordKey, RecordSet, Trigger, values_for_type

RULE_ALREADY_ACTIVE = "already-active"
RULE_IN_PROGRESS = "switchover-in-progress"
RULE_TTL_NOT_SHORTER = "ttl-not-shorter"
MIN_TTL = 1


def ttl_plan(
    service: ServiceConfig,
    target: str,
    current: Mapping[RecordKey, RecordSet | None],
    ttl: int,
    reason: str,
    values: tuple[str, ...] | None = None,
) -> Plan:
    """The changes that make every record serve `target` with `ttl` (a TTL-only change when the
    values already match): `values` when given (a pool's subset), else all the target's.
    Raises ValueError for an unknown target."""
    t = service.target(target)
    if t is None:
        raise ValueError(f"{target!r} is not a target of service {service.name!r}")
    changes: list[Change] = []
    for record in service.records:
        desired = values_for_type(record.type, t.values if values is None else values)
        rs = current.get(record.key)
        if rs is not None and tuple(sorted(rs.values)) == tuple(sorted(desired)) and rs.ttl == ttl:
            continue
        before = rs.values if rs is not None else None
        changes.append(Change(key=record.key, ttl=ttl, before=before, after=desired))
    return Plan(service.name, target, Trigger.MANUAL, reason, tuple(changes))


def keep_short_ttl(
    plan: Plan, sw: Switchover | None, current: Mapping[RecordKey, RecordSet | None]
) -> Plan:
    """While a switchover holds the short TTL (lowered, switched), any other change (a pool's
    subset, an automatic switch) is published with it too: only the restore step brings the
    configured TTL back, once `--ttl` has elapsed. A change left with nothing to do is dropped."""
    if sw is None or sw.step not in (STEP_LOWERED, STEP_SWITCHED):
        return plan
    changes: list[Change] = []
    for c in plan.changes:
        rs = current.get(c.key)
        if rs is not None and rs.ttl == sw.ttl and sorted(rs.values) == sorted(c.after):
            continue
        changes.append(replace(c, ttl=sw.ttl))
    return replace(plan, changes=tuple(changes))


def longest_ttl(service: ServiceConfig, current: Mapping[RecordKey, RecordSet | None]) -> int:
    """How long resolvers may cache the answer served before the TTL was lowered: the longest of
    the configured TTLs and those read (a record edited by hand may hold a longer one)."""
    read = [rs.ttl for rs in current.values() if rs is not None]
    return max([*read, *(r.ttl for r in service.records)], default=0)


def check(
    service: ServiceConfig,
    health: Mapping[str, TargetHealth],
    target: str,
    active: str | None,
    running: Switchover | None,
) -> list[Violation]:
    """Why a switchover to `target` may not start: `health` is what decisions read (a drained
    target is DOWN there)."""
    out: list[Violation] = []
    if service.target(target) is None:
        names = ", ".join(t.name for t in service.targets)
        out.append(Violation(RULE_UNKNOWN_TARGET, f"{target} is not a target ({names})"))
        return out
    th = health.get(target)
    if th is None or th.health != Health.UP:
        state = Health(th.health).name if th is not None else "UNKNOWN"
        why = f" ({th.reason})" if th is not None and th.reason else ""
        out.append(Violation(RULE_TARGET_NOT_UP, f"{target} is {state}{why}"))
    if active == target:
        out.append(Violation(RULE_ALREADY_ACTIVE, f"{service.name} already serves {target}"))
    if running is not None:
        out.append(
            Violation(
                RULE_IN_PROGRESS,
                f"a switchover to {running.target} is in progress (step {running.step})",
            )
        )
    return out


def new(target: str, reason: str, actor: str, ttl: int, now: float, at: float | None) -> Switchover:
    return Switchover(target, reason, actor, ttl, STEP_SCHEDULED, max(now, at or now), now)


def lowered(sw: Switchover, now: float, origin: str | None, old_ttl: int) -> Switchover:
    """The short TTL is accepted: caches may hold the old answer for `old_ttl` more seconds."""
    return replace(sw, step=STEP_LOWERED, next_at=now + old_ttl, origin=origin, old_ttl=old_ttl)


def switched(sw: Switchover, now: float) -> Switchover:
    """The target is published and verified: clients follow within `ttl`; restore after."""
    return replace(sw, step=STEP_SWITCHED, next_at=now + sw.ttl)


def to_restore(sw: Switchover, now: float) -> Switchover:
    return replace(sw, step=STEP_RESTORE, next_at=now)


def due(sw: Switchover, now: float) -> bool:
    return now >= sw.next_at


def short_ttl_left(
    service: ServiceConfig, current: Mapping[RecordKey, RecordSet | None] | None
) -> list[str]:
    """Records served with a TTL other than the configured one (what a restore fixes)."""
    if current is None:
        return []
    return [
        str(r.key)
        for r in service.records
        if (rs := current.get(r.key)) is not None and rs.ttl != r.ttl
    ]
