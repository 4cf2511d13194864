"""Pools: a target whose values are judged one by one (README "Pools"). Pure: `now` is a parameter.

Each value has its own health, folded from its own probes with the target's fall/rise (so one
blip does not churn the published subset); the target is UP while at least `min_up` values are
UP and DOWN once so many are DOWN that `min_up` cannot be reached. DNS serves the values that are
UP (never a DOWN one, never fewer than one): a change of that subset is a `pool` decision,
carried out like any other change (planned, verified, journalled). Below `min_up` the target is
DOWN, and the normal decision switches away from it; with every target DOWN, the all-down
policy applies (core/fallback.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from failover.config.types import ServiceConfig, TargetConfig
from failover.core.decide import Action, Decision, Snapshot
from failover.core.health import ProbeState, TargetHealth, target_health
from failover.model import Health, Mode, RecordKey, RecordSet, RecordType, Trigger, canonical_values
from failover.model import values_for_type as _values

MEMBER_SEP = "@"  # "paris@192.0.2.1": a value's key in shared views (target names have no '@')

Members = Mapping[str, Mapping[str, TargetHealth]]  # target -> value -> health


def member_key(target: str, value: str) -> str:
    return f"{target}{MEMBER_SEP}{value}"


def fold_members(
    target: TargetConfig,
    probes: Mapping[str, ProbeState],
    previous: Mapping[str, TargetHealth],
    now: float,
) -> dict[str, TargetHealth]:
    """Each value's health from its own probes (`probes` by expanded probe name)."""
    assert target.pool is not None
    out: dict[str, TargetHealth] = {}
    for value, names in target.pool.members:
        mine = {n: probes.get(n, ProbeState()) for n in names}
        out[value] = target_health(mine, previous.get(value), now)
    return out


def pool_health(
    target: TargetConfig,
    members: Mapping[str, TargetHealth],
    previous: TargetHealth | None,
    now: float,
) -> TargetHealth:
    """UP while at least `min_up` values are UP; DOWN once fewer than `min_up` can be UP."""
    assert target.pool is not None
    min_up = target.pool.min_up
    values = [v for v, _ in target.pool.members]
    state = {v: members.get(v) for v in values}
    up = [v for v in values if (h := state[v]) is not None and h.health is Health.UP]
    down = [v for v in values if (h := state[v]) is not None and h.health is Health.DOWN]
    failing_since: float | None = None
    tally = f"{len(up)} of {len(values)} values UP, min_up {min_up}"
    if down:
        first = state[down[0]]
        why = first.reason if first is not None else ""
        tally += f"; DOWN: {', '.join(down)} ({why})"
    if len(up) >= min_up:
        health = Health.UP
    elif len(values) - len(down) < min_up:
        health = Health.DOWN
        starts = [s for v in down if (h := state[v]) is not None and (s := h.failing_since)]
        failing_since = max(starts) if starts else None  # the failure that broke min_up
    else:
        health = Health.UNKNOWN
    reason = f"pool: {tally}"
    if previous is not None and previous.health is health and previous.since is not None:
        since: float | None = previous.since
    elif health is Health.UNKNOWN and all(h is None or h.since is None for h in state.values()):
        since = None
    else:
        since = now
    return TargetHealth(health, since, failing_since, reason)


def pool_failing(target: TargetConfig, probes: Mapping[str, ProbeState]) -> bool:
    """For the isolation guard, which counts a target as failing from its first failed probe:
    a pool fails once so many values have a failed probe that fewer than `min_up` are left."""
    assert target.pool is not None
    failing = sum(
        1
        for _, names in target.pool.members
        if any((p := probes.get(n)) is not None and p.last_ok is False for n in names)
    )
    return len(target.pool.members) - failing < target.pool.min_up


def publish_values(target: TargetConfig, members: Mapping[str, TargetHealth]) -> tuple[str, ...]:
    """What DNS should serve for `target`: every value of a plain target; the UP values of a
    pool (in config order), else those not DOWN, else all: never fewer than one."""
    if target.pool is None:
        return target.values
    values = [v for v, _ in target.pool.members]
    up = [v for v in values if (h := members.get(v)) is not None and h.health is Health.UP]
    if up:
        return tuple(up)
    alive = [v for v in values if (h := members.get(v)) is None or h.health is not Health.DOWN]
    return tuple(alive) or target.values


def keep_values(
    target: TargetConfig, members: Mapping[str, TargetHealth], served: set[str]
) -> tuple[str, ...]:
    """The subset to serve while `target` is active: the UP values, and those served already
    whose health is not known (yet): a restart or a reload never drops a value before its
    probes have said anything, only a DOWN one is dropped."""
    kept = tuple(
        v
        for v in target.values
        if (h := members.get(v)) is not None
        and (h.health is Health.UP or (h.health is Health.UNKNOWN and v in served))
    )
    return kept or publish_values(target, members)


def pool_values(service: ServiceConfig, target: str, members: Members) -> tuple[str, ...] | None:
    """The values a change to `target` publishes: its UP subset for a pool, else None (all)."""
    t = service.target(target)
    if t is None or t.pool is None:
        return None
    return publish_values(t, members.get(t.name, {}))


def served_values(
    service: ServiceConfig,
    target: str,
    members: Members,
    current: Mapping[RecordKey, RecordSet | None],
) -> tuple[str, ...] | None:
    """The values a change that keeps `target` (a TTL-only change: a switchover lowering or
    restoring the TTL) publishes: for a pool, the subset served now less its DOWN values,
    never a value taken out for being DOWN; else None (all)."""
    t = service.target(target)
    if t is None or t.pool is None:
        return None
    served = {v for r in service.records for v in (_served(current.get(r.key), r.type) or ())}
    return keep_values(t, members.get(t.name, {}), served)


def _served(rs: RecordSet | None, rtype: RecordType) -> tuple[str, ...] | None:
    if rs is None:
        return None
    try:
        return canonical_values(rtype, rs.values)
    except ValueError:
        return None


def pool_decision(
    service: ServiceConfig,
    decision: Decision,
    snap: Snapshot,
    members: Members,
    current: Mapping[RecordKey, RecordSet | None] | None,
) -> Decision:
    """When the decision holds on a pool target and DNS serves another subset of its values
    than the UP ones, publish the UP ones (one `pool` change). Also when the target is DOWN
    and held (nothing better to switch to, `all_down: hold`): its last UP values are still
    better than the DOWN ones. Never while this instance cannot judge (isolation, a local
    fault), never an empty answer."""
    pub = snap.published
    if (
        decision.action is not Action.NONE
        or decision.state.mode is Mode.PAUSED
        or pub.kind != "target"
        or pub.missing
        or current is None
    ):
        return decision
    pinned = (
        decision.state.pin.target
        if decision.state.mode is Mode.PINNED and decision.state.pin
        else None
    )
    names = pub.matches or ((pub.target,) if pub.target else ())
    active = next(
        (
            n
            for n in names
            if (t := service.target(n)) is not None
            and t.pool is not None
            and (pinned is None or n == pinned)
        ),
        None,
    )
    target = service.target(active) if active is not None else None
    if target is None or target.pool is None:
        return decision
    th = snap.health.get(target.name)
    mine = members.get(target.name, {})
    if th is None or th.health is Health.UNKNOWN or snap.isolated or snap.local_fault:
        return decision  # no verdict to act on, or this instance cannot judge now
    held = th.health is Health.DOWN  # below min_up, and the decision found nothing better
    if held and not any(h.health is Health.UP for h in mine.values()):
        return decision  # never empty: with no value UP, what is served stays
    served = {v for r in service.records for v in (_served(current.get(r.key), r.type) or ())}
    want = keep_values(target, mine, served)
    differs = [
        r for r in service.records if _served(current.get(r.key), r.type) != _values(r.type, want)
    ]
    if not differs:
        return decision
    down = [v for v in target.values if (h := mine.get(v)) is not None and h.health is Health.DOWN]
    why = f"; DOWN: {', '.join(down)}" if down else ""
    reason = (
        f"pool {target.name}: publishing {len(want)} of {len(target.values)} values "
        f"({', '.join(want)}){why}"
    )
    if held:  # the target is DOWN: its UP values are still better than its DOWN ones
        reason = f"{decision.reason}; {reason}"
    return replace(
        decision,
        action=Action.POOL,
        target=target.name,
        trigger=Trigger.AUTO,
        reason=reason,
        values=want,
        force=held,  # target-not-up is expected here: only DOWN values are taken out
    )


def member_views(service: ServiceConfig, members: Members) -> dict[str, Health]:
    """`target@value` -> health, for the views other instances count (engine/vantage.py)."""
    return {
        member_key(t.name, v): h.health
        for t in service.targets
        if t.pool is not None
        for v, h in members.get(t.name, {}).items()
    }
