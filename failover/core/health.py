"""Probe results -> per-probe and per-target health. Pure: `now` is a parameter."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from failover.model import Health


@dataclass(frozen=True)
class ProbeState:
    """Counters of one probe: `fall` consecutive failures -> DOWN, `rise` successes -> UP."""

    health: Health = Health.UNKNOWN
    successes: int = 0  # consecutive
    failures: int = 0  # consecutive
    failing_since: float | None = None  # time of the first failure of the current failing streak
    last_ok: bool | None = None
    last_reason: str = ""
    last_at: float | None = None
    fall: int = 0  # thresholds of the last observe(), for explanations (0: never observed)
    rise: int = 0


def observe(
    state: ProbeState, ok: bool, reason: str, now: float, fall: int, rise: int
) -> ProbeState:
    """Fold one probe result into the counters.

    Health changes only when a streak reaches its threshold: UP stays UP until `fall` failures in
    a row, DOWN stays DOWN until `rise` successes in a row, UNKNOWN waits for either.
    """
    if fall < 1 or rise < 1:
        raise ValueError(f"fall and rise must be >= 1 (got fall={fall}, rise={rise})")
    if ok:
        successes, failures, failing_since = state.successes + 1, 0, None
        health = Health.UP if successes >= rise else state.health
    else:
        successes, failures = 0, state.failures + 1
        failing_since = (
            state.failing_since if state.failures and state.failing_since is not None else now
        )
        health = Health.DOWN if failures >= fall else state.health
    return ProbeState(
        health=health,
        successes=successes,
        failures=failures,
        failing_since=failing_since,
        last_ok=ok,
        last_reason=reason,
        last_at=now,
        fall=fall,
        rise=rise,
    )


@dataclass(frozen=True)
class TargetHealth:
    health: Health
    since: float | None  # when the target entered this health (None: never observed)
    failing_since: float | None  # earliest failing_since among its DOWN probes (detection time)
    reason: str  # one line: "probe http: status 503 not in [200]" / "all 2 probes up"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _more(names: list[str], what: str) -> str:
    return f"; also {what}: {', '.join(names)}" if names else ""


def _down_reason(name: str, p: ProbeState) -> str:
    why = p.last_reason or ("ok" if p.last_ok else "failed")
    if p.failures:
        return f"probe {name}: {why} (DOWN after {_plural(p.failures, 'failure')})"
    # DOWN but recovering: successes have started, not yet `rise` of them
    rise = f"/{p.rise}" if p.rise else ""
    return f"probe {name}: DOWN, recovering ({p.successes}{rise} successes)"


def _waiting_reason(name: str, p: ProbeState) -> str:
    if p.last_at is None:
        return f"waiting: probe {name} has no results yet"
    if p.last_ok:
        rise = f"/{p.rise}" if p.rise else ""
        return f"waiting: probe {name} has {p.successes}{rise} successes"
    fall = f"/{p.fall}" if p.fall else ""
    return f"waiting: probe {name} has {p.failures}{fall} failures ({p.last_reason or 'failed'})"


def target_health(
    probes: dict[str, ProbeState], previous: TargetHealth | None, now: float
) -> TargetHealth:
    """UP when every probe is UP, DOWN when any is DOWN, UNKNOWN otherwise (and with no probes).

    `since` is kept from `previous` while the health is unchanged; it is None only while the
    target is UNKNOWN and no probe has reported yet.
    """
    down = [name for name, p in probes.items() if p.health == Health.DOWN]
    unknown = [name for name, p in probes.items() if p.health == Health.UNKNOWN]
    failing_since: float | None = None
    if not probes:
        health, reason = Health.UNKNOWN, "no probes configured"
    elif down:
        health = Health.DOWN
        reason = _down_reason(down[0], probes[down[0]]) + _more(down[1:], "DOWN")
        starts = [s for s in (probes[n].failing_since for n in down) if s is not None]
        failing_since = min(starts) if starts else None
    elif unknown:
        health = Health.UNKNOWN
        reason = _waiting_reason(unknown[0], probes[unknown[0]]) + _more(unknown[1:], "waiting")
    else:
        health = Health.UP
        reason = (
            f"probe {next(iter(probes))} up" if len(probes) == 1 else f"all {len(probes)} probes up"
        )

    if previous is not None and previous.health == health and previous.since is not None:
        since: float | None = previous.since
    elif health == Health.UNKNOWN and all(p.last_at is None for p in probes.values()):
        since = None
    else:
        since = now
    return TargetHealth(health=health, since=since, failing_since=failing_since, reason=reason)


def vantage_isolated(signals: Iterable[tuple[str | None, Health]]) -> bool:
    """The isolation guard: every watched target (and canary) DOWN at once, across two or
    more locations, means this vantage point is the one cut off, not all those clouds."""
    seen = list(signals)
    if not seen or any(health is not Health.DOWN for _, health in seen):
        return False
    return len({location for location, _ in seen}) >= 2


@dataclass(frozen=True)
class Vote:
    """One vantage point's judgement of a target, for the quorum."""

    instance: str
    health: Health
    isolated: bool = False  # an isolated instance casts no DOWN vote


def quorum_size(live: int, configured: int | None) -> int:
    """Votes needed for a verdict: the configured quorum, else a majority of live instances."""
    return configured if configured is not None else live // 2 + 1


def quorum_health(own: TargetHealth, votes: Iterable[Vote], quorum: int) -> TargetHealth:
    """The health the leader decides on: DOWN only when `quorum` vantage points see it DOWN,
    UP when `quorum` see it UP, UNKNOWN otherwise. This instance's own judgement keeps its
    timings and reason when the quorum agrees with it."""
    counted = list(votes)
    downs = sorted(v.instance for v in counted if v.health is Health.DOWN and not v.isolated)
    ups = sorted(v.instance for v in counted if v.health is Health.UP)
    if len(downs) >= quorum:
        health = Health.DOWN
    elif len(ups) >= quorum:
        health = Health.UP
    else:
        health = Health.UNKNOWN
    if health is own.health:
        return own
    muted = sorted(v.instance for v in counted if v.health is Health.DOWN and v.isolated)
    tally = f"{len(ups)} of {len(counted)} vantage points see it UP, {len(downs)} DOWN"
    if muted:
        tally += f" ({', '.join(muted)} isolated: no DOWN vote)"
    reason = f"quorum {quorum}: {tally}; here: {own.health.upper()} ({own.reason})"
    failing_since = own.failing_since if health is Health.DOWN else None
    return TargetHealth(health, None, failing_since, reason)


def local_fault_holds(last_fault_at: float | None, now: float, hold: float) -> bool:
    """A probe failed for a local reason (no file descriptors, a stalled loop) less than `hold`
    seconds ago: this instance cannot judge its targets yet, so automatic decisions wait, as
    under isolation."""
    return last_fault_at is not None and now - last_fault_at < hold
