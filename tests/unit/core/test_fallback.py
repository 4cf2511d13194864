"""The all-down policy: hold (default) or publish the fallback, and leave it when a target is UP."""

from __future__ import annotations

from dataclasses import replace

from failover.config.types import FallbackConfig, PolicyConfig, ServiceConfig
from failover.core.decide import (
    ALARM_ALL_DOWN,
    Action,
    Decision,
    Pin,
    ServiceState,
    Snapshot,
    decide,
    pin,
)
from failover.core.fallback import decide_traffic
from failover.core.health import TargetHealth
from failover.core.plan import build_plan, check_plan
from failover.core.published import classify_published
from failover.core.values import FALLBACK
from failover.model import Health, Mode, RecordKey, RecordSet, Trigger
from tests.unit.core.conftest import build_service

U, D, N = Health.UP, Health.DOWN, Health.UNKNOWN
NOW = 100_000.0
PAGE = ("192.0.2.250",)


def service(all_down: str = "fallback") -> ServiceConfig:
    policy = PolicyConfig(startup_grace=0, all_down=all_down)  # type: ignore[arg-type]
    svc = build_service(
        {"aws": ("aws", ("203.0.113.10",)), "ovh": ("aws", ("198.51.100.20",))}, policy=policy
    )
    return replace(svc, fallback=FallbackConfig(PAGE, "cdn"))


def serving(svc: ServiceConfig, *values: str) -> dict[RecordKey, RecordSet | None]:
    return {r.key: RecordSet(r.name, r.type, r.ttl, tuple(values)) for r in svc.records}


def snap(svc: ServiceConfig, aws: Health, ovh: Health, *served: str, **kw: object) -> Snapshot:
    health = {
        "aws": TargetHealth(aws, NOW - 100, None, f"aws {aws.value}"),
        "ovh": TargetHealth(ovh, NOW - 100, None, f"ovh {ovh.value}"),
    }
    return Snapshot(
        NOW,
        NOW - 5000,
        health,
        classify_published(svc, serving(svc, *served)),
        **kw,  # type: ignore[arg-type]
    )


def test_hold_is_the_default() -> None:
    svc = service("hold")
    d = decide_traffic(svc, ServiceState(), snap(svc, D, D, "203.0.113.10"))
    assert d.action is Action.NONE and ALARM_ALL_DOWN in d.alarms
    assert d.reason == "all targets down; holding aws"


def test_all_down_publishes_the_fallback_with_the_alarm() -> None:
    svc = service()
    d = decide_traffic(svc, ServiceState(), snap(svc, D, D, "203.0.113.10"))
    assert (d.action, d.target) == (Action.FALLBACK, FALLBACK)
    assert ALARM_ALL_DOWN in d.alarms
    assert d.reason == "all targets down -> publishing the fallback (192.0.2.250) instead of aws"
    plan = build_plan(svc, FALLBACK, serving(svc, "203.0.113.10"), Trigger.AUTO, d.reason)
    assert {c.after for c in plan.changes} == {PAGE}
    assert check_plan(plan, svc, {}, serving(svc, "203.0.113.10")) == []


def test_no_fallback_while_isolated_or_one_target_still_up() -> None:
    svc = service()
    isolated = decide_traffic(svc, ServiceState(), snap(svc, D, D, "203.0.113.10", isolated=True))
    assert isolated.action is Action.NONE
    d = decide_traffic(svc, ServiceState(), snap(svc, D, U, "203.0.113.10"))
    assert (d.action, d.target) == (Action.SWITCH, "ovh")
    blocked = ServiceState(blocked=True)
    assert decide_traffic(svc, blocked, snap(svc, D, D, "203.0.113.10")).action is Action.NONE


def test_the_fallback_is_recognised_and_held_while_all_are_down() -> None:
    svc = service()
    s = snap(svc, D, D, *PAGE)
    assert (s.published.kind, s.published.target) == ("fallback", FALLBACK)
    d = decide_traffic(svc, ServiceState(), s)
    assert d.action is Action.NONE and ALARM_ALL_DOWN in d.alarms
    assert d.reason == "all targets down; serving the fallback (aws DOWN, ovh DOWN)"


def test_the_fallback_is_left_for_the_first_up_target_without_cooldown() -> None:
    svc = service()
    recent = ServiceState(auto_switches=(NOW - 1,), last_auto_switch_at=NOW - 1)
    d = decide_traffic(svc, recent, snap(svc, D, U, *PAGE))
    assert (d.action, d.target) == (Action.SWITCH, "ovh")
    assert d.reason.startswith("ovh UP again -> leaving the fallback for ovh")
    assert d.state.auto_switches == recent.auto_switches  # not counted against the flap limit
    both = decide_traffic(svc, ServiceState(), snap(svc, U, U, *PAGE))
    assert both.target == "aws"
    waiting = decide_traffic(svc, ServiceState(), snap(svc, D, N, *PAGE))
    assert waiting.action is Action.NONE  # UNKNOWN is not UP: rise is respected


def test_paused_and_pinned_services_keep_their_rules() -> None:
    svc = service()
    paused = decide_traffic(svc, ServiceState(mode=Mode.PAUSED), snap(svc, D, U, *PAGE))
    assert paused.action is Action.NONE and paused.reason.startswith("paused")
    pinned = pin(ServiceState(), Pin("aws", "test", "alice", NOW))
    stay = decide_traffic(svc, pinned, snap(svc, D, U, *PAGE))
    assert stay.action is Action.NONE  # pinned to a DOWN target: no fallback exit to ovh
    go = decide_traffic(svc, pinned, snap(svc, U, U, *PAGE))
    assert (go.action, go.target) == (Action.SWITCH, "aws")
    assert decide_traffic(svc, pinned, snap(svc, D, D, "203.0.113.10")).action is Action.NONE


def test_a_fallback_with_probes_is_published_only_while_up() -> None:
    svc = service()
    down = TargetHealth(D, NOW - 10, NOW - 20, "probe http: connection refused")
    d = decide_traffic(svc, ServiceState(), snap(svc, D, D, "203.0.113.10"), fallback=down)
    assert d.action is Action.NONE and ALARM_ALL_DOWN in d.alarms
    assert d.reason == (
        "all targets down; holding aws; the fallback is DOWN too "
        "(probe http: connection refused), not publishing it"
    )
    up = TargetHealth(U, NOW - 10, None, "probe http up")
    d = decide_traffic(svc, ServiceState(), snap(svc, D, D, "203.0.113.10"), fallback=up)
    assert d.action is Action.FALLBACK


def test_rules_wrapping_decide_choose_the_target_the_fallback_is_left_for() -> None:
    """A rule around `decide` (like a drain) that takes aws out: the fallback goes to ovh."""
    svc = service()

    def without_aws(s: ServiceConfig, state: ServiceState, sn: Snapshot) -> Decision:
        health = dict(sn.health)
        health["aws"] = TargetHealth(D, NOW, None, "drained")
        return decide(s, state, replace(sn, health=health))

    d = decide_traffic(svc, ServiceState(), snap(svc, U, U, *PAGE), base=without_aws)
    assert (d.action, d.target) == (Action.SWITCH, "ovh")
