"""Pools in the pure core: per-value health, the target's min_up verdict, the published subset."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from failover.config.types import PolicyConfig, PoolConfig, ServiceConfig, TargetConfig
from failover.core.decide import Action, Pin, ServiceState, Snapshot, pin
from failover.core.fallback import decide_traffic
from failover.core.health import ProbeState, TargetHealth, observe
from failover.core.plan import build_plan, check_plan
from failover.core.pool import (
    fold_members,
    member_views,
    pool_failing,
    pool_health,
    pool_values,
    publish_values,
)
from failover.core.published import classify_published
from failover.core.split import split_answers
from failover.model import Health, Mode, RecordKey, RecordSet, RecordType, Trigger
from tests.unit.core.conftest import build_service

U, D, N = Health.UP, Health.DOWN, Health.UNKNOWN
NOW = 100_000.0
POOL = ("10.0.0.1", "10.0.0.2", "10.0.0.3")


def pooled(min_up: int = 2, policy: PolicyConfig | None = None) -> ServiceConfig:
    svc = build_service(
        {"paris": ("ovh", POOL), "ams": ("aws", ("10.1.0.1",))},
        policy=policy or PolicyConfig(startup_grace=0),
    )
    paris = svc.targets[0]
    members = tuple((v, (f"tcp@{v}",)) for v in POOL)
    paris = replace(paris, pool=PoolConfig(min_up, members))
    return replace(svc, targets=(paris, *svc.targets[1:]))


def th(h: Health, since: float | None = NOW - 1000) -> TargetHealth:
    return TargetHealth(h, since, NOW - 30 if h is D else None, f"probe {h.value}")


def members(*states: Health) -> dict[str, TargetHealth]:
    return {v: th(h) for v, h in zip(POOL, states, strict=True)}


def serving(svc: ServiceConfig, *values: str) -> dict[RecordKey, RecordSet | None]:
    return {r.key: RecordSet(r.name, r.type, r.ttl, tuple(values)) for r in svc.records}


def paris(svc: ServiceConfig) -> TargetConfig:
    t = svc.target("paris")
    assert t is not None
    return t


def test_pool_health_follows_min_up() -> None:
    t = paris(pooled(min_up=2))
    assert pool_health(t, members(U, U, D), None, NOW).health is U
    down = pool_health(t, members(U, D, D), None, NOW)
    assert down.health is D
    assert down.reason.startswith("pool: 1 of 3 values UP, min_up 2; DOWN: 10.0.0.2, 10.0.0.3")
    assert down.failing_since == NOW - 30
    # one UP, one DOWN, one not judged yet: min_up may still be reached
    assert pool_health(t, members(U, D, N), None, NOW).health is N


def test_since_is_kept_while_the_verdict_holds() -> None:
    t = paris(pooled())
    first = pool_health(t, members(U, U, U), None, NOW)
    later = pool_health(t, members(U, U, D), first, NOW + 50)
    assert (first.since, later.since) == (NOW, NOW)


def test_values_are_damped_by_the_targets_fall_and_rise() -> None:
    t = paris(pooled())
    probes = {f"tcp@{v}": ProbeState() for v in POOL}
    for i in range(3):  # rise 3: every value UP
        probes = {n: observe(p, True, "ok", NOW + i, 3, 3) for n, p in probes.items()}
    blip = dict(probes)
    blip["tcp@10.0.0.2"] = observe(probes["tcp@10.0.0.2"], False, "refused", NOW + 4, 3, 3)
    folded = fold_members(t, blip, {}, NOW + 4)
    assert publish_values(t, folded) == POOL  # one failure is not DOWN (fall 3)
    for i in range(2):
        blip["tcp@10.0.0.2"] = observe(blip["tcp@10.0.0.2"], False, "refused", NOW + 5 + i, 3, 3)
    folded = fold_members(t, blip, folded, NOW + 7)
    assert folded["10.0.0.2"].health is D
    assert publish_values(t, folded) == ("10.0.0.1", "10.0.0.3")


def test_published_values_never_empty_never_down() -> None:
    t = paris(pooled())
    assert publish_values(t, members(D, U, D)) == ("10.0.0.2",)
    assert publish_values(t, members(D, N, D)) == ("10.0.0.2",)  # none UP: those not DOWN
    assert publish_values(t, members(D, D, D)) == POOL  # nothing better: never empty
    plain = pooled().target("ams")
    assert plain is not None and publish_values(plain, {}) == ("10.1.0.1",)


@given(st.lists(st.sampled_from([U, D, N]), min_size=3, max_size=3))
def test_subset_property(states: list[Health]) -> None:
    t = paris(pooled())
    got = publish_values(t, members(*states))
    assert got and set(got) <= set(POOL)
    if U in states:
        assert all(states[POOL.index(v)] is U for v in got)


def test_a_subset_of_a_pool_is_that_target_not_drift() -> None:
    svc = pooled()
    pub = classify_published(svc, serving(svc, "10.0.0.1", "10.0.0.3"))
    assert (pub.kind, pub.target) == ("target", "paris")
    assert classify_published(svc, serving(svc, "10.0.0.1", "10.0.0.9")).kind == "drift"
    health = {"paris": th(U), "ams": th(U)}
    plan = build_plan(svc, "paris", serving(svc, *POOL), Trigger.AUTO, "x", ("10.0.0.1",))
    assert [c.after for c in plan.changes] == [("10.0.0.1",), ("10.0.0.1",)]
    assert check_plan(plan, svc, health, serving(svc, "10.0.0.2")) == []


def snap(svc: ServiceConfig, health: dict[str, Health], served: tuple[str, ...]) -> Snapshot:
    current = serving(svc, *served)
    return Snapshot(
        NOW, NOW - 5000, {n: th(h) for n, h in health.items()}, classify_published(svc, current)
    )


def test_a_dead_value_is_dropped_by_one_pool_change() -> None:
    svc = pooled()
    s = snap(svc, {"paris": U, "ams": U}, POOL)
    m = {"paris": members(U, D, U)}
    d = decide_traffic(svc, ServiceState(), s, m, serving(svc, *POOL))
    assert (d.action, d.target, d.values) == (Action.POOL, "paris", ("10.0.0.1", "10.0.0.3"))
    assert d.reason == "pool paris: publishing 2 of 3 values (10.0.0.1, 10.0.0.3); DOWN: 10.0.0.2"
    assert d.state.auto_switches == ()  # not a switch: no flap counter, no cooldown
    # once served, nothing more to do
    s = snap(svc, {"paris": U, "ams": U}, ("10.0.0.1", "10.0.0.3"))
    again = decide_traffic(svc, ServiceState(), s, m, serving(svc, "10.0.0.1", "10.0.0.3"))
    assert again.action is Action.NONE
    # the value comes back (after its rise): published again
    m = {"paris": members(U, U, U)}
    back = decide_traffic(svc, ServiceState(), s, m, serving(svc, "10.0.0.1", "10.0.0.3"))
    assert (back.action, back.values) == (Action.POOL, POOL)


def test_below_min_up_the_normal_switch_happens() -> None:
    svc = pooled()
    s = snap(svc, {"paris": D, "ams": U}, ("10.0.0.1",))
    d = decide_traffic(svc, ServiceState(), s, {"paris": members(U, D, D)}, None)
    assert (d.action, d.target, d.values) == (Action.SWITCH, "ams", None)


def test_switching_to_a_pool_publishes_its_up_values() -> None:
    svc = pooled()
    assert pool_values(svc, "paris", {"paris": members(U, D, U)}) == ("10.0.0.1", "10.0.0.3")
    assert pool_values(svc, "ams", {}) is None


def test_paused_and_pinned_elsewhere_leave_the_subset_alone() -> None:
    svc = pooled()
    m = {"paris": members(U, D, U)}
    s = snap(svc, {"paris": U, "ams": U}, POOL)
    paused = decide_traffic(svc, ServiceState(mode=Mode.PAUSED), s, m, serving(svc, *POOL))
    assert paused.action is Action.NONE
    on_pin = pin(ServiceState(), Pin("paris", "maintenance", "alice", NOW))
    pinned = decide_traffic(svc, on_pin, s, m, serving(svc, *POOL))
    assert pinned.action is Action.POOL  # pinned to the pool itself: still tracks its values


def test_split_answers_understand_subsets() -> None:
    svc = pooled()
    current = serving(svc, "10.0.0.1", "10.0.0.2")
    assert split_answers(svc, current, {"paris": th(U)}) == {}


def test_member_views_key_values_under_their_target() -> None:
    svc = pooled()
    assert member_views(svc, {"paris": members(U, D, N)}) == {
        "paris@10.0.0.1": U,
        "paris@10.0.0.2": D,
        "paris@10.0.0.3": N,
    }


def test_without_a_pool_the_decision_is_unchanged() -> None:
    svc = build_service(policy=PolicyConfig(startup_grace=0))
    current = {
        r.key: RecordSet(r.name, r.type, r.ttl, ("203.0.113.10", "203.0.113.11"))
        for r in svc.records
    }
    s = Snapshot(
        NOW,
        NOW - 5000,
        {"aws": th(U), "ovh": th(U), "scw": th(U)},
        classify_published(svc, current),
    )
    d = decide_traffic(svc, ServiceState(), s, {}, current)
    assert d.action is Action.NONE and d.reason == "aws UP, primary, nothing to do"
    assert RecordType.A in {r.type for r in svc.records}


def test_a_restart_never_drops_a_value_not_judged_yet() -> None:
    svc = pooled()
    s = snap(svc, {"paris": U, "ams": U}, POOL)
    m = {"paris": members(U, U, N)}  # 10.0.0.3 has not finished its rise since the restart
    d = decide_traffic(svc, ServiceState(), s, m, serving(svc, *POOL))
    assert d.action is Action.NONE
    # not served and not judged: not added before it is UP
    s = snap(svc, {"paris": U, "ams": U}, ("10.0.0.1", "10.0.0.2"))
    d = decide_traffic(svc, ServiceState(), s, m, serving(svc, "10.0.0.1", "10.0.0.2"))
    assert d.action is Action.NONE


def test_a_held_pool_below_min_up_still_drops_its_down_values() -> None:
    svc = pooled()
    s = snap(svc, {"paris": D, "ams": D}, POOL)  # nothing better: all_down, hold
    m = {"paris": members(U, D, D)}
    d = decide_traffic(svc, ServiceState(), s, m, serving(svc, *POOL))
    assert (d.action, d.values, d.force) == (Action.POOL, ("10.0.0.1",), True)
    assert d.reason.startswith("all targets down; holding paris; pool paris: publishing 1 of 3")
    assert "all_down" in d.alarms
    # never empty: with no value UP, what is served stays
    none_up = decide_traffic(
        svc, ServiceState(), s, {"paris": members(D, D, D)}, serving(svc, *POOL)
    )
    assert none_up.action is Action.NONE
    # never while this instance cannot judge
    cut = replace(s, isolated=True)
    assert decide_traffic(svc, ServiceState(), cut, m, serving(svc, *POOL)).action is Action.NONE


def test_for_the_isolation_guard_one_failing_value_is_not_a_failing_pool() -> None:
    t = paris(pooled(min_up=2))
    ok = observe(ProbeState(), True, "ok", NOW, 3, 3)
    bad = observe(ProbeState(), False, "refused", NOW, 3, 3)
    one = {"tcp@10.0.0.1": ok, "tcp@10.0.0.2": bad, "tcp@10.0.0.3": ok}
    assert not pool_failing(t, one)
    assert pool_failing(t, {**one, "tcp@10.0.0.3": bad})
