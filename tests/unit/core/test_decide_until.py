"""`Decision.until`: how long a decision stands on time alone. The engine's timer sweeps skip a
service until then, so a decision that would change earlier with the same inputs is a missed
timer (a cooldown, a failback delay, the start-up grace, the flap window)."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from failover.config.types import PolicyConfig, ServiceConfig
from failover.core.decide import Action, Decision, ServiceState, Snapshot, decide
from failover.core.fallback import decide_traffic
from failover.core.health import TargetHealth
from failover.core.published import Published, classify_published
from failover.model import Health
from tests.unit.core.test_decide import (
    HEALTHS,
    NOW,
    MakeService,
    ServedBy,
    health_map,
    make_current,
    on,
    policies,
    record_picks,
    states,
)

U, D = Health.UP, Health.DOWN


def outcome(d: Decision) -> tuple[object, ...]:
    """What a later decision must keep while the first stands (reasons may count down)."""
    return (d.action, d.target, d.trigger, d.alarms, d.state, d.values)


@settings(max_examples=400)
@given(
    policy=policies,
    state=states,
    healths=st.tuples(HEALTHS, HEALTHS, HEALTHS),
    picks=record_picks,
    started_ago=st.sampled_from([0.0, 30.0, 3600.0]),
    up_for=st.sampled_from([0.0, 20.0, 100.0, 10_000.0]),
    last_auto_ago=st.sampled_from([None, 1.0, 100.0, 5000.0]),
    judging_ago=st.sampled_from([None, 1.0, 3.0, 100.0]),
    later=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=5),
)
def test_a_decision_stands_with_the_same_inputs_until_its_until(
    make_service: MakeService,
    served_by: ServedBy,
    policy: PolicyConfig,
    state: ServiceState,
    healths: tuple[Health, Health, Health],
    picks: list[str | None],
    started_ago: float,
    up_for: float,
    last_auto_ago: float | None,
    judging_ago: float | None,
    later: list[float],
) -> None:
    service = make_service(policy=policy)
    if last_auto_ago is not None:
        state = replace(state, last_auto_switch_at=NOW - last_auto_ago)
    health = health_map(healths, NOW - up_for)
    published = classify_published(service, make_current(service, served_by, picks))
    judging = None if judging_ago is None else NOW - judging_ago

    def at(now: float) -> Decision:
        snap = Snapshot(now, NOW - started_ago, health, published, judging_since=judging)
        return decide_traffic(service, state, snap)

    first = at(NOW)
    if first.action is not Action.NONE:
        return  # an action is carried out at once: the engine decides such a service again
    assert first.until > NOW
    horizon = first.until if math.isfinite(first.until) else NOW + 10**7
    for fraction in later:
        t = NOW + fraction * (horizon - NOW)
        if t < first.until:  # the product may round up to `until` itself
            assert outcome(at(t)) == outcome(first)


def snap(now: float, health: dict[str, TargetHealth], published: Published) -> Snapshot:
    return Snapshot(now, 0.0, health, published)


def test_a_steady_service_has_no_timer(shop: ServiceConfig) -> None:
    health = health_map((U, U, U), 0.0)
    assert decide(shop, ServiceState(), snap(NOW, health, on("aws"))).until == math.inf


def test_the_cooldown_ends_at_until_and_the_switch_follows(make_service: MakeService) -> None:
    service = make_service(policy=PolicyConfig(cooldown=300.0))
    state = ServiceState(last_auto_switch_at=NOW - 299.5)
    health = {"aws": TargetHealth(D, 0.0, None, "down")} | {
        n: TargetHealth(U, 0.0, None, "up") for n in ("ovh", "scw")
    }
    held = decide(service, state, snap(NOW, health, on("aws")))
    assert held.action is Action.NONE and held.reason.startswith("cooldown")
    assert held.until == NOW + 0.5
    assert decide(service, state, snap(held.until, health, on("aws"))).action is Action.SWITCH


def test_a_countdown_is_refreshed_every_second(make_service: MakeService) -> None:
    """A hold that shows the time left stands one second at most: `status` counts down."""
    service = make_service(policy=PolicyConfig(failback="auto", failback_after=600.0))
    health = health_map((U, U, U), NOW - 10.0)
    held = decide(service, ServiceState(), snap(NOW, health, on("ovh")))
    assert held.reason == "on ovh (UP); failback to aws in 9m50s (UP for 10s)"
    assert held.until == NOW + 1.0


def test_an_old_switch_leaving_the_flap_window_ends_the_decision(
    make_service: MakeService,
) -> None:
    service = make_service(policy=PolicyConfig(flap_window=600.0))
    state = ServiceState(auto_switches=(NOW - 500.0, NOW - 100.0), last_auto_switch_at=NOW - 100)
    health = health_map((U, U, U), 0.0)
    first = decide(service, state, snap(NOW, health, on("aws")))
    assert first.until == NOW + 100.0
    after = decide(service, state, snap(first.until, health, on("aws")))
    assert after.state.auto_switches == (NOW - 100.0,)
    assert after.until == NOW + 500.0


def test_the_fallback_waits_for_the_grace_like_a_target(make_service: MakeService) -> None:
    """Serving the fallback, an UNKNOWN target above the first UP one is waited for during
    the start-up grace: that hold ends with the grace, or at the next second of its count."""
    service = make_service()
    health = {
        "aws": TargetHealth(Health.UNKNOWN, None, None, "waiting"),
        "ovh": TargetHealth(U, 0.0, None, "up"),
        "scw": TargetHealth(U, 0.0, None, "up"),
    }
    fallback = Published("fallback", target=None)
    held = decide_traffic(service, ServiceState(), Snapshot(NOW, NOW - 59.5, health, fallback))
    assert held.action is Action.NONE
    assert held.until == NOW + 0.5
