"""Current vs desired records -> Plan, and the safety rules checked before any apply."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from failover.config.types import ServiceConfig
from failover.core.health import TargetHealth
from failover.core.values import FALLBACK, is_fallback, serves, target_values
from failover.model import (
    Change,
    Health,
    RecordKey,
    RecordSet,
    Trigger,
    canonical_values,
    values_for_type,
)

# Stable rule names, shown in refusals (`--force` overrides them).
RULE_NEVER_EMPTY = "never-empty"
RULE_UNKNOWN_TARGET = "unknown-target"
RULE_TARGET_NOT_UP = "target-not-up"
RULE_DRIFT = "drift"


@dataclass(frozen=True)
class Plan:
    service: str
    target: str
    trigger: Trigger
    reason: str
    changes: tuple[Change, ...]  # only the records whose values or TTL differ


@dataclass(frozen=True)
class Violation:
    rule: str  # stable name shown in refusals: never-empty, target-not-up, drift, unknown-target
    message: str


def _served(rs: RecordSet, key: RecordKey) -> tuple[str, ...] | None:
    """Canonical values of a record as read; None when they do not parse as `key.type`."""
    try:
        return canonical_values(key.type, rs.values)
    except ValueError:
        return None


def build_plan(
    service: ServiceConfig,
    target: str,
    current: Mapping[RecordKey, RecordSet | None],
    trigger: Trigger,
    reason: str,
    values: tuple[str, ...] | None = None,
) -> Plan:
    """The changes that make every record of `service` serve `target` with its configured TTL:
    `values` when given (a pool's UP subset), else all the target's (or the fallback's).

    A record missing from `current` is treated as absent. Raises ValueError for an unknown target.
    """
    known = target_values(service, target)
    if known is None:
        raise ValueError(f"{target!r} is not a target of service {service.name!r}")
    publish = known if values is None else values
    changes: list[Change] = []
    for record in service.records:
        key = record.key
        desired = values_for_type(record.type, publish)
        rs = current.get(key)
        if rs is not None and _served(rs, key) == desired and rs.ttl == record.ttl:
            continue
        before = rs.values if rs is not None else None
        changes.append(Change(key=key, ttl=record.ttl, before=before, after=desired))
    return Plan(service.name, target, trigger, reason, tuple(changes))


def check_plan(
    plan: Plan,
    service: ServiceConfig,
    health: Mapping[str, TargetHealth],
    current: Mapping[RecordKey, RecordSet | None],
) -> list[Violation]:
    """The safety rules a plan breaks, in a stable order; empty when it may be applied."""
    violations: list[Violation] = []
    fallback = plan.target == FALLBACK and service.fallback is not None
    t = service.target(plan.target)
    if t is None and not fallback:
        violations.append(
            Violation(RULE_UNKNOWN_TARGET, f"{plan.target} is not a target of {service.name}")
        )
    th = health.get(plan.target)
    # the fallback is published because every target is DOWN: it has no health of its own
    if not fallback and (th is None or th.health != Health.UP):
        state = Health(th.health).name if th is not None else "UNKNOWN"
        why = f" ({th.reason})" if th is not None and th.reason else ""
        violations.append(Violation(RULE_TARGET_NOT_UP, f"{plan.target} is {state}{why}"))

    empty = [str(c.key) for c in plan.changes if not c.after]
    if t is not None:
        empty += [
            str(r.key)
            for r in service.records
            if not values_for_type(r.type, t.values) and str(r.key) not in empty
        ]
    if empty:
        violations.append(
            Violation(
                RULE_NEVER_EMPTY,
                f"{plan.target} would publish an empty answer for {', '.join(empty)}",
            )
        )

    for record in service.records:
        rs = current.get(record.key)
        if rs is None:
            continue
        served = _served(rs, record.key)
        if served is None or not (
            any(serves(other, record.type, served) for other in service.targets)
            or is_fallback(service, record.type, served)
        ):
            shown = ", ".join(rs.values) or "(empty)"
            violations.append(
                Violation(
                    RULE_DRIFT,
                    f"{record.key} serves {shown}, which matches no target "
                    f"(changed by hand?); --force to overwrite",
                )
            )
    return violations


@dataclass(frozen=True)
class Refusal:
    """Why a plan may not be applied: the rules it breaks that `force` does not override."""

    violations: tuple[Violation, ...]
    forced: bool

    @property
    def rules(self) -> str:
        return ", ".join(v.rule for v in self.violations)

    def message(self) -> str:
        """One line for the journal and the engine: `rule: message; rule: message`."""
        return "; ".join(f"{v.rule}: {v.message}" for v in self.violations)

    def for_operator(self) -> str:
        """One line for a command's answer, with the way out when there is one."""
        text = "; ".join(v.message for v in self.violations)
        hint = "" if self.forced else " (--force overrides)"
        return f"refused by {self.rules}: {text}{hint}"


def refusal(violations: list[Violation], force: bool) -> Refusal | None:
    """The one force rule: a forced plan overrides every safety rule but never-empty (an
    empty answer takes a service off the internet whoever asks). None when it may be applied."""
    blocking = tuple(v for v in violations if not force or v.rule == RULE_NEVER_EMPTY)
    return Refusal(blocking, force) if blocking else None
