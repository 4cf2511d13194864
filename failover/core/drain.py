"""Drains and maintenance windows: a drained target counts as unavailable for decisions.

Pure (takes `now`). A drain does not touch health: probes go on and `status` shows what they
see. Only the decision reads a drained target as DOWN (`effective_health`), so the normal rules
apply: no switch to it, no failback to it, and a drained active target is left. Leaving it is
an operator's (or a maintenance window's) planned act, not a failure, so it is not held back by
the cooldown or counted by the flap limit: `decide` switches away at once, to the first UP
target that is not drained, trigger `manual`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from failover.config.types import MaintenanceWindow, ServiceConfig, TargetConfig
from failover.core.decide import (
    ALARM_ALL_DOWN,
    ALARM_NO_HEALTHY_TARGET,
    Action,
    Decision,
    ServiceState,
    Snapshot,
    serves_all_records,
)
from failover.core.decide import decide as decide_health
from failover.core.health import TargetHealth
from failover.core.ops import Drain
from failover.core.plan import Violation
from failover.core.windows import window_bounds
from failover.model import Health, Mode, Trigger

RULE_LAST_UP = "last-up"  # a drain that would leave no UP target (--force overrides)


@dataclass(frozen=True)
class Drained:
    """Why a target is drained now, and until when (None: until undrained)."""

    target: str
    reason: str
    source: str  # "manual" or "maintenance"
    actor: str
    since: float
    until: float | None


def drained(service: ServiceConfig, state: ServiceState, now: float) -> dict[str, Drained]:
    """The targets drained at `now`, by name: manual drains not expired, open maintenance
    windows. A manual drain wins over a window (it says who and why)."""
    out: dict[str, Drained] = {}
    for t in service.targets:
        open_window = in_maintenance(t, now)
        if open_window is not None:
            w, bounds = open_window
            out[t.name] = Drained(t.name, w.reason, "maintenance", "maintenance", *bounds)
    for d in state.drains:
        if service.target(d.target) is not None and (d.until is None or now < d.until):
            out[d.target] = Drained(d.target, d.reason, "manual", d.actor, d.at, d.until)
    return out


def in_maintenance(
    target: TargetConfig | None, now: float
) -> tuple[MaintenanceWindow, tuple[float, float]] | None:
    """The maintenance window of `target` open at `now` and its (start, end), or None."""
    for w in target.maintenance if target is not None else ():
        bounds = window_bounds(w.days, w.window, w.timezone, now)
        if bounds is not None:
            return w, bounds
    return None


def expire(state: ServiceState, now: float) -> tuple[ServiceState, tuple[Drain, ...]]:
    """Drop the drains whose `--for` has elapsed; returns the new state and what expired."""
    gone = tuple(d for d in state.drains if d.until is not None and now >= d.until)
    if not gone:
        return state, ()
    return replace(state, drains=tuple(d for d in state.drains if d not in gone)), gone


def add_drain(state: ServiceState, drain: Drain) -> ServiceState:
    """Drain `drain.target` (a new drain of the same target replaces the old one)."""
    kept = tuple(d for d in state.drains if d.target != drain.target)
    return replace(state, drains=(*kept, drain))


def remove_drain(state: ServiceState, target: str) -> ServiceState:
    return replace(state, drains=tuple(d for d in state.drains if d.target != target))


def effective_health(
    health: Mapping[str, TargetHealth], drains: Mapping[str, Drained]
) -> dict[str, TargetHealth]:
    """The health the decision reads: a drained target is DOWN, its reason says why."""
    out = dict(health)
    for name, d in drains.items():
        th = health.get(name)
        out[name] = TargetHealth(
            Health.DOWN, d.since, None, f"drained ({d.source}): {d.reason}" + _seen(th)
        )
    return out


def _seen(th: TargetHealth | None) -> str:
    return f"; probes say {Health(th.health).name}" if th is not None else ""


def last_up(
    service: ServiceConfig,
    health: Mapping[str, TargetHealth],
    drains: Mapping[str, Drained],
    target: str,
) -> Violation | None:
    """Draining `target` would leave no target UP and not drained: rule `last-up`."""
    others = [
        t.name
        for t in service.targets
        if t.name != target
        and t.name not in drains
        and (th := health.get(t.name)) is not None
        and th.health == Health.UP
        and serves_all_records(service, t.name)
    ]
    if others:
        return None
    return Violation(
        RULE_LAST_UP,
        f"draining {target} would leave {service.name} without an UP target that is not "
        "drained (--force drains it anyway)",
    )


def decide(service: ServiceConfig, state: ServiceState, snap: Snapshot) -> Decision:
    """Decide with drains: drained targets read as DOWN; a drained active target is left at
    once for the first UP target that is not drained (pinned and paused services excepted)."""
    drains = drained(service, state, snap.now)
    if not drains:
        return decide_health(service, state, snap)
    view = replace(snap, health=effective_health(snap.health, drains))
    pub = snap.published
    leaving = (
        state.mode is Mode.AUTO
        and pub.kind == "target"
        and not pub.missing
        and pub.target in drains
        and not (pub.matches and any(m not in drains for m in pub.matches))
    )
    if not leaving or snap.local_fault or snap.isolated:
        return _not_all_down(decide_health(service, state, view), snap, drains)
    assert pub.target is not None
    to = next(
        (
            t.name
            for t in service.targets
            if t.name not in drains
            and (th := snap.health.get(t.name)) is not None
            and th.health == Health.UP
            and serves_all_records(service, t.name)
        ),
        None,
    )
    if to is None:
        return _not_all_down(decide_health(service, state, view), snap, drains)
    d = drains[pub.target]
    return Decision(
        Action.SWITCH,
        to,
        Trigger.MANUAL,
        f"{pub.target} drained ({d.source}, {d.actor}): {d.reason} -> switching to {to}, "
        "first UP target that is not drained",
        replace(state, last_switch_at=snap.now),
    )


def _not_all_down(decision: Decision, snap: Snapshot, drains: Mapping[str, Drained]) -> Decision:
    """`all_down` means every target is DOWN by its probes: when drained targets are UP, the
    alarm is `no_healthy_target` instead, and the reason names the drains. So `all_down:
    fallback` (core/fallback.py) never publishes the fallback because of a drain: a forced
    drain of the last UP target keeps it served until another target is UP."""
    up = [n for n in drains if (th := snap.health.get(n)) is not None and th.health == Health.UP]
    if not up:
        return decision
    if ALARM_ALL_DOWN not in decision.alarms:
        if ALARM_NO_HEALTHY_TARGET in decision.alarms:
            names = ", ".join(sorted(up))
            why = f"no UP target that is not drained ({names} UP but drained)"
            return replace(decision, reason=f"{why}; {decision.reason}")
        return decision
    return replace(
        decision,
        reason=f"no UP target that is not drained ({', '.join(sorted(up))} UP but drained); "
        + decision.reason.replace("all targets down; ", ""),
        alarms=(decision.alarms - {ALARM_ALL_DOWN}) | {ALARM_NO_HEALTHY_TARGET},
    )
