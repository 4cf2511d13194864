"""Pools and the fallback together with drains and switchovers (the traffic policies of #14).

The actor decides with `decide_traffic(..., base=drain.decide)`: these tests go through that
same composition, on real config dataclasses.
"""

from __future__ import annotations

from dataclasses import replace

from failover.config.types import FallbackConfig, PolicyConfig, PoolConfig, ServiceConfig
from failover.core import drain
from failover.core import switchover as sw_rules
from failover.core.decide import (
    ALARM_ALL_DOWN,
    ALARM_NO_HEALTHY_TARGET,
    Action,
    Decision,
    ServiceState,
    Snapshot,
)
from failover.core.fallback import decide_traffic
from failover.core.health import TargetHealth
from failover.core.ops import STEP_LOWERED, STEP_RESTORE, STEP_SWITCHED, Drain
from failover.core.plan import RULE_TARGET_NOT_UP, build_plan, check_plan
from failover.core.pool import Members, pool_health, pool_values, served_values
from failover.core.published import classify_published
from failover.core.values import FALLBACK
from failover.model import Health, RecordKey, RecordSet, Trigger
from tests.unit.core.conftest import build_service

U, D, N = Health.UP, Health.DOWN, Health.UNKNOWN
NOW = 100_000.0
POOL = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
AMS = ("10.1.0.1",)
PAGE = ("192.0.2.250",)


def service(min_up: int = 2, all_down: str = "fallback") -> ServiceConfig:
    """paris: a pool of three (min_up 2), then ams; a fallback page."""
    policy = PolicyConfig(startup_grace=0, all_down=all_down)  # type: ignore[arg-type]
    svc = build_service({"paris": ("ovh", POOL), "ams": ("aws", AMS)}, policy=policy)
    paris = replace(
        svc.targets[0], pool=PoolConfig(min_up, tuple((v, (f"tcp@{v}",)) for v in POOL))
    )
    return replace(svc, targets=(paris, *svc.targets[1:]), fallback=FallbackConfig(PAGE, "cdn"))


def th(h: Health, reason: str = "probe") -> TargetHealth:
    return TargetHealth(h, NOW - 1000, NOW - 30 if h is D else None, reason)


def members(*states: Health) -> Members:
    return {"paris": {v: th(h) for v, h in zip(POOL, states, strict=True)}}


def serving(
    svc: ServiceConfig, *values: str, ttl: int | None = None
) -> dict[RecordKey, RecordSet | None]:
    return {r.key: RecordSet(r.name, r.type, ttl or r.ttl, tuple(values)) for r in svc.records}


def health(svc: ServiceConfig, mem: Members, ams: Health) -> dict[str, TargetHealth]:
    paris = svc.target("paris")
    assert paris is not None
    return {"paris": pool_health(paris, mem["paris"], None, NOW), "ams": th(ams)}


def decide_with_drains(
    svc: ServiceConfig, state: ServiceState, mem: Members, ams: Health, *served: str
) -> Decision:
    current = serving(svc, *served)
    snap = Snapshot(NOW, NOW - 5000, health(svc, mem, ams), classify_published(svc, current))
    return decide_traffic(svc, state, snap, mem, current, None, base=drain.decide)


def drained(*targets: str) -> ServiceState:
    state = ServiceState()
    for t in targets:
        state = drain.add_drain(state, Drain(t, "kernel upgrade", "alice", NOW - 10))
    return state


def test_a_drained_pool_is_unavailable_as_a_whole() -> None:
    """Every value UP, but the target drained: the service leaves it (all its values), and the
    pool's subset is not touched on the way out."""
    svc = service()
    d = decide_with_drains(svc, drained("paris"), members(U, U, D), U, *POOL)
    assert (d.action, d.target, d.trigger, d.values) == (Action.SWITCH, "ams", Trigger.MANUAL, None)
    assert "paris drained (manual, alice): kernel upgrade" in d.reason
    # and nothing fails back to it while drained, though its min_up is met
    back = decide_with_drains(svc, drained("paris"), members(U, U, U), U, *AMS)
    assert back.action is Action.NONE


def test_a_forced_drain_of_the_last_up_target_never_publishes_the_fallback() -> None:
    """`all_down: fallback` is about targets DOWN by their probes. A drain is an operator's
    decision: forced on the last UP target it keeps that target served (still dropping its DOWN
    values), raises `no_healthy_target`, and never sends clients to the "we are down" page."""
    svc = service()
    d = decide_with_drains(svc, drained("paris"), members(U, U, D), D, *POOL)
    assert d.action is Action.POOL and d.values == POOL[:2]
    assert ALARM_NO_HEALTHY_TARGET in d.alarms and ALARM_ALL_DOWN not in d.alarms
    held = decide_with_drains(svc, drained("paris"), members(U, U, D), D, *POOL[:2])
    assert held.action is Action.NONE and held.target is None
    assert held.alarms == frozenset({ALARM_NO_HEALTHY_TARGET})
    assert held.reason.startswith("no UP target that is not drained (paris UP but drained)")


def test_a_drained_target_down_by_its_probes_too_lets_the_fallback_in() -> None:
    svc = service()
    d = decide_with_drains(svc, drained("paris"), members(D, D, D), D, *POOL)
    assert (d.action, d.target) == (Action.FALLBACK, FALLBACK)
    assert ALARM_ALL_DOWN in d.alarms


def test_the_fallback_is_left_for_a_target_that_is_not_drained_only() -> None:
    svc = service()
    stay = decide_with_drains(svc, drained("paris"), members(U, U, U), D, *PAGE)
    assert stay.action is Action.NONE
    assert stay.alarms == frozenset({ALARM_NO_HEALTHY_TARGET})
    assert stay.reason.startswith("serving the fallback; no UP target that is not drained")
    leave = decide_with_drains(svc, drained("paris"), members(U, U, U), U, *PAGE)
    assert (leave.action, leave.target) == (Action.SWITCH, "ams")
    # undrained, the pool is first in priority order and gets its UP values only
    undrained = decide_with_drains(svc, ServiceState(), members(U, D, U), U, *PAGE)
    assert (undrained.action, undrained.target) == (Action.SWITCH, "paris")
    assert pool_values(svc, "paris", members(U, D, U)) == (POOL[0], POOL[2])


def test_last_up_counts_a_pool_below_min_up_as_down() -> None:
    svc = service(min_up=2)
    below = health(svc, members(U, D, D), U)  # paris has one UP value, min_up 2
    violation = drain.last_up(svc, below, {}, "ams")
    assert violation is not None and violation.rule == drain.RULE_LAST_UP
    assert drain.last_up(svc, health(svc, members(U, U, D), U), {}, "ams") is None


def test_promote_and_switchover_to_a_pool_follow_min_up_and_drains() -> None:
    svc = service(min_up=2)
    current = serving(svc, *AMS)
    mem = members(U, D, D)
    plan = build_plan(svc, "paris", current, Trigger.MANUAL, "t", pool_values(svc, "paris", mem))
    rules = {v.rule for v in check_plan(plan, svc, health(svc, mem, U), current)}
    assert RULE_TARGET_NOT_UP in rules  # one UP value: below min_up, not UP
    assert any(
        v.rule == RULE_TARGET_NOT_UP
        for v in sw_rules.check(svc, health(svc, mem, U), "paris", "ams", None)
    )
    ok = members(U, U, D)
    drains = drain.drained(svc, drained("paris"), NOW)
    decided = drain.effective_health(health(svc, ok, U), drains)
    assert any(
        v.rule == RULE_TARGET_NOT_UP for v in sw_rules.check(svc, decided, "paris", "ams", None)
    )
    assert sw_rules.check(svc, health(svc, ok, U), "paris", "ams", None) == []


def test_a_switchover_to_a_pool_publishes_its_up_subset_with_the_short_ttl() -> None:
    svc = service()
    mem = members(U, D, U)
    current = serving(svc, *AMS)
    plan = sw_rules.ttl_plan(svc, "paris", current, 30, "move", pool_values(svc, "paris", mem))
    assert {c.after for c in plan.changes} == {(POOL[0], POOL[2])}
    assert {c.ttl for c in plan.changes} == {30}


def test_lowering_and_restoring_the_ttl_of_a_pool_keep_its_subset() -> None:
    """A TTL-only change on a pool serving two of its three values never re-adds the DOWN one."""
    svc = service()
    mem = members(U, U, D)
    current = serving(svc, *POOL[:2])
    kept = served_values(svc, "paris", mem, current)
    assert kept == POOL[:2]
    lower = sw_rules.ttl_plan(svc, "paris", current, 30, "move", kept)
    assert {(c.after, c.ttl) for c in lower.changes} == {(POOL[:2], 30)}
    short = serving(svc, *POOL[:2], ttl=30)
    restore = build_plan(svc, "paris", short, Trigger.MANUAL, "restore", kept)
    assert {(c.after, c.ttl) for c in restore.changes} == {(POOL[:2], 60)}
    assert served_values(svc, "ams", mem, current) is None  # not a pool: all its values


def test_changes_during_a_switchover_keep_the_short_ttl() -> None:
    """A pool change (or an automatic switch) while the TTL is lowered is published with the
    short TTL: only the restore step brings the configured TTL back."""
    svc = service()
    short = serving(svc, *POOL, ttl=30)
    plan = build_plan(svc, "paris", short, Trigger.AUTO, "pool", POOL[:2])
    sw = sw_rules.new("paris", "move", "alice", 30, NOW, None)
    for step in (STEP_LOWERED, STEP_SWITCHED):
        kept = sw_rules.keep_short_ttl(plan, replace(sw, step=step), short)
        assert {(c.after, c.ttl) for c in kept.changes} == {(POOL[:2], 30)}
    for other in (None, replace(sw, step=STEP_RESTORE)):
        assert sw_rules.keep_short_ttl(plan, other, short) == plan
    # a change that only restored the TTL is dropped while the short one must hold
    same = build_plan(svc, "paris", short, Trigger.AUTO, "pool", POOL)
    assert (
        same.changes
        and not sw_rules.keep_short_ttl(same, replace(sw, step=STEP_LOWERED), short).changes
    )
