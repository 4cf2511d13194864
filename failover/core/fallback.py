"""The all-down policy and the one entry point of the decision with traffic policies. Pure.

`policy.all_down: hold` (the default) keeps the last answer when every target is DOWN, as
the daemon always did. `fallback` publishes the service's `fallback:` values instead (a static
"we are down" page): the `all_down` alarm is still raised, and, unlike a target, the fallback is
left as soon as a real target is UP again (its `rise` met), without waiting for a cooldown or a
failback delay: nothing is worse than the fallback, so there is no flapping to guard against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from failover.config.types import ServiceConfig
from failover.core.decide import (
    ALARM_ALL_DOWN,
    ALARM_ISOLATED,
    ALARM_LOCAL_FAULT,
    ALARM_NO_HEALTHY_TARGET,
    Action,
    Decision,
    ServiceState,
    Snapshot,
    decide,
)
from failover.core.health import TargetHealth
from failover.core.pool import Members, pool_decision
from failover.core.published import Published
from failover.core.values import FALLBACK
from failover.model import Health, Mode, RecordKey, RecordSet, Trigger

Decide = Callable[[ServiceConfig, ServiceState, Snapshot], Decision]


def decide_traffic(
    service: ServiceConfig,
    state: ServiceState,
    snap: Snapshot,
    members: Members | None = None,
    current: Mapping[RecordKey, RecordSet | None] | None = None,
    fallback: TargetHealth | None = None,
    base: Decide = decide,
) -> Decision:
    """`base` (the state machine, `decide`), then the all-down policy, then the pool subset
    (see the module docstrings). `fallback` is the fallback's health when it has probes
    (None: it has none). `base` is a parameter so that rules wrapping `decide` (drains)
    also choose the target the fallback is left for."""
    auto = state.mode is Mode.AUTO or (state.mode is Mode.PINNED and state.pin is None)
    if snap.published.kind == "fallback" and auto:
        decision = _on_fallback(service, replace(state, mode=Mode.AUTO), snap, base)
    else:
        decision = _to_fallback(service, base(service, state, snap), snap, fallback)
    return pool_decision(service, decision, snap, members or {}, current)


def _to_fallback(
    service: ServiceConfig, decision: Decision, snap: Snapshot, fallback: TargetHealth | None
) -> Decision:
    """An "all targets down; holding" becomes the fallback's publication when so configured
    (and, when the fallback has probes, while they say it is UP)."""
    if (
        service.policy.all_down != "fallback"
        or service.fallback is None
        or decision.action is not Action.NONE
        or ALARM_ALL_DOWN not in decision.alarms
        or decision.state.mode is not Mode.AUTO
        or decision.state.blocked
        or snap.published.kind != "target"
    ):
        return decision
    held = snap.published.target
    if fallback is not None and fallback.health is not Health.UP:
        return replace(
            decision,
            reason=f"{decision.reason}; the fallback is {fallback.health.name} too "
            f"({fallback.reason}), not publishing it",
        )
    return Decision(
        Action.FALLBACK,
        FALLBACK,
        Trigger.AUTO,
        f"all targets down -> publishing the fallback ({', '.join(service.fallback.values)}) "
        f"instead of {held}",
        replace(decision.state, last_switch_at=snap.now),
        decision.alarms,
    )


def _on_fallback(
    service: ServiceConfig, state: ServiceState, snap: Snapshot, base: Decide
) -> Decision:
    """The fallback is served: leave it for the first UP target in priority order, chosen by
    `base` as if nothing were published (the rule that publishes a missing record)."""
    names = [t.name for t in service.targets]

    def health(name: str) -> Health:
        th = snap.health.get(name)
        return th.health if th is not None else Health.UNKNOWN

    if snap.local_fault:
        return Decision(
            Action.NONE,
            None,
            Trigger.AUTO,
            f"serving the fallback; local fault: {snap.local_fault}; no automatic switch",
            state,
            frozenset({ALARM_LOCAL_FAULT, ALARM_ALL_DOWN}),
        )
    if snap.isolated:
        return Decision(
            Action.NONE,
            None,
            Trigger.AUTO,
            "serving the fallback; isolated: this vantage point cannot judge the targets",
            state,
            frozenset({ALARM_ISOLATED, ALARM_ALL_DOWN}),
        )
    missing = Published("missing", detail="the fallback is served")
    chosen = base(service, state, replace(snap, published=missing))
    up = chosen.target if chosen.action is Action.PUBLISH else None
    if up is None:
        others = ", ".join(f"{n} {health(n).name}" for n in names)
        if service.policy.all_down != "fallback":
            reason = f"the fallback is served and no target is UP ({others}); holding it"
        else:
            reason = f"all targets down; serving the fallback ({others})"
        alarms = {ALARM_ALL_DOWN} if all(health(n) is Health.DOWN for n in names) else set()
        if not alarms and any(health(n) is Health.UP for n in names):
            # UP targets that `base` does not take (drained): the fallback stays, an operator's
            # drain never brings clients back to a target taken out (core/drain.py)
            why = chosen.reason.split("; ")[0]  # the rule's own clause, e.g. a drain's
            reason = f"serving the fallback; {why} ({others})"
            alarms = set(chosen.alarms & {ALARM_NO_HEALTHY_TARGET})
        return Decision(
            Action.NONE,
            None,
            Trigger.AUTO,
            reason,
            state,
            frozenset(alarms),
            until=chosen.until,  # the rule's timer (the start-up grace) holds this too
        )
    return Decision(
        Action.SWITCH,
        up,
        Trigger.AUTO,
        f"{up} UP again -> leaving the fallback for {up}, first UP target in priority order",
        replace(state, last_switch_at=snap.now),
    )
