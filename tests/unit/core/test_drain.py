"""Drains and maintenance windows in the pure core: drained counts as unavailable."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from failover.config.types import MaintenanceWindow, PolicyConfig, ServiceConfig
from failover.core import drain
from failover.core.decide import Action, Pin, ServiceState, Snapshot, pin
from failover.core.health import TargetHealth
from failover.core.ops import Drain
from failover.core.published import Published
from failover.model import Health, Mode, Trigger
from tests.unit.core.conftest import build_service

U, D = Health.UP, Health.DOWN
# Sunday 2026-12-06 03:00 UTC
SUNDAY_3AM = datetime(2026, 12, 6, 3, 0, tzinfo=UTC).timestamp()
NOW = SUNDAY_3AM


def health(**h: Health) -> dict[str, TargetHealth]:
    return {n: TargetHealth(v, NOW - 3600, None, "probe says so") for n, v in h.items()}


def on(target: str) -> Published:
    return Published("target", target=target, matches=(target,))


def snap(h: dict[str, TargetHealth], published: Published, now: float = NOW) -> Snapshot:
    return Snapshot(now, now - 3600, h, published)


def drained_state(*targets: str, until: float | None = None) -> ServiceState:
    state = ServiceState()
    for t in targets:
        state = drain.add_drain(state, Drain(t, "kernel", "alice", NOW - 10, until))
    return state


def with_window(service: ServiceConfig, target: str, w: MaintenanceWindow) -> ServiceConfig:
    targets = tuple(
        replace(t, maintenance=(w,)) if t.name == target else t for t in service.targets
    )
    return replace(service, targets=targets)


def test_a_drained_active_target_is_left_at_once_without_counting_as_automatic() -> None:
    shop = build_service(policy=PolicyConfig(cooldown=3600))
    state = replace(drained_state("aws"), last_auto_switch_at=NOW - 1)  # inside the cooldown
    d = drain.decide(shop, state, snap(health(aws=U, ovh=U, scw=U), on("aws")))
    assert (d.action, d.target, d.trigger) == (Action.SWITCH, "ovh", Trigger.MANUAL)
    assert "aws drained (manual, alice): kernel -> switching to ovh" in d.reason
    assert d.state.auto_switches == ()  # not a flap


def test_the_first_up_target_that_is_not_drained_is_chosen() -> None:
    shop = build_service()
    d = drain.decide(
        shop, drained_state("aws", "ovh"), snap(health(aws=U, ovh=U, scw=U), on("aws"))
    )
    assert d.target == "scw"
    d = drain.decide(shop, drained_state("aws"), snap(health(aws=U, ovh=D, scw=U), on("aws")))
    assert d.target == "scw"


def test_no_failback_to_a_drained_primary_and_no_switch_to_a_drained_target() -> None:
    shop = build_service(policy=PolicyConfig(failback="auto", failback_after=0))
    d = drain.decide(shop, drained_state("aws"), snap(health(aws=U, ovh=U, scw=U), on("ovh")))
    assert d.action is Action.NONE
    # the active one dies: the drained one is not a candidate
    d = drain.decide(shop, drained_state("scw"), snap(health(aws=D, ovh=D, scw=U), on("ovh")))
    assert d.action is Action.NONE and "all_down" not in d.alarms  # scw is UP, only drained
    assert "no_healthy_target" in d.alarms and "scw UP but drained" in d.reason
    # without the drain, the same snapshot fails back / over
    assert (
        drain.decide(shop, ServiceState(), snap(health(aws=U, ovh=U, scw=U), on("ovh"))).target
        == "aws"
    )


def test_nothing_to_go_to_holds_on_the_drained_target() -> None:
    shop = build_service()
    d = drain.decide(shop, drained_state("aws"), snap(health(aws=U, ovh=D, scw=D), on("aws")))
    assert d.action is Action.NONE


def test_a_pin_and_a_pause_win_over_a_drain() -> None:
    shop = build_service()
    pinned = pin(drained_state("aws"), Pin("aws", "db move", "bob", NOW - 5))
    d = drain.decide(shop, pinned, snap(health(aws=U, ovh=U, scw=U), on("aws")))
    assert d.action is Action.NONE and "pinned_target_down" in d.alarms
    paused = replace(drained_state("aws"), mode=Mode.PAUSED)
    assert drain.decide(shop, paused, snap(health(aws=U, ovh=U), on("aws"))).action is Action.NONE


def test_expired_drains_no_longer_count_and_are_dropped() -> None:
    shop = build_service()
    state = drained_state("aws", until=NOW - 1)
    assert drain.drained(shop, state, NOW) == {}
    d = drain.decide(shop, state, snap(health(aws=U, ovh=U, scw=U), on("aws")))
    assert d.action is Action.NONE
    kept, gone = drain.expire(state, NOW)
    assert kept.drains == () and [g.target for g in gone] == ["aws"]
    live = drained_state("aws", until=NOW + 60)
    assert drain.expire(live, NOW) == (live, ())


def test_last_up_refuses_draining_the_only_up_target_not_drained() -> None:
    shop = build_service()
    h = health(aws=U, ovh=D, scw=U)
    assert drain.last_up(shop, h, {}, "aws") is None
    drains = drain.drained(shop, drained_state("scw"), NOW)
    v = drain.last_up(shop, h, drains, "aws")
    assert v is not None and v.rule == "last-up"


def test_a_maintenance_window_drains_while_open_in_its_time_zone() -> None:
    shop = build_service()
    w = MaintenanceWindow(("sun",), (2 * 60, 4 * 60), "UTC", "kernel updates")
    shop = with_window(shop, "aws", w)
    found = drain.drained(shop, ServiceState(), NOW)
    assert found["aws"].source == "maintenance" and found["aws"].reason == "kernel updates"
    assert found["aws"].until == datetime(2026, 12, 6, 4, 0, tzinfo=UTC).timestamp()
    assert drain.drained(shop, ServiceState(), NOW + 3600) == {}  # 04:00: closed
    assert drain.drained(shop, ServiceState(), NOW - 7 * 3600) == {}  # Saturday
    d = drain.decide(shop, ServiceState(), snap(health(aws=U, ovh=U, scw=U), on("aws")))
    assert d.target == "ovh"
    # the same wall-clock window in Paris (UTC+1 in December) opens an hour earlier in UTC
    paris = with_window(build_service(), "aws", replace(w, timezone="Europe/Paris"))
    assert "aws" in drain.drained(paris, ServiceState(), NOW - 1800)  # 02:30 UTC = 03:30 Paris
    assert drain.drained(paris, ServiceState(), NOW + 1800) == {}  # 03:30 UTC = 04:30 Paris


def test_effective_health_keeps_what_probes_say_in_the_reason() -> None:
    shop = build_service()
    drains = drain.drained(shop, drained_state("aws"), NOW)
    eff = drain.effective_health(health(aws=U, ovh=U), drains)
    assert eff["aws"].health is D and eff["aws"].reason == "drained (manual): kernel; probes say UP"
    assert eff["ovh"].health is U
