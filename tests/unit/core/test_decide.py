"""The state machine: classification, rules, reasons, alarms and properties."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from failover.config.types import PolicyConfig, ServiceConfig
from failover.core.decide import (
    Action,
    Decision,
    Pin,
    ServiceState,
    Snapshot,
    acknowledge,
    decide,
    pause,
    pin,
    release,
    resume,
    serves_all_records,
)
from failover.core.health import TargetHealth
from failover.core.plan import build_plan, check_plan
from failover.core.published import Published, classify_published
from failover.model import Health, Mode, RecordKey, RecordSet, RecordType, Trigger

MakeService = Callable[..., ServiceConfig]
ServedBy = Callable[..., dict[RecordKey, RecordSet | None]]

U, D, N = Health.UP, Health.DOWN, Health.UNKNOWN
NOW = 100_000.0
KEYS = [RecordKey(p, "example.com", "shop.example.com", RecordType.A) for p in ("ovh", "route53")]
ALICE = Pin("ovh", "aws maintenance", "alice", NOW - 60)


def hmap(since: float = NOW - 3600, **healths: Health) -> dict[str, TargetHealth]:
    reasons = {U: "all 1 probes up", D: "probe http: timeout", N: "waiting"}
    return {name: TargetHealth(h, since, None, reasons[h]) for name, h in healths.items()}


def on(target: str, *missing: RecordKey) -> Published:
    return Published("target", target=target, matches=(target,), missing=missing)


MISSING = Published("missing", missing=tuple(KEYS))
DRIFT = Published("drift", detail="ovh:shop.example.com/A serves 192.0.2.99 (no target)")
UNKNOWN = Published("unknown")


def run(
    state: ServiceState,
    health: dict[str, TargetHealth],
    published: Published,
    *,
    service: ServiceConfig,
    now: float = NOW,
    started_at: float = 0.0,
    isolated: bool = False,
    judging_since: float | None = None,
) -> Decision:
    snap = Snapshot(now, started_at, health, published, isolated, judging_since)
    return decide(service, state, snap)


AUTO = ServiceState()
PINNED = pin(AUTO, ALICE)
FORCED = pin(AUTO, replace(ALICE, force=True))
PAUSED = pause(AUTO)
ALL_UP = hmap(aws=U, ovh=U, scw=U)
MANUAL_FB = PolicyConfig(failback="manual")
AUTO_FB = PolicyConfig(failback="auto", failback_after=300.0)


def case(
    id: str,
    state: ServiceState,
    health: dict[str, TargetHealth],
    published: Published,
    action: Action,
    target: str | None,
    reason: str,
    alarms: tuple[str, ...] = (),
    **kw: Any,
) -> Any:
    return pytest.param(state, health, published, kw, action, target, reason, alarms, id=id)


NONE, SWITCH, PUBLISH = Action.NONE, Action.SWITCH, Action.PUBLISH

TABLE = [
    # 1. paused
    case("paused", PAUSED, hmap(aws=D, ovh=U, scw=U), on("aws"), NONE, None,
         "paused: automatic decisions stopped (failover resume shop)"),
    case("paused-drift", PAUSED, ALL_UP, DRIFT, NONE, None, "paused:", ("drift",)),
    case("paused-all-down", PAUSED, hmap(aws=D, ovh=D, scw=D), on("aws"), NONE, None,
         "paused:", ("all_down",)),
    case("paused-pinned", pause(PINNED), ALL_UP, on("aws"), NONE, None, "paused:"),
    # 2. unknown
    case("unknown", AUTO, hmap(aws=D, ovh=U, scw=U), UNKNOWN, NONE, None,
         "cannot read the published records; holding"),
    case("unknown-pinned", PINNED, ALL_UP, UNKNOWN, NONE, None, "cannot read"),
    # 3. pinned
    case("pinned-on-pin", PINNED, ALL_UP, on("ovh"), NONE, None,
         "pinned to ovh by alice: aws maintenance"),
    case("pinned-on-pin-down", PINNED, hmap(aws=U, ovh=D, scw=U), on("ovh"), NONE, None,
         "pinned to ovh by alice: aws maintenance; ovh is DOWN (probe http: timeout)",
         ("pinned_target_down",)),
    case("pinned-switch", PINNED, ALL_UP, on("aws"), SWITCH, "ovh",
         "pinned to ovh by alice: aws maintenance -> switching to ovh"),
    case("pinned-target-down", PINNED, hmap(aws=U, ovh=D, scw=U), on("aws"), NONE, None,
         "pinned to ovh by alice: aws maintenance; ovh is DOWN, not switching "
         "(failover promote shop ovh --force to override)", ("pinned_target_down",)),
    case("pinned-target-unknown", PINNED, hmap(aws=U, ovh=N, scw=U), on("aws"), NONE, None,
         "ovh is UNKNOWN, not switching", ("pinned_target_down",)),
    case("pinned-forced-down", FORCED, hmap(aws=U, ovh=D, scw=U), on("aws"), SWITCH, "ovh",
         "-> switching to ovh (forced)"),
    case("pinned-drift", PINNED, ALL_UP, DRIFT, NONE, None,
         "drift: ovh:shop.example.com/A serves 192.0.2.99 (no target); not overwriting it "
         "(failover promote shop ovh --force to take over)", ("drift",)),
    case("pinned-drift-forced", FORCED, ALL_UP, DRIFT, SWITCH, "ovh", "(forced)"),
    case("pinned-missing", PINNED, ALL_UP, MISSING, PUBLISH, "ovh", "-> publishing ovh"),
    case("pinned-on-pin-missing", PINNED, ALL_UP, on("ovh", KEYS[1]), PUBLISH, "ovh",
         "-> publishing ovh"),
    case("pinned-ignores-primary-down", PINNED, hmap(aws=D, ovh=U, scw=U), on("ovh"), NONE,
         None, "pinned to ovh"),
    case("pinned-unknown-target", pin(AUTO, replace(ALICE, target="gcp")), ALL_UP, on("aws"),
         NONE, None, "gcp is not a target of shop (failover release shop)",
         ("pinned_target_down",)),
    case("pinned-no-startup-hold", PINNED, hmap(aws=N, ovh=U, scw=N), on("aws"), SWITCH, "ovh",
         "switching to ovh", started_at=NOW - 1),
    case("pinned-ignores-isolation", PINNED, ALL_UP, on("aws"), SWITCH, "ovh", "switching",
         isolated=True),
    case("pinned-ignores-block", replace(PINNED, blocked=True), ALL_UP, on("aws"), SWITCH,
         "ovh", "switching"),
    case("pinned-mode-without-pin", ServiceState(mode=Mode.PINNED), ALL_UP, on("aws"), NONE,
         None, "aws UP, primary, nothing to do"),
    # 4. drift
    case("drift", AUTO, hmap(aws=D, ovh=U, scw=U), DRIFT, NONE, None,
         "drift: ovh:shop.example.com/A serves 192.0.2.99 (no target); not overwriting it "
         "(failover promote shop TARGET --force to take over)", ("drift",)),
    # 5. missing
    case("missing-publish-first-up", AUTO, hmap(aws=D, ovh=U, scw=U), MISSING, PUBLISH, "ovh",
         "no record published yet -> publishing ovh, first UP target in priority order"),
    case("missing-none-up", AUTO, hmap(aws=D, ovh=D, scw=N), MISSING, NONE, None,
         "no record published yet and no target is UP", ("no_healthy_target",)),
    case("missing-startup-hold", AUTO, hmap(aws=N, ovh=U, scw=U), MISSING, NONE, None,
         "starting: waiting for aws to leave UNKNOWN (grace ends in 42s)", started_at=NOW - 18),
    case("missing-startup-publishes-the-primary-at-once", AUTO, hmap(aws=U, ovh=N, scw=N),
         MISSING, PUBLISH, "aws", "publishing aws, first UP target", started_at=NOW - 1),
    case("missing-startup-waits-only-above", AUTO, hmap(aws=D, ovh=N, scw=U), MISSING, NONE,
         None, "starting: waiting for ovh to leave UNKNOWN", started_at=NOW - 1),
    case("missing-startup-primary-known-down", AUTO, hmap(aws=D, ovh=U, scw=N), MISSING,
         PUBLISH, "ovh", "publishing ovh", started_at=NOW - 1),
    case("missing-after-grace", AUTO, hmap(aws=N, ovh=U, scw=N), MISSING, PUBLISH, "ovh",
         "publishing ovh", started_at=NOW - 60),
    case("partly-missing-restore", AUTO, ALL_UP, on("aws", KEYS[1]), PUBLISH, "aws",
         "aws UP but route53:shop.example.com/A missing -> re-creating with aws"),
    case("partly-missing-active-down", AUTO, hmap(aws=D, ovh=U, scw=U), on("aws", KEYS[1]),
         SWITCH, "ovh", "switching to ovh, first UP target in priority order (1 record missing)"),
    case("partly-missing-restore-during-startup", AUTO, hmap(aws=U, ovh=N, scw=N),
         on("aws", KEYS[0]), PUBLISH, "aws", "re-creating", started_at=NOW - 1),
    # 6. start-up
    case("startup-hold", AUTO, hmap(aws=D, ovh=N, scw=N), on("aws"), NONE, None,
         "starting: waiting for ovh, scw to leave UNKNOWN (grace ends in 42s)",
         started_at=NOW - 18),
    case("startup-grace-over", AUTO, hmap(aws=D, ovh=U, scw=N), on("aws"), SWITCH, "ovh",
         "switching to ovh", started_at=NOW - 60),
    case("startup-all-known", AUTO, hmap(aws=D, ovh=U, scw=D), on("aws"), SWITCH, "ovh",
         "switching to ovh", started_at=NOW - 1),
    # 7. isolated
    case("isolated", AUTO, hmap(aws=D, ovh=U, scw=U), on("aws"), NONE, None,
         "isolated: this vantage point sees targets in several locations fail at once; "
         "no automatic switch (on aws, DOWN)", ("isolated",), isolated=True),
    # 8. active DOWN
    case("failover", AUTO, hmap(aws=D, ovh=U, scw=U), on("aws"), SWITCH, "ovh",
         "aws DOWN (probe http: timeout) -> switching to ovh, first UP target in priority order"),
    case("failover-skips-down", AUTO, hmap(aws=D, ovh=D, scw=U), on("aws"), SWITCH, "scw",
         "switching to scw"),
    case("failover-from-secondary", AUTO, hmap(aws=D, ovh=D, scw=U), on("ovh"), SWITCH, "scw",
         "ovh DOWN (probe http: timeout) -> switching to scw"),
    case("all-down", AUTO, hmap(aws=D, ovh=D, scw=D), on("aws"), NONE, None,
         "all targets down; holding aws", ("all_down",)),
    case("down-no-other-up", AUTO, hmap(aws=D, ovh=N, scw=D), on("aws"), NONE, None,
         "aws DOWN (probe http: timeout); no other target is UP (ovh UNKNOWN, scw DOWN); "
         "holding aws", ("no_healthy_target",)),
    case("blocked", replace(AUTO, blocked=True), hmap(aws=D, ovh=U, scw=U), on("aws"), NONE,
         None, "blocked: automatic switching stopped until failover ack shop (aws DOWN, ovh UP)",
         ("blocked",)),
    case("cooldown", replace(AUTO, auto_switches=(NOW - 170,)), hmap(aws=D, ovh=U, scw=U),
         on("aws"), NONE, None,
         "cooldown: next automatic switch allowed in 2m10s (aws DOWN, ovh UP)"),
    case("flap-block", replace(AUTO, auto_switches=(NOW - 3000, NOW - 2000, NOW - 1000)),
         hmap(aws=D, ovh=U, scw=U), on("aws"), NONE, None,
         "blocked: 3 automatic switches within 1h; failover ack shop to let automation act "
         "(aws DOWN, ovh UP)", ("blocked",)),
    case("flap-window-slides", replace(AUTO, auto_switches=(NOW - 3700, NOW - 2000, NOW - 1000)),
         hmap(aws=D, ovh=U, scw=U), on("aws"), SWITCH, "ovh", "switching to ovh"),
    # 9. failback
    case("failback-manual", AUTO, ALL_UP, on("ovh"), NONE, None,
         "on ovh (UP); primary aws is UP again — failback is manual (failover promote shop aws)",
         policy=MANUAL_FB),
    case("failback-manual-higher", AUTO, hmap(aws=D, ovh=U, scw=U), on("scw"), NONE, None,
         "on scw (UP); higher-priority target ovh is UP again — failback is manual "
         "(failover promote shop ovh)"),
    case("failback-auto-wait", AUTO, hmap(aws=U, ovh=U, scw=U, since=NOW - 120), on("ovh"),
         NONE, None, "on ovh (UP); failback to aws in 3m (UP for 2m)",
         policy=AUTO_FB),
    case("failback-auto", AUTO, hmap(aws=U, ovh=U, scw=U, since=NOW - 300), on("ovh"),
         SWITCH, "aws", "failback: aws UP for 5m -> switching back from ovh",
         policy=AUTO_FB),
    case("failback-auto-active-unknown", AUTO, hmap(aws=U, ovh=N, scw=U), on("ovh"),
         SWITCH, "aws", "failback: aws UP", policy=AUTO_FB),
    case("failback-auto-cooldown", replace(AUTO, auto_switches=(NOW - 60,)), ALL_UP, on("ovh"),
         NONE, None, "cooldown: next automatic switch allowed in 4m (on ovh (UP), aws UP)",
         policy=AUTO_FB),
    case("failback-auto-blocked", replace(AUTO, blocked=True), ALL_UP, on("ovh"), NONE, None,
         "blocked: automatic switching stopped", ("blocked",),
         policy=AUTO_FB),
    # 7b. recovering from a common-mode failure: targets re-report before any switch (the
    # test service's probes: rise 3 * interval 5s + timeout 2s = 17s to settle)
    case("recovering-holds-a-race-winner", AUTO, hmap(aws=D, ovh=U, scw=U), on("aws"), NONE,
         None, "recovering: this instance could judge again 3s ago (after isolation or a "
         "stalled loop); no automatic switch until every target has re-reported, in 14s "
         "(on aws, DOWN)", judging_since=NOW - 3),
    case("recovered-switches", AUTO, hmap(aws=D, ovh=U, scw=U), on("aws"), SWITCH, "ovh",
         "aws DOWN", judging_since=NOW - 17),
    case("recovering-active-up-nothing-to-do", AUTO, ALL_UP, on("aws"), NONE, None,
         "aws UP, primary, nothing to do", judging_since=NOW - 1),
    case("recovering-pinned-still-moves", PINNED, hmap(aws=D, ovh=U, scw=U), on("aws"), SWITCH,
         "ovh", "", judging_since=NOW - 1),
    case("failback-auto-isolated", AUTO, ALL_UP, on("ovh"), NONE, None, "isolated:",
         ("isolated",), policy=AUTO_FB, isolated=True),
    # 10. nothing to do
    case("steady", AUTO, ALL_UP, on("aws"), NONE, None, "aws UP, primary, nothing to do"),
    case("steady-secondary", AUTO, hmap(aws=D, ovh=U, scw=U), on("ovh"), NONE, None,
         "on ovh (UP); no higher-priority target is UP (aws DOWN)"),
    case("active-unknown", AUTO, hmap(aws=N, ovh=U, scw=U), on("aws"), NONE, None,
         "on aws (UNKNOWN): waiting; holding", started_at=NOW - 3600),
    case("steady-but-blocked", replace(AUTO, blocked=True), ALL_UP, on("aws"), NONE, None,
         "aws UP, primary, nothing to do; automation blocked (failover ack shop)", ("blocked",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "health", "published", "kw", "action", "target", "reason", "alarms"), TABLE
)
def test_decide_table(
    make_service: MakeService,
    state: ServiceState,
    health: dict[str, TargetHealth],
    published: Published,
    kw: dict[str, Any],
    action: Action,
    target: str | None,
    reason: str,
    alarms: tuple[str, ...],
) -> None:
    service = make_service(policy=kw.pop("policy", None))
    d = run(state, health, published, service=service, **kw)
    assert (d.action, d.target) == (action, target)
    assert reason in d.reason, d.reason
    assert d.alarms == frozenset(alarms)
    if action is Action.NONE:
        assert d.trigger is Trigger.AUTO
    else:
        manual = state.mode is Mode.PINNED and state.pin is not None
        assert d.trigger is (Trigger.MANUAL if manual else Trigger.AUTO)
    assert "\n" not in d.reason


def test_automatic_switch_records_its_time(shop: ServiceConfig) -> None:
    before = replace(AUTO, auto_switches=(NOW - 1000,))
    d = run(before, hmap(aws=D, ovh=U, scw=U), on("aws"), service=shop)
    assert d.action is Action.SWITCH
    assert d.state == replace(
        before, auto_switches=(NOW - 1000, NOW), last_switch_at=NOW, last_auto_switch_at=NOW
    )


def test_manual_switch_is_not_counted_as_automatic(shop: ServiceConfig) -> None:
    d = run(FORCED, hmap(aws=U, ovh=D, scw=U), on("aws"), service=shop)
    assert (d.action, d.trigger, d.force) == (Action.SWITCH, Trigger.MANUAL, True)
    assert d.state == replace(FORCED, last_switch_at=NOW)
    assert not run(PINNED, ALL_UP, on("aws"), service=shop).force


def test_flap_block_is_persisted_and_ack_lifts_it(shop: ServiceConfig) -> None:
    switches = (NOW - 3000, NOW - 2000, NOW - 1000)
    state = replace(AUTO, auto_switches=switches, last_auto_switch_at=NOW - 1000)
    d = run(state, hmap(aws=D, ovh=U, scw=U), on("aws"), service=shop)
    assert d.state.blocked and d.state.auto_switches == switches
    later = NOW + 10_000
    again = run(d.state, hmap(aws=D, ovh=U, scw=U), on("aws"), service=shop, now=later)
    assert again.action is Action.NONE and "blocked" in again.alarms  # stays until ack
    acked = acknowledge(d.state)
    assert (acked.blocked, acked.auto_switches) == (False, ())
    d = run(acked, hmap(aws=D, ovh=U, scw=U), on("aws"), service=shop)
    assert d.action is Action.SWITCH


def test_ack_does_not_skip_the_cooldown(shop: ServiceConfig) -> None:
    state = replace(AUTO, blocked=True, auto_switches=(NOW - 10,), last_auto_switch_at=NOW - 10)
    d = run(acknowledge(state), hmap(aws=D, ovh=U, scw=U), on("aws"), service=shop)
    assert d.action is Action.NONE and d.reason.startswith("cooldown: ")


def test_old_switches_are_pruned_from_the_state(shop: ServiceConfig) -> None:
    state = replace(AUTO, auto_switches=(NOW - 7200, NOW - 10))
    assert run(state, ALL_UP, on("aws"), service=shop).state.auto_switches == (NOW - 10,)
    assert run(PAUSED, ALL_UP, on("aws"), service=shop).state == PAUSED


def test_targets_with_identical_values_are_not_switched_between(
    make_service: MakeService, served_by: ServedBy
) -> None:
    twins = make_service(
        targets={
            "a": ("aws", ("192.0.2.1",)),
            "b": ("ovh", ("192.0.2.1",)),
            "c": ("scw", ("192.0.2.3",)),
        }
    )
    published = classify_published(twins, served_by(twins, "a"))
    assert (published.target, published.matches) == ("a", ("a", "b"))
    d = run(AUTO, hmap(a=D, b=U, c=U), published, service=twins)
    assert d.action is Action.NONE  # b serves the very same answer, and it is UP
    d = run(AUTO, hmap(a=D, b=D, c=U), published, service=twins)
    assert (d.action, d.target) == (Action.SWITCH, "c")
    bob = pin(AUTO, Pin("b", "r", "bob", 0.0))
    d = run(bob, hmap(a=D, b=U, c=U), published, service=twins)
    assert (d.action, d.reason) == (Action.NONE, "pinned to b by bob: r")


def test_a_target_lacking_values_for_a_record_is_never_chosen(
    make_service: MakeService, served_by: ServedBy
) -> None:
    dual = make_service(
        targets={"v4": ("aws", ("192.0.2.1",)), "both": ("ovh", ("192.0.2.2", "2001:db8::2"))},
        records=(("ovh", RecordType.A), ("ovh", RecordType.AAAA)),
    )
    assert not serves_all_records(dual, "v4") and serves_all_records(dual, "both")
    d = run(AUTO, hmap(v4=U, both=U), Published("missing"), service=dual)
    assert (d.action, d.target) == (Action.PUBLISH, "both")
    forced = pin(AUTO, Pin("v4", "r", "bob", 0.0, force=True))
    published = classify_published(dual, served_by(dual, "both"))
    d = run(forced, hmap(v4=U, both=U), published, service=dual)
    assert d.action is Action.NONE and "pinned_target_down" in d.alarms


# --- classify_published ------------------------------------------------------------------


def rs(*values: str, ttl: int = 60) -> RecordSet:
    return RecordSet("shop.example.com", RecordType.A, ttl, values)


AWS_RS = rs("203.0.113.10", "203.0.113.11")


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (None, Published("unknown")),
        (
            {KEYS[0]: None},
            Published("unknown", detail="no reading for route53:shop.example.com/A"),
        ),
        (
            {KEYS[0]: None, KEYS[1]: None},
            Published("missing", detail="no record exists yet", missing=tuple(KEYS)),
        ),
        (
            {KEYS[0]: rs("203.0.113.11 ", "203.0.113.10"), KEYS[1]: rs(*AWS_RS.values, ttl=300)},
            Published("target", "aws", "2 records serve aws", matches=("aws",)),
        ),
        (
            {KEYS[0]: rs("198.51.100.20"), KEYS[1]: None},
            Published(
                "target",
                "ovh",
                "1 record serves ovh; missing: route53:shop.example.com/A",
                missing=(KEYS[1],),
                matches=("ovh",),
            ),
        ),
        (
            {KEYS[0]: rs("192.0.2.99"), KEYS[1]: AWS_RS},
            Published("drift", detail="ovh:shop.example.com/A serves 192.0.2.99 (no target)"),
        ),
        (
            {KEYS[0]: rs("203.0.113.10"), KEYS[1]: AWS_RS},
            Published("drift", detail="ovh:shop.example.com/A serves 203.0.113.10 (no target)"),
        ),
        (
            {KEYS[0]: rs("198.51.100.20"), KEYS[1]: rs("192.0.2.30")},
            Published(
                "drift",
                detail="records disagree: ovh:shop.example.com/A serves ovh, "
                "route53:shop.example.com/A serves scw",
            ),
        ),
        (
            {KEYS[0]: rs("not-an-ip"), KEYS[1]: rs("192.0.2.30")},
            Published("drift", detail="ovh:shop.example.com/A serves not-an-ip (no target)"),
        ),
        (
            {KEYS[0]: rs(), KEYS[1]: rs("192.0.2.30")},
            Published("drift", detail="ovh:shop.example.com/A serves (empty) (no target)"),
        ),
    ],
)
def test_classify_published(
    shop: ServiceConfig,
    current: dict[RecordKey, RecordSet | None] | None,
    expected: Published,
) -> None:
    assert classify_published(shop, current) == expected


def test_classify_cname_and_shared_values(make_service: MakeService) -> None:
    svc = make_service(
        targets={"a": ("aws", ("lb.aws.example.net",)), "b": ("ovh", ("LB.aws.example.net.",))},
        records=(("ovh", RecordType.CNAME),),
    )
    key = svc.records[0].key
    current = {key: RecordSet("shop.example.com", RecordType.CNAME, 60, ("lb.AWS.example.net.",))}
    p = classify_published(svc, current)
    assert (p.kind, p.target, p.matches) == ("target", "a", ("a", "b"))


# --- helpers -------------------------------------------------------------------------------


def test_mode_helpers() -> None:
    p = Pin("ovh", "r", "alice", 1.0)
    pinned = pin(AUTO, p)
    assert (pinned.mode, pinned.pin) == (Mode.PINNED, p)
    assert pause(pinned) == replace(pinned, mode=Mode.PAUSED)
    assert resume(pause(pinned)) == pinned
    assert resume(PAUSED) == AUTO
    assert release(pinned) == AUTO
    assert release(pause(pinned)) == PAUSED
    assert pin(PAUSED, p).mode is Mode.PINNED
    blocked = ServiceState(
        blocked=True, auto_switches=(1.0, 2.0), last_switch_at=2.0, last_auto_switch_at=2.0
    )
    assert acknowledge(blocked) == ServiceState(last_switch_at=2.0, last_auto_switch_at=2.0)


# --- properties ----------------------------------------------------------------------------

HEALTHS = st.sampled_from([U, U, D, D, N])
TARGETS = ["aws", "ovh", "scw"]

policies = st.builds(
    PolicyConfig,
    failback=st.sampled_from(["manual", "auto"]),
    failback_after=st.sampled_from([0.0, 60.0, 600.0]),
    cooldown=st.sampled_from([0.0, 30.0, 300.0, 7200.0]),
    max_auto_switches=st.integers(1, 4),
    flap_window=st.sampled_from([60.0, 600.0, 3600.0]),
    startup_grace=st.sampled_from([0.0, 60.0]),
)
pins = st.builds(
    Pin,
    target=st.sampled_from(TARGETS),
    reason=st.just("r"),
    actor=st.just("op"),
    at=st.just(0.0),
    force=st.booleans(),
)
states = st.builds(
    ServiceState,
    mode=st.sampled_from(list(Mode)),
    pin=st.none() | pins,
    blocked=st.sampled_from([False, False, False, True]),
    auto_switches=st.lists(st.floats(NOW - 4000, NOW), max_size=4).map(lambda x: tuple(sorted(x))),
)
# per record: absent, served by a target, or a value no target has; mostly consistent
record_values = st.sampled_from([None, "aws", "ovh", "scw", "rogue"])
record_picks = st.one_of(
    record_values.map(lambda v: [v, v]),
    st.sampled_from(TARGETS).map(lambda v: [v, v]),
    st.lists(record_values, min_size=2, max_size=2),
)


def health_map(healths: tuple[Health, ...], since: float) -> dict[str, TargetHealth]:
    """The three targets' health, in priority order, each held since `since`."""
    return {
        name: TargetHealth(h, since, None, "r") for name, h in zip(TARGETS, healths, strict=True)
    }


def make_current(
    service: ServiceConfig, served_by: ServedBy, picks: list[str | None]
) -> dict[RecordKey, RecordSet | None]:
    current: dict[RecordKey, RecordSet | None] = {}
    for record, pick in zip(service.records, picks, strict=True):
        if pick is None:
            current[record.key] = None
        elif pick == "rogue":
            current[record.key] = RecordSet(record.name, record.type, 60, ("192.0.2.99",))
        else:
            current[record.key] = served_by(service, pick)[record.key]
    return current


@settings(max_examples=500)
@given(
    policy=policies,
    state=states,
    healths=st.tuples(HEALTHS, HEALTHS, HEALTHS),
    picks=record_picks,
    unreadable=st.booleans(),
    isolated=st.sampled_from([False, False, False, True]),
    started_ago=st.sampled_from([0.0, 30.0, 3600.0]),
    up_for=st.sampled_from([0.0, 100.0, 10_000.0]),
)
def test_switch_targets_are_up_and_plans_safe(
    make_service: MakeService,
    served_by: ServedBy,
    policy: PolicyConfig,
    state: ServiceState,
    healths: tuple[Health, Health, Health],
    picks: list[str | None],
    unreadable: bool,
    isolated: bool,
    started_ago: float,
    up_for: float,
) -> None:
    """(a) a SWITCH/PUBLISH target is UP unless forced pin; its plan is never empty."""
    service = make_service(policy=policy)
    health = health_map(healths, NOW - up_for)
    current = make_current(service, served_by, picks)
    published = classify_published(service, None if unreadable else current)
    d = decide(service, state, Snapshot(NOW, NOW - started_ago, health, published, isolated))
    event(f"{d.action} {d.trigger} force={d.force}")
    if d.action is Action.NONE:
        assert d.target is None
        return
    assert d.target is not None and not unreadable and state.mode is not Mode.PAUSED
    forced_pin = state.mode is Mode.PINNED and state.pin is not None and state.pin.force
    assert health[d.target].health is Health.UP or forced_pin
    assert d.force == forced_pin
    plan = build_plan(service, d.target, current, d.trigger, d.reason)
    assert plan.changes and all(c.after for c in plan.changes)
    violations = check_plan(plan, service, health, current)
    assert all(v.rule != "never-empty" for v in violations)
    if not d.force:
        assert violations == []


@given(
    policy=policies,
    p=pins,
    healths=st.lists(st.tuples(HEALTHS, HEALTHS, HEALTHS), min_size=1, max_size=20),
    start=st.sampled_from(TARGETS),
)
def test_pinned_service_only_moves_to_its_pin(
    make_service: MakeService,
    served_by: ServedBy,
    policy: PolicyConfig,
    p: Pin,
    healths: list[tuple[Health, Health, Health]],
    start: str,
) -> None:
    """(b) over any health timeline a pinned service never switches to anything but its pin."""
    service = make_service(policy=policy)
    state = pin(ServiceState(), p)
    current = served_by(service, start)
    for step, hs in enumerate(healths):
        now = NOW + 10 * step
        health = {n: TargetHealth(h, 0.0, None, "r") for n, h in zip(TARGETS, hs, strict=True)}
        published = classify_published(service, current)
        d = decide(service, state, Snapshot(now, 0.0, health, published))
        if d.action is not Action.NONE:
            assert (d.target, d.trigger) == (p.target, Trigger.MANUAL)
            current = served_by(service, p.target)
        state = d.state
        assert state.mode is Mode.PINNED and state.pin == p
        assert state.auto_switches == ()


timeline_step = st.tuples(
    st.sampled_from([1.0, 5.0, 30.0, 120.0, 600.0]),  # time advance
    st.tuples(HEALTHS, HEALTHS, HEALTHS),
    st.integers(0, 30),  # 0: the operator acks at this step
)


@settings(max_examples=300)
@given(policy=policies, steps=st.lists(timeline_step, min_size=1, max_size=60))
def test_simulated_runs_respect_cooldown_and_flap_limit(
    make_service: MakeService,
    served_by: ServedBy,
    policy: PolicyConfig,
    steps: list[tuple[float, tuple[Health, Health, Health], int]],
) -> None:
    """(c) automatic switches are >= cooldown apart and <= max per flap_window between acks."""
    service = make_service(policy=policy)
    state = ServiceState()
    current = served_by(service, "aws")
    now = started = NOW
    health: dict[str, TargetHealth] = {}
    switches: list[float] = []
    last_ack = float("-inf")
    for dt, hs, ack in steps:
        now += dt
        for name, h in zip(TARGETS, hs, strict=True):
            prev = health.get(name)
            since = prev.since if prev is not None and prev.health is h else now
            health[name] = TargetHealth(h, since, None, "r")
        if ack == 0:
            state, last_ack = acknowledge(state), now
        published = classify_published(service, current)
        d = decide(service, state, Snapshot(now, started, health, published))
        state = d.state
        if d.action is Action.NONE:
            continue
        assert d.target is not None and health[d.target].health is Health.UP
        plan = build_plan(service, d.target, current, d.trigger, d.reason)
        assert plan.changes and check_plan(plan, service, health, current) == []
        current = served_by(service, d.target)
        if d.action is Action.SWITCH and d.trigger is Trigger.AUTO:
            if switches:
                assert now - switches[-1] >= policy.cooldown
            window = [t for t in switches if now - t < policy.flap_window and t >= last_ack]
            assert len(window) < policy.max_auto_switches
            switches.append(now)
    event(f"{len(switches)} automatic switches")
    event(f"blocked at the end: {state.blocked}")
    expected = tuple(t for t in switches if t >= last_ack and now - t < policy.flap_window)
    assert state.auto_switches == expected
