"""The per-service state machine. Pure: takes a snapshot and `now`, returns a value.

`decide` walks the rules in a fixed order and stops at the first that applies; every outcome,
including "no action", carries one human line and the state to persist.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from failover.config.types import ServiceConfig
from failover.core.health import TargetHealth
from failover.core.ops import Drain, Switchover
from failover.core.published import Published
from failover.model import (
    Health,
    Mode,
    Trigger,
    values_for_type,
)
from failover.units import format_duration

# Stable alarm names (metrics, notifications and alert rules depend on them).
ALARM_ALL_DOWN = "all_down"
ALARM_DRIFT = "drift"
ALARM_BLOCKED = "blocked"
ALARM_ISOLATED = "isolated"
ALARM_LOCAL_FAULT = "local_fault"
ALARM_NO_HEALTHY_TARGET = "no_healthy_target"
ALARM_PINNED_TARGET_DOWN = "pinned_target_down"


@dataclass(frozen=True)
class Pin:
    """An operator's `promote`: the service stays on `target` until `release`."""

    target: str
    reason: str
    actor: str
    at: float
    force: bool = False


@dataclass(frozen=True)
class ServiceState:
    """What must survive a restart for one service (health does not: it is re-learned)."""

    mode: Mode = Mode.AUTO
    pin: Pin | None = None
    blocked: bool = False
    auto_switches: tuple[float, ...] = ()  # times of automatic switches still inside flap_window
    last_switch_at: float | None = None  # any trigger
    last_auto_switch_at: float | None = None  # kept across `ack`, so an ack never skips cooldown
    drains: tuple[Drain, ...] = ()  # targets taken out by `failover drain` (core/drain.py)
    switchover: Switchover | None = None  # a planned switchover in progress (core/switchover.py)


def acknowledge(state: ServiceState) -> ServiceState:
    """`failover ack`: lift a flap block and forget the counted automatic switches."""
    return replace(state, blocked=False, auto_switches=())


def pin(state: ServiceState, new_pin: Pin) -> ServiceState:
    """`failover promote`: pin the service (an explicit operator action also ends a pause)."""
    return replace(state, mode=Mode.PINNED, pin=new_pin)


def release(state: ServiceState) -> ServiceState:
    """`failover release`: drop the pin; a paused service stays paused."""
    mode = Mode.PAUSED if state.mode == Mode.PAUSED else Mode.AUTO
    return replace(state, mode=mode, pin=None)


def pause(state: ServiceState) -> ServiceState:
    """`failover pause`: stop decisions; a pin is kept for `resume`."""
    return replace(state, mode=Mode.PAUSED)


def resume(state: ServiceState) -> ServiceState:
    """`failover resume`: back to PINNED when a pin exists, else AUTO."""
    return replace(state, mode=Mode.PINNED if state.pin is not None else Mode.AUTO)


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {many or word + 's'}"


@dataclass(frozen=True)
class Snapshot:
    now: float
    started_at: float  # when this process started deciding (start-up grace counts from here)
    health: Mapping[str, TargetHealth]  # by target name
    published: Published
    isolated: bool = False  # the vantage point believes it is cut off
    # when this instance could judge again after a time it could not (isolation cleared, a
    # stalled loop): targets get `rise` fresh chances to report before any automatic switch
    judging_since: float | None = None
    local_fault: str = ""  # why probes fail here, not at the targets ("" when they do not)


class Action(StrEnum):
    NONE = "none"
    SWITCH = "switch"  # publish `target` instead of the current target
    PUBLISH = "publish"  # records missing: create them with `target`
    POOL = "pool"  # same pool target, another subset of its values (`values`): core/pool.py
    FALLBACK = "fallback"  # every target DOWN: publish the service's fallback (core/fallback.py)


@dataclass(frozen=True)
class Decision:
    action: Action
    target: str | None  # the target to publish when action != NONE
    trigger: Trigger
    reason: str  # one human line, shown by status and the journal
    state: ServiceState  # the state to keep if the action is carried out (or at once for NONE)
    alarms: frozenset[str] = field(default_factory=frozenset)
    force: bool = False  # plan safety rules overridden (a forced pin)
    values: tuple[str, ...] | None = None  # the values to publish (None: all of the target's)
    # Until when this decision stands on time alone: before `until`, only a change of its
    # inputs (health, records, state, isolation) can change it. The engine's timer sweeps
    # skip a service whose decision stands (engine/actor.py); inf: no timer is running.
    until: float = math.inf


def _matches(pub: Published) -> tuple[str, ...]:
    """Targets the published records are consistent with (`matches` may be left empty)."""
    if pub.matches:
        return pub.matches
    return (pub.target,) if pub.target is not None else ()


def _hold(state: ServiceState, reason: str, *alarms: str, until: float = math.inf) -> Decision:
    return Decision(Action.NONE, None, Trigger.AUTO, reason, state, frozenset(alarms), until=until)


# A reason that counts down ("grace ends in 4s") is shown to the second: a decision holding
# on a timer stands for at most this long, so `status` never shows a stale count.
COUNTDOWN_STEP = 1.0


def _countdown(now: float, ends: float) -> float:
    """`until` of a hold that lasts until `ends` and shows the time left."""
    return min(ends, now + COUNTDOWN_STEP)


def settle_time(service: ServiceConfig) -> float:
    """How long every target needs to report `rise` fresh results: the longest
    rise * interval + timeout over the service's probes."""
    return max(
        (t.health.rise * p.interval + p.timeout for t in service.targets for p in t.probes),
        default=0.0,
    )


def serves_all_records(service: ServiceConfig, target: str) -> bool:
    """True when `target` has at least one value for every record type of the service."""
    t = service.target(target)
    return t is not None and all(values_for_type(r.type, t.values) for r in service.records)


class _View:
    """Health lookups for one decision."""

    def __init__(self, service: ServiceConfig, snap: Snapshot) -> None:
        self.service = service
        self.snap = snap

    def health(self, name: str) -> Health:
        th = self.snap.health.get(name)
        return Health(th.health) if th is not None else Health.UNKNOWN  # tolerate plain str

    def is_up(self, name: str) -> bool:
        return self.health(name) == Health.UP and serves_all_records(self.service, name)

    def why(self, name: str) -> str:
        th = self.snap.health.get(name)
        return th.reason if th is not None and th.reason else "no health yet"

    def up_since(self, name: str) -> float | None:
        th = self.snap.health.get(name)
        return th.since if th is not None and th.health == Health.UP else None

    def names(self) -> list[str]:
        return [t.name for t in self.service.targets]


def decide(service: ServiceConfig, state: ServiceState, snap: Snapshot) -> Decision:
    """Apply the state machine to one service; see the module docstring."""
    window = service.policy.flap_window
    recent = tuple(t for t in state.auto_switches if snap.now - t < window)
    decision = _decide(service, replace(state, auto_switches=recent), snap)
    return _until_pruned(decision, recent, window)


def _decide(service: ServiceConfig, state: ServiceState, snap: Snapshot) -> Decision:
    if state.mode == Mode.PINNED and state.pin is None:
        state = replace(state, mode=Mode.AUTO)  # inconsistent state: no pin to honour
    view = _View(service, snap)
    pub = snap.published

    if state.mode == Mode.PAUSED:
        alarms = [ALARM_DRIFT] if pub.kind == "drift" else []
        if view.names() and all(view.health(n) == Health.DOWN for n in view.names()):
            alarms.append(ALARM_ALL_DOWN)
        return _hold(
            state, f"paused: automatic decisions stopped (failover resume {service.name})", *alarms
        )
    if pub.kind == "unknown":
        why = f" ({pub.detail})" if pub.detail else ""
        return _hold(state, f"cannot read the published records; holding{why}")
    if state.mode == Mode.PINNED and state.pin is not None:
        return _decide_pinned(service, state, state.pin, snap, view)

    decision = _decide_auto(service, state, snap, view)
    if decision.state.blocked and ALARM_BLOCKED not in decision.alarms:
        decision = replace(
            decision,
            reason=f"{decision.reason}; automation blocked (failover ack {service.name})",
            alarms=decision.alarms | {ALARM_BLOCKED},
        )
    return decision


def _until_pruned(decision: Decision, recent: tuple[float, ...], window: float) -> Decision:
    """The oldest counted switch leaves the flap window at a time: the state to keep (and
    the count `status` shows) changes then, whatever the inputs."""
    if not recent or decision.action is not Action.NONE:
        return decision
    leaves = min(recent) + window
    return decision if leaves >= decision.until else replace(decision, until=leaves)


def _decide_pinned(
    service: ServiceConfig, state: ServiceState, p: Pin, snap: Snapshot, view: _View
) -> Decision:
    pub = snap.published
    who = f"pinned to {p.target} by {p.actor}: {p.reason}"
    on_pin = pub.kind == "target" and p.target in _matches(pub)
    if service.target(p.target) is None:
        return _hold(
            state,
            f"{who}; {p.target} is not a target of {service.name} "
            f"(failover release {service.name})",
            ALARM_PINNED_TARGET_DOWN,
        )
    if not serves_all_records(service, p.target):
        return _hold(
            state,
            f"{who}; {p.target} has no values for some records; cannot publish it",
            ALARM_PINNED_TARGET_DOWN,
        )
    pin_health = view.health(p.target)
    if on_pin and not pub.missing:
        if pin_health == Health.DOWN:
            return _hold(
                state, f"{who}; {p.target} is DOWN ({view.why(p.target)})", ALARM_PINNED_TARGET_DOWN
            )
        return _hold(state, who)
    if pin_health != Health.UP and not p.force:
        return _hold(
            state,
            f"{who}; {p.target} is {pin_health.name}, not switching "
            f"(failover promote {service.name} {p.target} --force to override)",
            ALARM_PINNED_TARGET_DOWN,
        )
    if pub.kind == "drift" and not p.force:
        return _hold(
            state,
            f"{who}; drift: {pub.detail}; not overwriting it "
            f"(failover promote {service.name} {p.target} --force to take over)",
            ALARM_DRIFT,
        )
    action = Action.PUBLISH if pub.kind == "missing" or on_pin else Action.SWITCH
    verb = "publishing" if action == Action.PUBLISH else "switching to"
    forced = " (forced)" if p.force else ""
    return Decision(
        action,
        p.target,
        Trigger.MANUAL,
        f"{who} -> {verb} {p.target}{forced}",
        replace(state, last_switch_at=snap.now),
        force=p.force,
    )


def _decide_auto(
    service: ServiceConfig, state: ServiceState, snap: Snapshot, view: _View
) -> Decision:
    pub = snap.published
    names = view.names()
    if pub.kind == "drift":
        return _hold(
            state,
            f"drift: {pub.detail}; not overwriting it "
            f"(failover promote {service.name} TARGET --force to take over)",
            ALARM_DRIFT,
        )

    grace_end = snap.started_at + service.policy.startup_grace
    starting = snap.now < grace_end
    unknown = [n for n in names if view.health(n) == Health.UNKNOWN]

    def start_hold(waiting: list[str]) -> Decision:
        return _hold(
            state,
            f"starting: waiting for {', '.join(waiting)} to leave UNKNOWN "
            f"(grace ends in {format_duration(grace_end - snap.now, round_up=True)})",
            until=_countdown(snap.now, grace_end),
        )

    if pub.kind == "missing":
        # Nothing is served yet: publish the first UP target in priority order as soon as
        # every target ranked above it is known. Only an UNKNOWN target above it could change
        # the choice, so only those are waited for during the start-up grace.
        above = list(itertools.takewhile(lambda n: not view.is_up(n), names))
        first_up = names[len(above)] if len(above) < len(names) else None
        waiting = [n for n in above if view.health(n) == Health.UNKNOWN]
        if starting and waiting:
            return start_hold(waiting)
        if first_up is None:
            return _hold(
                state, "no record published yet and no target is UP", ALARM_NO_HEALTHY_TARGET
            )
        return Decision(
            Action.PUBLISH,
            first_up,
            Trigger.AUTO,
            f"no record published yet -> publishing {first_up}, first UP target in priority order",
            replace(state, last_switch_at=snap.now),
        )

    if pub.target is None:
        return _hold(state, "cannot tell which target is published; holding")
    matches = _matches(pub)
    # Targets sharing the published values are all "active"; prefer one that is UP.
    active = next((n for n in matches if view.is_up(n)), pub.target)
    active_health = view.health(active)
    if pub.missing and view.is_up(active):
        return Decision(
            Action.PUBLISH,
            active,
            Trigger.AUTO,
            f"{active} UP but {', '.join(map(str, pub.missing))} missing "
            f"-> re-creating with {active}",
            replace(state, last_switch_at=snap.now),
        )
    missing_note = f" ({_plural(len(pub.missing), 'record')} missing)" if pub.missing else ""

    if starting and unknown:
        return start_hold(unknown)
    if snap.local_fault:
        return _hold(
            state,
            f"local fault: {snap.local_fault}; probe results are not trusted, no automatic "
            f"switch (on {active}, {active_health.name}){missing_note}",
            ALARM_LOCAL_FAULT,
        )
    if snap.isolated:
        return _hold(
            state,
            f"isolated: this vantage point sees targets in several locations fail at once; "
            f"no automatic switch (on {active}, {active_health.name}){missing_note}",
            ALARM_ISOLATED,
        )
    # Out of a common-mode failure, the first target to complete `rise` wins a race, not an
    # election: hold switches until every target has had its chances to report again.
    since = snap.judging_since
    settle_end = since + settle_time(service) if since is not None else snap.now
    if since is not None and snap.now < settle_end and active_health != Health.UP:
        return _hold(
            state,
            f"recovering: this instance could judge again "
            f"{format_duration(snap.now - since, round_up=True)} ago (after "
            f"isolation or a stalled loop); no automatic switch until every target has "
            f"re-reported, in {format_duration(settle_end - snap.now, round_up=True)} "
            f"(on {active}, {active_health.name}){missing_note}",
            until=_countdown(snap.now, settle_end),
        )

    if active_health == Health.DOWN:
        candidates = [n for n in names if n not in matches and view.is_up(n)]
        if not candidates:
            if all(view.health(n) == Health.DOWN for n in names):
                return _hold(state, f"all targets down; holding {active}", ALARM_ALL_DOWN)
            others = (
                ", ".join(f"{n} {view.health(n).name}" for n in names if n not in matches) or "none"
            )
            return _hold(
                state,
                f"{active} DOWN ({view.why(active)}); no other target is UP ({others}); "
                f"holding {active}",
                ALARM_NO_HEALTHY_TARGET,
            )
        to = candidates[0]
        return _auto_switch(
            service,
            state,
            snap.now,
            to,
            f"{active} DOWN ({view.why(active)}) -> switching to {to}, "
            f"first UP target in priority order{missing_note}",
            f"{active} DOWN, {to} UP",
        )

    higher = (
        [n for n in names[: names.index(active)] if n not in matches] if active in names else []
    )
    better = next((n for n in higher if view.is_up(n)), None)
    on = f"on {active} ({active_health.name})"
    if better is not None:
        role = "primary" if better == names[0] else "higher-priority target"
        if service.policy.failback == "manual":
            return _hold(
                state,
                f"{on}; {role} {better} is UP again — failback is manual "
                f"(failover promote {service.name} {better}){missing_note}",
            )
        since = view.up_since(better)
        up_for = snap.now - since if since is not None else 0.0
        wait = service.policy.failback_after - up_for
        if wait > 0:
            return _hold(
                state,
                f"{on}; failback to {better} in {format_duration(wait, round_up=True)} "
                f"(UP for {format_duration(up_for, round_up=True)}){missing_note}",
                until=_countdown(snap.now, snap.now + wait),
            )
        return _auto_switch(
            service,
            state,
            snap.now,
            better,
            f"failback: {better} UP for {format_duration(up_for, round_up=True)} -> switching "
            f"back from {active}{missing_note}",
            f"{on}, {better} UP",
        )

    if active_health == Health.UP:
        if active == names[0]:
            return _hold(state, f"{active} UP, primary, nothing to do{missing_note}")
        others = ", ".join(f"{n} {view.health(n).name}" for n in higher) or "none"
        return _hold(state, f"{on}; no higher-priority target is UP ({others}){missing_note}")
    return _hold(state, f"{on}: {view.why(active)}; holding{missing_note}")


def _opt(t: float | None) -> tuple[float, ...]:
    return () if t is None else (t,)


def _auto_switch(
    service: ServiceConfig, state: ServiceState, now: float, to: str, reason: str, context: str
) -> Decision:
    """An automatic switch, subject to the block, the cooldown and the flap limit."""
    policy = service.policy
    ack = f"failover ack {service.name}"
    if state.blocked:
        return _hold(
            state, f"blocked: automatic switching stopped until {ack} ({context})", ALARM_BLOCKED
        )
    last = max((*state.auto_switches, *_opt(state.last_auto_switch_at)), default=None)
    if last is not None:
        wait = last + policy.cooldown - now
        if wait > 0:
            return _hold(
                state,
                f"cooldown: next automatic switch allowed in "
                f"{format_duration(wait, round_up=True)} ({context})",
                until=_countdown(now, now + wait),
            )
    recent = state.auto_switches  # pruned to flap_window by decide()
    if len(recent) >= policy.max_auto_switches:
        return _hold(
            replace(state, blocked=True),
            f"blocked: {_plural(len(recent), 'automatic switch', 'automatic switches')} within "
            f"{format_duration(policy.flap_window)}; {ack} to let automation act ({context})",
            ALARM_BLOCKED,
        )
    new_state = replace(
        state, auto_switches=(*recent, now), last_switch_at=now, last_auto_switch_at=now
    )
    return Decision(Action.SWITCH, to, Trigger.AUTO, reason, new_state)
