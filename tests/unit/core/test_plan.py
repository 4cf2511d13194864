"""Plans (current vs desired records) and the safety rules checked before an apply."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from failover.config.types import ServiceConfig
from failover.core.health import TargetHealth
from failover.core.plan import Plan, Violation, build_plan, check_plan, refusal
from failover.model import Change, Health, RecordKey, RecordSet, RecordType, Trigger

MakeService = Callable[..., ServiceConfig]
ServedBy = Callable[..., dict[RecordKey, RecordSet | None]]

OVH_A = RecordKey("ovh", "example.com", "shop.example.com", RecordType.A)
R53_A = RecordKey("route53", "example.com", "shop.example.com", RecordType.A)
AWS_VALUES = ("203.0.113.10", "203.0.113.11")


def rs(*values: str, ttl: int = 60, rtype: RecordType = RecordType.A) -> RecordSet:
    return RecordSet("shop.example.com", rtype, ttl, values)


def health(**kw: Health) -> dict[str, TargetHealth]:
    return {name: TargetHealth(h, 0.0, None, "probe tcp: refused") for name, h in kw.items()}


UP3 = health(aws=Health.UP, ovh=Health.UP, scw=Health.UP)


def test_switch_rewrites_every_record(shop: ServiceConfig, served_by: ServedBy) -> None:
    plan = build_plan(shop, "ovh", served_by(shop, "aws"), Trigger.AUTO, "aws DOWN")
    assert plan == Plan(
        "shop",
        "ovh",
        Trigger.AUTO,
        "aws DOWN",
        (
            Change(OVH_A, 60, AWS_VALUES, ("198.51.100.20",)),
            Change(R53_A, 60, AWS_VALUES, ("198.51.100.20",)),
        ),
    )
    assert plan.changes[0].describe() == (
        "ovh:shop.example.com/A: 203.0.113.10, 203.0.113.11 -> 198.51.100.20"
    )


@pytest.mark.parametrize(
    ("current", "changes"),
    [
        ({OVH_A: rs(*AWS_VALUES), R53_A: rs(*AWS_VALUES)}, ()),
        # spelling and order do not matter
        ({OVH_A: rs("203.0.113.11", " 203.0.113.10"), R53_A: rs(*AWS_VALUES)}, ()),
        # TTL differs: rewritten with the configured TTL
        (
            {OVH_A: rs(*AWS_VALUES, ttl=300), R53_A: rs(*AWS_VALUES)},
            (Change(OVH_A, 60, AWS_VALUES, AWS_VALUES),),
        ),
        # absent, or not read at all: created
        (
            {OVH_A: None, R53_A: rs(*AWS_VALUES)},
            (Change(OVH_A, 60, None, AWS_VALUES),),
        ),
        ({R53_A: rs(*AWS_VALUES)}, (Change(OVH_A, 60, None, AWS_VALUES),)),
        # unparseable values are replaced, shown as read
        (
            {OVH_A: rs("garbage"), R53_A: rs(*AWS_VALUES)},
            (Change(OVH_A, 60, ("garbage",), AWS_VALUES),),
        ),
    ],
)
def test_only_differences_become_changes(
    shop: ServiceConfig,
    current: dict[RecordKey, RecordSet | None],
    changes: tuple[Change, ...],
) -> None:
    assert build_plan(shop, "aws", current, Trigger.MANUAL, "r").changes == changes


def test_values_are_picked_by_record_type(make_service: MakeService) -> None:
    svc = make_service(
        targets={"a": ("aws", ("192.0.2.1", "2001:DB8::1", "192.0.2.2"))},
        records=(("ovh", RecordType.A), ("ovh", RecordType.AAAA)),
    )
    plan = build_plan(svc, "a", {}, Trigger.AUTO, "r")
    assert [c.after for c in plan.changes] == [("192.0.2.1", "192.0.2.2"), ("2001:db8::1",)]


def test_unknown_target_is_an_error(shop: ServiceConfig) -> None:
    with pytest.raises(ValueError, match="'gcp' is not a target of service 'shop'"):
        build_plan(shop, "gcp", {}, Trigger.MANUAL, "r")


def rules(violations: list[Violation]) -> list[str]:
    return [v.rule for v in violations]


def test_a_healthy_switch_passes(shop: ServiceConfig, served_by: ServedBy) -> None:
    current = served_by(shop, "aws")
    plan = build_plan(shop, "ovh", current, Trigger.AUTO, "r")
    assert check_plan(plan, shop, UP3, current) == []


@pytest.mark.parametrize(
    ("target_health", "message"),
    [
        (Health.DOWN, "ovh is DOWN (probe tcp: refused)"),
        (Health.UNKNOWN, "ovh is UNKNOWN (probe tcp: refused)"),
        (None, "ovh is UNKNOWN"),
    ],
)
def test_target_not_up(
    shop: ServiceConfig, served_by: ServedBy, target_health: Health | None, message: str
) -> None:
    current = served_by(shop, "aws")
    plan = build_plan(shop, "ovh", current, Trigger.MANUAL, "r")
    h = {k: v for k, v in UP3.items() if k != "ovh"}
    if target_health is not None:
        h |= health(ovh=target_health)
    assert check_plan(plan, shop, h, current) == [Violation("target-not-up", message)]


def test_drift_is_refused(shop: ServiceConfig) -> None:
    current: dict[RecordKey, RecordSet | None] = {OVH_A: rs("192.0.2.99"), R53_A: None}
    plan = build_plan(shop, "ovh", current, Trigger.MANUAL, "r")
    assert check_plan(plan, shop, UP3, current) == [
        Violation(
            "drift",
            "ovh:shop.example.com/A serves 192.0.2.99, which matches no target "
            "(changed by hand?); --force to overwrite",
        )
    ]


def test_records_serving_different_targets_are_not_drift(shop: ServiceConfig) -> None:
    current: dict[RecordKey, RecordSet | None] = {
        OVH_A: rs("198.51.100.20"),
        R53_A: rs(*AWS_VALUES),
    }
    plan = build_plan(shop, "ovh", current, Trigger.AUTO, "r")
    assert check_plan(plan, shop, UP3, current) == []


def test_unknown_target_and_empty_answers(shop: ServiceConfig) -> None:
    empty = Plan("shop", "gcp", Trigger.MANUAL, "r", (Change(OVH_A, 60, None, ()),))
    assert check_plan(empty, shop, UP3, {}) == [
        Violation("unknown-target", "gcp is not a target of shop"),
        Violation("target-not-up", "gcp is UNKNOWN"),
        Violation("never-empty", "gcp would publish an empty answer for ovh:shop.example.com/A"),
    ]


def test_a_target_without_values_for_a_record_is_never_empty_violation(
    make_service: MakeService,
) -> None:
    svc = make_service(
        targets={"v4": ("aws", ("192.0.2.1",))},
        records=(("ovh", RecordType.A), ("ovh", RecordType.AAAA)),
    )
    plan = build_plan(svc, "v4", {}, Trigger.MANUAL, "r")
    assert rules(check_plan(plan, svc, health(v4=Health.UP), {})) == ["never-empty"]
    # even when the empty RRset is already "published" (no change in the plan)
    aaaa = svc.records[1].key
    current: dict[RecordKey, RecordSet | None] = {aaaa: rs(rtype=RecordType.AAAA)}
    plan = build_plan(svc, "v4", current, Trigger.MANUAL, "r")
    assert [c.key for c in plan.changes] == [svc.records[0].key]
    assert rules(check_plan(plan, svc, health(v4=Health.UP), current)) == ["never-empty"]


DRIFT = Violation("drift", "ovh:shop.example.com/A serves 192.0.2.99 (changed by hand?)")
DOWN = Violation("target-not-up", "ovh is DOWN")
EMPTY = Violation("never-empty", "ovh would publish an empty answer for ovh:shop.example.com/A")


@pytest.mark.parametrize(
    ("violations", "force", "blocking"),
    [
        ([], False, ()),
        ([], True, ()),
        ([DRIFT, DOWN], False, (DRIFT, DOWN)),
        ([DRIFT, DOWN], True, ()),  # force overrides every rule …
        ([DRIFT, EMPTY], True, (EMPTY,)),  # … but never-empty
        ([EMPTY], False, (EMPTY,)),
    ],
)
def test_force_overrides_every_rule_but_never_empty(
    violations: list[Violation], force: bool, blocking: tuple[Violation, ...]
) -> None:
    refused = refusal(violations, force)
    assert (refused.violations if refused else ()) == blocking


def test_refusal_names_the_rules_and_the_way_out() -> None:
    refused = refusal([DRIFT, DOWN], force=False)
    assert refused is not None
    assert refused.rules == "drift, target-not-up"
    assert refused.message() == f"drift: {DRIFT.message}; target-not-up: ovh is DOWN"
    assert refused.for_operator() == (
        f"refused by drift, target-not-up: {DRIFT.message}; ovh is DOWN (--force overrides)"
    )
    forced = refusal([EMPTY], force=True)
    assert forced is not None and not forced.for_operator().endswith("(--force overrides)")
