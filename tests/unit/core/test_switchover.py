"""The planned switchover's plans, checks and step times (pure)."""

from __future__ import annotations

from failover.core import switchover as sw
from failover.core.health import TargetHealth
from failover.core.ops import STEP_LOWERED, STEP_RESTORE, STEP_SCHEDULED, STEP_SWITCHED
from failover.model import Health
from tests.unit.core.conftest import build_service, records_for

NOW = 1_000_000.0


def health(**h: Health) -> dict[str, TargetHealth]:
    return {n: TargetHealth(v, NOW - 60, None, "probes") for n, v in h.items()}


def test_lowering_is_a_ttl_only_change_of_every_record() -> None:
    shop = build_service(ttl=300)
    current = records_for(shop, "aws")
    plan = sw.ttl_plan(shop, "aws", current, 30, "move")
    assert len(plan.changes) == len(shop.records)
    for change in plan.changes:
        assert change.ttl == 30 and sorted(change.before or ()) == sorted(change.after)
    # already lowered: nothing to send (a resumed step is idempotent)
    assert sw.ttl_plan(shop, "aws", records_for(shop, "aws", ttl=30), 30, "move").changes == ()


def test_the_switch_publishes_the_target_with_the_short_ttl() -> None:
    shop = build_service(ttl=300)
    plan = sw.ttl_plan(shop, "ovh", records_for(shop, "aws", ttl=30), 30, "move")
    assert {c.ttl for c in plan.changes} == {30}
    assert all(c.after == ("198.51.100.20",) for c in plan.changes)


def test_the_wait_is_the_longest_ttl_configured_or_read() -> None:
    shop = build_service(ttl=300)
    assert sw.longest_ttl(shop, records_for(shop, "aws", ttl=30)) == 300  # a resumed lowering
    assert sw.longest_ttl(shop, records_for(shop, "aws", ttl=900)) == 900  # a hand-set TTL


def test_refused_when_the_target_is_not_up_active_or_busy() -> None:
    shop = build_service()
    ok = sw.check(shop, health(aws=Health.UP, ovh=Health.UP), "ovh", "aws", None)
    assert ok == []
    down = sw.check(shop, health(aws=Health.UP, ovh=Health.DOWN), "ovh", "aws", None)
    assert [v.rule for v in down] == ["target-not-up"]
    same = sw.check(shop, health(aws=Health.UP), "aws", "aws", None)
    assert [v.rule for v in same] == ["already-active"]
    running = sw.new("scw", "x", "bob", 30, NOW, None)
    busy = sw.check(shop, health(ovh=Health.UP), "ovh", "aws", running)
    assert [v.rule for v in busy] == ["switchover-in-progress"]
    assert [v.rule for v in sw.check(shop, {}, "nope", "aws", None)] == ["unknown-target"]


def test_steps_and_their_times() -> None:
    s = sw.new("ovh", "move", "alice", 30, NOW, None)
    assert (s.step, s.next_at) == (STEP_SCHEDULED, NOW) and sw.due(s, NOW)
    later = sw.new("ovh", "move", "alice", 30, NOW, NOW + 600)
    assert later.next_at == NOW + 600 and not sw.due(later, NOW)
    s = sw.lowered(s, NOW + 1, "aws", 300)
    assert (s.step, s.next_at, s.origin, s.old_ttl) == (STEP_LOWERED, NOW + 301, "aws", 300)
    s = sw.switched(s, NOW + 310)
    assert (s.step, s.next_at) == (STEP_SWITCHED, NOW + 340)
    assert sw.to_restore(s, NOW + 311).step == STEP_RESTORE


def test_records_left_with_another_ttl_are_named() -> None:
    shop = build_service(ttl=300)
    assert sw.short_ttl_left(shop, records_for(shop, "aws")) == []
    assert len(sw.short_ttl_left(shop, records_for(shop, "aws", ttl=30))) == 2
