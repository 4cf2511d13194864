"""Failover drills: prove the fallback works by using it, then come back.

A drill is a planned switch with trigger `drill`: preflight, switch, verify on the
authoritative servers, hold while watching the drill target, switch back, verify again, and a
report with per-step timings. It is driven from outside the state machine but through the same
writers (the engine's per-provider queues), and it yields to reality: if the drill target dies
during the hold the drill returns at once; if the primary dies, or an operator pins or pauses
the service, the drill stops where it is and the usual rules take over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from failover.config.types import DrillScheduleConfig
from failover.core.drain import drained
from failover.core.windows import window_bounds
from failover.model import Health, Mode, Trigger
from failover.timefmt import rfc3339

if TYPE_CHECKING:
    from failover.engine import Engine
    from failover.runtime import ServiceRuntime

log = logging.getLogger("failover.drill")

POLL = 0.25  # seconds between health looks during the hold


class DrillNotRunning(Exception):
    """A stop was asked for a service that no drill holds."""


class DrillRefused(Exception):
    """Preflight failed; the message says which check and why. Nothing was changed."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


@dataclass
class DrillReport:
    service: str
    origin: str
    target: str
    hold: float
    dry_run: bool = False
    result: str = "running"  # ok, aborted, failed, dry-run
    reason: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    hold_samples: int = 0
    hold_up: int = 0
    hold_reasons: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    ended: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "from": self.origin,
            "to": self.target,
            "hold_seconds": self.hold,
            "dry_run": self.dry_run,
            "result": self.result,
            "reason": self.reason,
            "steps": self.steps,
            "hold_health": {
                "samples": self.hold_samples,
                "up": self.hold_up,
                "reasons": self.hold_reasons[-5:],
            },
            "duration_seconds": (self.ended or time.time()) - self.started,
        }


def preflight(engine: Engine, rt: ServiceRuntime, to: str | None) -> tuple[str, str]:
    """The checks before touching DNS; returns (origin, drill target) or raises DrillRefused."""
    name = rt.config.name
    if rt.state.mode is not Mode.AUTO or rt.state.blocked:
        raise DrillRefused(
            "mode",
            f"{name} is {rt.state.mode.value}{', blocked' if rt.state.blocked else ''};"
            " drills run in auto mode only",
        )
    if rt.inflight is not None or rt.pending is not None:
        raise DrillRefused("busy", f"{name} has a DNS change in flight; try again when it settles")
    if rt.drill is not None:
        raise DrillRefused("busy", f"{name} is already being drilled (to {rt.drill})")
    if rt.current is None or rt.read_error:
        raise DrillRefused(
            "providers", f"cannot read {name}'s records: {rt.read_error or 'not read yet'}"
        )
    if rt.published.kind != "target" or rt.published.target is None:
        raise DrillRefused(
            "published", f"{name} publishes no target ({rt.published.kind}: {rt.published.detail})"
        )
    if rt.state.switchover is not None:
        raise DrillRefused("busy", f"{name} has a switchover in progress")
    origin = rt.published.target
    drains = drained(rt.config, rt.state, engine.clock())
    for which in (origin, to):
        if which is None or which not in drains:
            continue
        raise DrillRefused(
            "origin" if which == origin else "target",
            f"{which} is drained ({drains[which].reason}): failover undrain {name} {which}",
        )
    health = engine.vantage.health(rt)  # the quorum's with several instances, as decisions
    if health[origin].health is not Health.UP:
        raise DrillRefused(
            "origin",
            f"{origin} is {health[origin].health.value}: nothing healthy to come back to",
        )
    if to is None:
        candidates = [
            t.name
            for t in rt.config.targets
            if t.name != origin and t.name not in drains and health[t.name].health is Health.UP
        ]
        if not candidates:
            raise DrillRefused("target", f"no other target of {name} is UP to drill")
        to = candidates[0]
    if rt.config.target(to) is None:
        names = ", ".join(t.name for t in rt.config.targets)
        raise DrillRefused("target", f"{name} has no target {to!r} ({names})")
    if to == origin:
        raise DrillRefused("target", f"{to} is already published; drill another target")
    if health[to].health is not Health.UP:
        raise DrillRefused("target", f"{to} is {health[to].health.value} ({health[to].reason})")
    return origin, to


def _step(name: str, started: float, outcome: dict[str, Any]) -> dict[str, Any]:
    providers = outcome.get("providers", [])
    verification = {v["provider"]: v for v in outcome.get("verification", [])}
    return {
        "step": name,
        "result": outcome.get("result"),
        "verified": outcome.get("verified"),
        "seconds": round(time.monotonic() - started, 3),
        "providers": [
            {
                "provider": p["provider"],
                "ok": p["ok"],
                "error": p.get("error"),
                "accepted_seconds": p.get("accepted_seconds"),
                "in_sync_seconds": verification.get(p["provider"], {}).get("in_sync_seconds"),
                "verify_seconds": verification.get(p["provider"], {}).get("verify_seconds"),
                "verified": verification.get(p["provider"], {}).get("verified"),
                "verify_reason": verification.get(p["provider"], {}).get("verify_reason"),
            }
            for p in providers
        ],
    }


async def run_drill(
    engine: Engine, service: str, to: str | None, hold: float, *, dry_run: bool, actor: str
) -> DrillReport:
    """Preflight, switch, verify, hold, switch back, verify; journal and export the outcome."""
    rt = engine.runtime(service)
    async with engine.lock:
        origin, target = preflight(engine, rt, to)
        report = DrillReport(service, origin, target, hold, dry_run=dry_run)
        if dry_run:
            report.result, report.reason = "dry-run", "preflight passed; nothing changed"
            report.ended = time.time()
            return report
        rt.start_drill(
            target,
            {
                "from": origin,
                "to": target,
                "hold_seconds": hold,
                "actor": actor,
                "started_at": rfc3339(engine.clock()),
                "step": "switching",
                "stop_requested_by": None,
                "_stop": asyncio.Event(),
                "_hold_ends": None,
            },
        )
        await engine.journal.write(
            service,
            "drill",
            Trigger.DRILL,
            f"drill to {target} for {hold:g}s by {actor}",
            engine.clock(),
            frm=origin,
            to=target,
            actor=actor,
            result="started",
        )
    try:
        await _drive(engine, rt, report)
    except Exception as exc:  # a drill must never leave the service half-switched silently
        log.exception("drill of %s failed", service)
        report.result, report.reason = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        rt.end_drill()
        report.ended = engine.clock()
        success = report.result == "ok"
        engine.metrics.last_drill_timestamp.labels(service).set(report.ended)
        engine.metrics.last_drill_success.labels(service).set(1.0 if success else 0.0)
        await engine.journal.write(
            service,
            "drill",
            Trigger.DRILL,
            report.reason,
            report.ended,
            frm=origin,
            to=target,
            actor=actor,
            result=report.result,
            report=report.as_json(),
        )
        engine.wake()
    return report


def request_stop(engine: Engine, service: str, actor: str) -> dict[str, Any]:
    """Ask the drill of `service` to end now: back to its origin, verified (an operator's
    Ctrl-C, or `failover drill SERVICE --stop`). The drill task does the switch back."""
    rt = engine.runtime(service)
    info = rt.drill_info
    if info is None:
        raise DrillNotRunning(f"no drill of {service} is running")
    if info["stop_requested_by"] is None:
        info["stop_requested_by"] = actor
        log.warning("%s: drill stop requested by %s", service, actor)
    info["_stop"].set()
    return {"result": "stopping", "service": service, "from": info["from"], "to": info["to"]}


def _stopped(rt: ServiceRuntime, report: DrillReport) -> bool:
    info = rt.drill_info
    if info is None or not info["_stop"].is_set():
        return False
    report.result = "aborted"
    report.reason = (
        f"stopped by {info['stop_requested_by']} before the end of the hold; "
        f"back to {report.origin}"
    )
    return True


def _set_step(rt: ServiceRuntime, step: str, hold_ends: float | None = None) -> None:
    if rt.drill_info is not None:
        rt.drill_info["step"] = step
        if hold_ends is not None:
            rt.drill_info["_hold_ends"] = hold_ends


async def _drive(engine: Engine, rt: ServiceRuntime, report: DrillReport) -> None:
    started = time.monotonic()
    outcome = await engine.drill_switch(rt, report.target, f"drill: switch to {report.target}")
    report.steps.append(_step("switch", started, outcome))
    if outcome.get("result") != "ok" or outcome.get("verified") is False:
        report.result = "failed"
        report.reason = (
            f"switch to {report.target} failed or was not verified; restoring {report.origin}"
        )
        await _restore(engine, rt, report)
        return
    deadline = time.monotonic() + report.hold
    _set_step(rt, "holding", engine.clock() + report.hold)
    while time.monotonic() < deadline:
        if _stopped(rt, report):
            await _restore(engine, rt, report)
            _unverified_return(report)
            return
        await asyncio.sleep(POLL)
        decided = engine.vantage.health(rt)  # a leader's own blip neither fails nor aborts it
        health = decided[report.target]
        report.hold_samples += 1
        if health.health is Health.UP:
            report.hold_up += 1
        elif health.reason and (
            not report.hold_reasons or report.hold_reasons[-1] != health.reason
        ):
            report.hold_reasons.append(health.reason)
        if rt.state.mode is not Mode.AUTO:
            report.result = "aborted"
            report.reason = (
                f"operator took over ({rt.state.mode.value}); drill stopped where it was"
            )
            return
        if rt.published.target != report.target:
            report.result = "aborted"
            report.reason = (
                f"automation moved {rt.config.name} to {rt.published.target} during the drill"
            )
            return
        if decided[report.origin].health is Health.DOWN:
            report.result = "aborted"
            report.reason = (
                f"{report.origin} went DOWN during the drill: a real incident; staying on "
                f"{report.target} under automatic rules"
            )
            return
        if health.health is Health.DOWN:
            report.result = "failed"
            report.reason = (
                f"{report.target} went DOWN during the hold ({health.reason}); returned at once"
            )
            await _restore(engine, rt, report)
            return
    await _restore(engine, rt, report)
    if report.result == "running":
        back = report.steps[-1]
        if back.get("result") == "ok" and back.get("verified") is not False:
            report.result = "ok"
            report.reason = (
                f"{report.target} served {rt.config.name} for {report.hold:g}s "
                f"({report.hold_up}/{report.hold_samples} health samples UP);"
                f" back on {report.origin}"
            )
        else:
            report.result = "failed"
            report.reason = f"switch back to {report.origin} failed or was not verified"


def _unverified_return(report: DrillReport) -> None:
    """A stopped drill whose way back failed is a failed drill, not merely an aborted one."""
    back = report.steps[-1]
    if back.get("result") != "ok" or back.get("verified") is False:
        report.result = "failed"
        report.reason += f"; the switch back to {report.origin} failed or was not verified"


async def _restore(engine: Engine, rt: ServiceRuntime, report: DrillReport) -> None:
    _set_step(rt, "switching back")
    started = time.monotonic()
    outcome = await engine.drill_switch(rt, report.origin, f"drill: back to {report.origin}")
    report.steps.append(_step("switch back", started, outcome))


def restore_drill_metrics(engine: Engine) -> None:
    """Set the last-drill gauges from the journal at start, so a restart does not make every
    service look never drilled (and fire the "not drilled in 30 days" alert)."""
    for entry in engine.store.history():
        service = entry.get("service")
        if entry.get("kind") != "drill" or service not in engine.services:
            continue
        result, ts = entry.get("result"), entry.get("ts")
        if result in (None, "started", "dry-run") or not isinstance(ts, int | float):
            continue
        engine.metrics.last_drill_timestamp.labels(service).set(ts)
        engine.metrics.last_drill_success.labels(service).set(1.0 if result == "ok" else 0.0)


# --- scheduled drills -------------------------------------------------------------------------

SCHEDULE_TICK = 5.0  # seconds between looks at the drill windows (cheap: clock comparisons)


def window_start(schedule: DrillScheduleConfig, now: float) -> float | None:
    """Start (unix time) of the drill window that contains `now`, or None outside windows."""
    bounds = window_bounds(schedule.days, schedule.window, schedule.timezone, now)
    return bounds[0] if bounds is not None else None


class DrillScheduler:
    """Runs each service's scheduled drill once per window; reports windows it had to skip."""

    def __init__(self, engine: Engine, tick: float = SCHEDULE_TICK) -> None:
        self.engine = engine
        self.tick_seconds = tick
        self._done: dict[str, float] = {}  # service -> start of the window already drilled
        self._skipped: dict[str, float] = {}  # service -> start of the window reported skipped
        self._last: dict[str, float] = {}  # service -> end of its last drill (from the journal)

    async def run(self) -> None:
        for entry in await asyncio.to_thread(self.engine.store.history):
            if entry.get("kind") == "drill" and entry.get("result") not in (None, "started"):
                self._last[str(entry.get("service"))] = float(entry.get("ts") or 0.0)
        while True:
            await asyncio.sleep(self.tick_seconds)
            await self.tick(self.engine.clock())

    async def tick(self, now: float) -> None:
        if not self.engine.coord.is_leader():  # scheduled drills are the leader's to run
            return
        for name, service in self.engine.config.services.items():
            schedule = service.drills
            if schedule is None or not schedule.enabled or name not in self.engine.services:
                continue
            start = window_start(schedule, now)
            if start is None or self._done.get(name) == start or self._last.get(name, 0) >= start:
                continue
            rt = self.engine.runtime(name)
            try:
                async with self.engine.lock:
                    preflight(self.engine, rt, schedule.target)
            except DrillRefused as exc:
                if self._skipped.get(name) != start:  # report once per window, keep trying
                    self._skipped[name] = start
                    await self.engine.journal.write(
                        name,
                        "drill",
                        Trigger.DRILL,
                        f"scheduled drill skipped: {exc}",
                        now,
                        actor="scheduler",
                        result="skipped",
                        check=exc.check,
                    )
                    log.warning("%s: scheduled drill skipped: %s", name, exc)
                continue
            self._done[name] = start
            log.info("%s: scheduled drill starting", name)
            try:
                report = await run_drill(
                    self.engine,
                    name,
                    schedule.target,
                    schedule.hold,
                    dry_run=False,
                    actor="scheduler",
                )
            except DrillRefused as exc:  # the service changed between preflight and start
                log.warning("%s: scheduled drill refused: %s", name, exc)
                continue
            self._last[name] = report.ended or now
