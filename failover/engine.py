"""The single actor: each cycle takes a snapshot, asks the core, applies the plan, records it.

Everything that changes decision state (cycles, operator commands) runs under one lock, so
there is always exactly one writer of DNS and of the state file. Probe results only update
health counters and wake the actor; they never act.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from failover import intents as intents_codec
from failover.config_types import Config, ServiceConfig
from failover.coord.base import Coordinator
from failover.core import decide as core
from failover.core.health import ProbeState, TargetHealth, observe, target_health
from failover.core.plan import RULE_NEVER_EMPTY, Plan, Violation, build_plan, check_plan
from failover.metrics import LiveView, Metrics, ProbeView, ServiceView, TargetView
from failover.model import Health, Mode, ProbeResult, RecordKey, RecordSet, Trigger, values_for_type
from failover.probes.scheduler import ProbeJob
from failover.providers.base import Provider, ProviderError
from failover.store import Store
from failover.timefmt import rfc3339

log = logging.getLogger("failover.engine")

TICK = 1.0  # seconds between cycles when nothing wakes the engine (timers: cooldown, grace)
MAX_BACKOFF = 30.0


class CommandError(Exception):
    """An operator command that cannot be carried out; `status` is the HTTP status to return."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.extra = extra


@dataclass
class ProviderOutcome:
    provider: str
    ok: bool
    error: str = ""
    accepted_after: float | None = None
    in_sync_after: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "ok": self.ok,
            "error": self.error or None,
            "accepted_seconds": self.accepted_after,
            "in_sync_seconds": self.in_sync_after,
        }


@dataclass
class ServiceRuntime:
    """Live, in-memory view of one service; only `state` is persisted."""

    config: ServiceConfig
    state: core.ServiceState
    probes: dict[tuple[str, str], ProbeState] = field(default_factory=dict)
    targets: dict[str, TargetHealth] = field(default_factory=dict)
    current: dict[RecordKey, RecordSet | None] | None = None
    read_error: str = ""
    last_read: float = float("-inf")
    published: core.Published = field(default_factory=lambda: core.Published("unknown"))
    decision: core.Decision | None = None
    pending: str | None = None  # target of a change not yet applied at every provider
    pending_from: str | None = None
    retry_at: float = float("-inf")
    failures: int = 0
    last_switch: dict[str, Any] | None = None
    last_error: str = ""
    provider_errors: dict[str, str] = field(default_factory=dict)


def _unknown_target(reason: str) -> TargetHealth:
    return TargetHealth(Health.UNKNOWN, None, None, reason)


class Engine:
    def __init__(
        self,
        config: Config,
        store: Store,
        providers: Mapping[str, Provider],
        coord: Coordinator,
        metrics: Metrics,
        *,
        dry_run: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.providers = providers
        self.coord = coord
        self.metrics = metrics
        self.dry_run = dry_run
        self.clock = clock
        self.single_round = False  # `run --once`: one result decides a probe's health
        self.started_at = clock()
        self.ready = False
        self.last_cycle_at: float | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        saved = coord.load_intents()
        self.services: dict[str, ServiceRuntime] = {}
        for name, svc in config.services.items():
            state = intents_codec.decode_state(saved.get(name), svc)
            runtime = ServiceRuntime(svc, state)
            for target in svc.targets:
                runtime.targets[target.name] = _unknown_target("no probe result yet")
                for probe in target.probes:
                    runtime.probes[(target.name, probe.name)] = ProbeState()
                if not target.probes:
                    runtime.targets[target.name] = _unknown_target("no probes configured")
            self.services[name] = runtime
        metrics.attach_live(self.live_view)

    # ----------------------------------------------------------------- inputs

    def on_probe_result(self, job: ProbeJob, result: ProbeResult, finished_at: float) -> None:
        """Fold a probe result into health; wake the actor when a target's health changes."""
        runtime = self.services.get(job.service)
        target = runtime.config.target(job.target) if runtime else None
        if runtime is None or target is None:
            return
        self.metrics.probe_duration.labels(job.service, job.target, job.spec.name).observe(
            result.duration
        )
        fall, rise = (1, 1) if self.single_round else (target.health.fall, target.health.rise)
        key = (job.target, job.spec.name)
        runtime.probes[key] = observe(
            runtime.probes.get(key, ProbeState()), result.ok, result.reason, finished_at, fall, rise
        )
        previous = runtime.targets.get(job.target)
        probes = {p.name: runtime.probes[(job.target, p.name)] for p in target.probes}
        health = target_health(probes, previous, finished_at)
        runtime.targets[job.target] = health
        if previous is None or previous.health is not health.health:
            log.info(
                "%s/%s is %s: %s", job.service, job.target, health.health.upper(), health.reason
            )
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ loop

    async def start(self) -> None:
        """Read the published answer back before any decision, so a restart flips nothing."""
        async with self._lock:
            await asyncio.gather(*(self._read(rt) for rt in self.services.values()))

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                async with asyncio.timeout(TICK):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if self._stopping.is_set():
                break
            await self.cycle()

    async def stop(self) -> None:
        """Stop after the cycle in flight (an in-flight DNS change completes or times out)."""
        self._stopping.set()
        self._wake.set()
        async with self._lock:
            pass

    async def cycle(self) -> None:
        async with self._lock:
            now = self.clock()
            await asyncio.gather(*(self._cycle_service(rt, now) for rt in self.services.values()))
            self.last_cycle_at = now
            self.ready = all(rt.current is not None for rt in self.services.values())

    async def _cycle_service(self, rt: ServiceRuntime, now: float) -> None:
        try:
            await self._cycle_service_unguarded(rt, now)
        except Exception as exc:  # one service's bug must not stop the others
            log.exception("cycle of service %s failed", rt.config.name)
            rt.last_error = f"internal error: {type(exc).__name__}: {exc}"

    async def _cycle_service_unguarded(self, rt: ServiceRuntime, now: float) -> None:
        stale = now - rt.last_read >= self.config.instance.resync_interval
        if (rt.current is None and now >= rt.retry_at) or (rt.current is not None and stale):
            await self._read(rt)
        rt.published = self._classify(rt)
        snap = core.Snapshot(now, self.started_at, dict(rt.targets), rt.published)
        if self.single_round:
            snap = replace(snap, started_at=now - rt.config.policy.startup_grace)
        decision = core.decide(rt.config, rt.state, snap)
        previous = rt.decision
        rt.decision = decision
        await self._journal_alarms(rt, previous, decision, now)
        if not self.coord.is_leader():
            return
        if decision.action is core.Action.NONE:
            if decision.state != rt.state:
                rt.state = decision.state
                await self._save_intents()
                if decision.state.blocked and (previous is None or not previous.state.blocked):
                    await self._journal(rt, "block", Trigger.AUTO, decision.reason, now)
            if rt.pending is not None and rt.state.mode is not Mode.PAUSED:
                await self._finish_pending(rt, now)
            return
        assert decision.target is not None
        if now < rt.retry_at:
            return
        plan = build_plan(
            rt.config, decision.target, rt.current or {}, decision.trigger, decision.reason
        )
        await self._execute(rt, decision, plan, now)

    def _classify(self, rt: ServiceRuntime) -> core.Published:
        published = core.classify_published(rt.config, rt.current)
        if rt.pending is None or published.kind != "drift" or rt.current is None:
            return published
        allowed = {t for t in (rt.pending, rt.pending_from) if t is not None}
        for record in rt.config.records:
            current = rt.current.get(record.key)
            if current is None:
                continue
            if not any(
                current.values == values_for_type(record.type, t.values)
                for t in rt.config.targets
                if t.name in allowed
            ):
                return published
        return core.Published("target", rt.pending, detail=f"change to {rt.pending} in progress")

    # ----------------------------------------------------------------- acting

    async def _execute(
        self, rt: ServiceRuntime, decision: core.Decision, plan: Plan, now: float
    ) -> dict[str, Any]:
        violations = check_plan(plan, rt.config, rt.targets, rt.current or {})
        if decision.force:  # a forced pin overrides every rule but never-empty
            violations = [v for v in violations if v.rule == RULE_NEVER_EMPTY]
        if violations:
            message = "; ".join(f"{v.rule}: {v.message}" for v in violations)
            if rt.last_error != message:
                rt.last_error = message
                await self._journal(rt, "refused", decision.trigger, message, now, to=plan.target)
            return {"result": "refused", "violations": [v.__dict__ for v in violations]}
        from_target = rt.published.target
        if not plan.changes:
            rt.state = decision.state
            await self._save_intents()
            return {"result": "noop"}
        if self.dry_run:
            summary = "; ".join(c.describe() for c in plan.changes)
            if rt.last_error != f"dry-run: {summary}":
                rt.last_error = f"dry-run: {summary}"
                log.warning("dry-run: would apply %s (%s)", summary, decision.reason)
            return {"result": "dry-run", "changes": [c.describe() for c in plan.changes]}
        outcomes = await self._apply(plan)
        await self._read(rt)
        ok = [o for o in outcomes if o.ok]
        result = "ok" if len(ok) == len(outcomes) else ("partial" if ok else "error")
        if ok:
            rt.state = decision.state
            await self._save_intents()
            self.metrics.switches.labels(
                rt.config.name, from_target or "none", plan.target, decision.trigger.value
            ).inc()
            detected = rt.targets.get(from_target or "")
            if decision.trigger is Trigger.AUTO and detected and detected.failing_since:
                accepted = min(o.accepted_after or 0.0 for o in ok)
                self.metrics.detection_to_publish.labels(rt.config.name).observe(
                    max(0.0, now + accepted - detected.failing_since)
                )
            rt.failures, rt.retry_at = 0, float("-inf")
        if result == "ok":
            rt.pending = rt.pending_from = None
            rt.last_error = ""
        else:
            if ok:
                rt.pending, rt.pending_from = plan.target, from_target
            self._backoff(rt, now)
            rt.last_error = "; ".join(f"{o.provider}: {o.error}" for o in outcomes if not o.ok)
        entry = await self._journal(
            rt,
            "publish" if decision.action is core.Action.PUBLISH else "switch",
            decision.trigger,
            decision.reason,
            now,
            frm=from_target,
            to=plan.target,
            result=result,
            changes=[_change_json(c) for c in plan.changes],
            providers=[o.as_json() for o in outcomes],
            actor=decision.state.pin.actor
            if decision.trigger is Trigger.MANUAL and decision.state.pin
            else None,
        )
        rt.published = self._classify(rt)
        if ok:
            rt.last_switch = entry
        log.warning(
            "%s %s -> %s (%s): %s",
            rt.config.name,
            from_target or "(none)",
            plan.target,
            result,
            decision.reason,
        )
        return {"result": result, "providers": [o.as_json() for o in outcomes]}

    async def _finish_pending(self, rt: ServiceRuntime, now: float) -> None:
        assert rt.pending is not None
        plan = build_plan(rt.config, rt.pending, rt.current or {}, Trigger.AUTO, "retry")
        if not plan.changes:
            rt.pending = rt.pending_from = None
            rt.last_error = ""
            return
        if now < rt.retry_at or self.dry_run:
            return
        outcomes = await self._apply(plan)
        await self._read(rt)
        failed = [o for o in outcomes if not o.ok]
        await self._journal(
            rt,
            "retry",
            Trigger.AUTO,
            f"completing the change to {rt.pending} at the lagging providers",
            now,
            frm=rt.pending_from,
            to=rt.pending,
            result="ok" if not failed else "error",
            providers=[o.as_json() for o in outcomes],
        )
        if failed:
            self._backoff(rt, now)
            rt.last_error = "; ".join(f"{o.provider}: {o.error}" for o in failed)
        else:
            rt.pending = rt.pending_from = None
            rt.failures, rt.retry_at, rt.last_error = 0, float("-inf"), ""

    def _backoff(self, rt: ServiceRuntime, now: float) -> None:
        rt.failures += 1
        rt.retry_at = now + min(MAX_BACKOFF, 0.5 * 2 ** (rt.failures - 1))

    async def _apply(self, plan: Plan) -> list[ProviderOutcome]:
        """Apply per provider in parallel: one provider's outage never blocks another."""
        by_provider: dict[str, list[Any]] = {}
        for change in plan.changes:
            by_provider.setdefault(change.key.provider, []).append(change)
        return list(
            await asyncio.gather(*(self._apply_one(name, ch) for name, ch in by_provider.items()))
        )

    async def _apply_one(self, name: str, changes: list[Any]) -> ProviderOutcome:
        provider = self.providers[name]
        timeout = self.config.providers[name].timeout
        start = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                receipt = await provider.apply(changes)
            accepted = time.monotonic() - start
            await provider.wait_in_sync(receipt, timeout)
            in_sync = time.monotonic() - start
        except (ProviderError, TimeoutError, OSError) as exc:
            kind = exc.kind if isinstance(exc, ProviderError) else type(exc).__name__.lower()
            message = str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError):
                kind, message = "timeout", f"no answer within {timeout:g}s"
            self.metrics.provider_errors.labels(name, kind).inc()
            self.metrics.dns_changes.labels(name, "error").inc()
            return ProviderOutcome(name, False, message)
        self.metrics.dns_changes.labels(name, "ok").inc()
        self.metrics.dns_change_duration.labels(name).observe(in_sync)
        return ProviderOutcome(name, True, accepted_after=accepted, in_sync_after=in_sync)

    async def _read(self, rt: ServiceRuntime) -> None:
        """Refresh the published records of a service from every provider it uses."""
        keys_by_provider: dict[str, list[RecordKey]] = {}
        for record in rt.config.records:
            keys_by_provider.setdefault(record.provider, []).append(record.key)
        current: dict[RecordKey, RecordSet | None] = {}
        errors: list[str] = []
        for name, keys in keys_by_provider.items():
            timeout = self.config.providers[name].timeout
            try:
                async with asyncio.timeout(timeout):
                    current.update(await self.providers[name].read(keys))
                rt.provider_errors.pop(name, None)
            except (ProviderError, TimeoutError, OSError) as exc:
                kind = exc.kind if isinstance(exc, ProviderError) else "timeout"
                self.metrics.provider_errors.labels(name, kind).inc()
                message = f"{name}: read failed: {exc or 'timeout'}"
                rt.provider_errors[name] = message
                errors.append(message)
        rt.last_read = self.clock()
        if errors:
            rt.read_error = "; ".join(errors)
            rt.current = None
            self._backoff(rt, rt.last_read)
        else:
            rt.read_error = ""
            rt.current = current
        rt.published = self._classify(rt)

    # ---------------------------------------------------------------- journal

    async def _journal(
        self,
        rt: ServiceRuntime,
        kind: str,
        trigger: Trigger,
        reason: str,
        now: float,
        *,
        frm: str | None = None,
        to: str | None = None,
        actor: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "time": rfc3339(now),
            "ts": now,
            "instance": self.config.instance.name,
            "service": rt.config.name,
            "kind": kind,
            "trigger": trigger.value,
            "actor": actor or f"failover@{self.config.instance.name}",
            "from": frm,
            "to": to,
            "reason": reason,
        }
        entry.update({k: v for k, v in extra.items() if v is not None})
        await asyncio.to_thread(self.store.append, entry)
        return entry

    async def _journal_alarms(
        self,
        rt: ServiceRuntime,
        previous: core.Decision | None,
        decision: core.Decision,
        now: float,
    ) -> None:
        before = previous.alarms if previous else frozenset()
        raised = decision.alarms - before
        for alarm in sorted(raised):
            kind = "drift" if alarm == "drift" else "alarm"
            log.warning("%s: alarm %s: %s", rt.config.name, alarm, decision.reason)
            await self._journal(rt, kind, Trigger.AUTO, decision.reason, now, alarm=alarm)

    async def _save_intents(self) -> None:
        data = {name: intents_codec.encode_state(rt.state) for name, rt in self.services.items()}
        await asyncio.to_thread(self.coord.save_intents, data)

    # ---------------------------------------------------------------- commands

    def _runtime(self, service: str) -> ServiceRuntime:
        runtime = self.services.get(service)
        if runtime is None:
            known = ", ".join(sorted(self.services)) or "none"
            raise CommandError("unknown_service", f"no service {service!r} (known: {known})", 404)
        return runtime

    async def promote(
        self, service: str, target: str, reason: str, actor: str, *, force: bool, dry_run: bool
    ) -> dict[str, Any]:
        """Pin `service` to `target` and apply it now. Refusals name the safety rule."""
        async with self._lock:
            rt = self._runtime(service)
            if rt.config.target(target) is None:
                names = ", ".join(t.name for t in rt.config.targets)
                raise CommandError(
                    "unknown_target", f"{service} has no target {target!r} ({names})", 404
                )
            if rt.current is None:
                await self._read(rt)
            plan = build_plan(rt.config, target, rt.current or {}, Trigger.MANUAL, reason)
            violations = check_plan(plan, rt.config, rt.targets, rt.current or {})
            body = {
                "service": service,
                "target": target,
                "plan": [_change_json(c) for c in plan.changes],
                "violations": [_violation_json(v) for v in violations],
                "read_error": rt.read_error or None,
            }
            if rt.current is None:
                raise CommandError(
                    "unreadable", f"cannot read current records: {rt.read_error}", 503, **body
                )
            blocking = [v for v in violations if not force or v.rule == RULE_NEVER_EMPTY]
            if blocking:
                rules = ", ".join(v.rule for v in blocking)
                text = "; ".join(v.message for v in blocking)
                hint = "" if force else " (--force overrides)"
                raise CommandError("refused", f"refused by {rules}: {text}{hint}", 409, **body)
            if dry_run:
                return {**body, "result": "dry-run"}
            now = self.clock()
            pin = core.Pin(target=target, reason=reason, actor=actor, at=now, force=force)
            rt.state = core.pin(rt.state, pin)
            await self._save_intents()
            await self._journal(
                rt, "pin", Trigger.MANUAL, reason, now, to=target, actor=actor, force=force
            )
            outcome = await self._decide_now(rt, now)
            return {**body, **outcome}

    async def _decide_now(self, rt: ServiceRuntime, now: float) -> dict[str, Any]:
        rt.published = self._classify(rt)
        snap = core.Snapshot(now, self.started_at, dict(rt.targets), rt.published)
        decision = core.decide(rt.config, rt.state, snap)
        rt.decision = decision
        if decision.action is core.Action.NONE or decision.target is None:
            if decision.state != rt.state:
                rt.state = decision.state
                await self._save_intents()
            return {"result": "noop", "reason": decision.reason}
        plan = build_plan(
            rt.config, decision.target, rt.current or {}, decision.trigger, decision.reason
        )
        outcome = await self._execute(rt, decision, plan, now)
        return {**outcome, "reason": decision.reason}

    async def simple_command(self, service: str | None, verb: str, actor: str) -> dict[str, Any]:
        """release / pause / resume / ack: record the intent, journal it, decide at once."""
        transforms: dict[str, Callable[[core.ServiceState], core.ServiceState]] = {
            "release": core.release,
            "pause": core.pause,
            "resume": core.resume,
            "ack": core.acknowledge,
        }
        async with self._lock:
            runtimes = [self._runtime(service)] if service else list(self.services.values())
            now = self.clock()
            results: dict[str, Any] = {}
            for rt in runtimes:
                if verb == "release" and rt.state.pin is None:
                    raise CommandError("not_pinned", f"{rt.config.name} is not pinned", 409)
                if verb == "ack" and not rt.state.blocked:
                    raise CommandError("not_blocked", f"{rt.config.name} is not blocked", 409)
                rt.state = transforms[verb](rt.state)
                if verb == "ack":
                    rt.retry_at = float("-inf")
            await self._save_intents()
            for rt in runtimes:
                await self._journal(
                    rt, verb, Trigger.MANUAL, f"{verb} by {actor}", now, actor=actor
                )
                results[rt.config.name] = await self._decide_now(rt, now)
            return {"result": "ok", "services": results}

    # ----------------------------------------------------------------- views

    def status(self) -> dict[str, Any]:
        services: dict[str, Any] = {}
        for name, rt in self.services.items():
            decision = rt.decision
            active = rt.published.target if rt.published.kind == "target" else None
            active_cfg = rt.config.target(active) if active else None
            targets: dict[str, Any] = {}
            for target in rt.config.targets:
                health = rt.targets[target.name]
                targets[target.name] = {
                    "health": health.health.value,
                    "since": rfc3339(health.since) if health.since else None,
                    "reason": health.reason,
                    "location": target.location,
                    "values": list(target.values),
                    "votes": {self.config.instance.name: health.health.value},
                    "probes": {
                        p.name: _probe_json(p.type, rt.probes[(target.name, p.name)])
                        for p in target.probes
                    },
                }
            records = []
            for record in rt.config.records:
                current = (rt.current or {}).get(record.key)
                wanted = values_for_type(record.type, active_cfg.values) if active_cfg else None
                records.append(
                    {
                        "provider": record.provider,
                        "zone": record.zone,
                        "name": record.name,
                        "type": record.type.value,
                        "ttl": current.ttl if current else record.ttl,
                        "values": list(current.values) if current else None,
                        "in_sync": bool(
                            current and wanted is not None and current.values == wanted
                        ),
                        "error": rt.provider_errors.get(record.provider),
                    }
                )
            services[name] = {
                "active": active,
                "mode": rt.state.mode.value,
                "blocked": rt.state.blocked,
                "reason": decision.reason if decision else "starting: no decision yet",
                "alarms": sorted(decision.alarms) if decision else [],
                "published": {"kind": rt.published.kind, "detail": rt.published.detail},
                "pin": _pin_json(rt.state.pin),
                "pending": rt.pending,
                "last_error": rt.last_error or None,
                "last_switch": rt.last_switch,
                "targets": targets,
                "records": records,
            }
        return {
            "instance": self.config.instance.name,
            "location": self.config.instance.location,
            "leader": self.coord.is_leader(),
            "leader_name": self.coord.leader_name(),
            "dry_run": self.dry_run,
            "started_at": rfc3339(self.started_at),
            "services": services,
        }

    def live_view(self) -> LiveView:
        services = []
        for name, rt in self.services.items():
            targets = tuple(
                TargetView(
                    t.name,
                    rt.targets[t.name].health,
                    tuple(ProbeView(p.name, rt.probes[(t.name, p.name)].last_ok) for p in t.probes),
                )
                for t in rt.config.targets
            )
            active = rt.published.target if rt.published.kind == "target" else None
            alarms = rt.decision.alarms if rt.decision else frozenset()
            services.append(ServiceView(name, rt.state.mode, active, targets, alarms))
        return LiveView(self.config.instance.name, self.coord.is_leader(), False, tuple(services))


def _change_json(change: Any) -> dict[str, Any]:
    return {
        "provider": change.key.provider,
        "zone": change.key.zone,
        "name": change.key.name,
        "type": change.key.type.value,
        "ttl": change.ttl,
        "before": list(change.before) if change.before is not None else None,
        "after": list(change.after),
    }


def _violation_json(violation: Violation) -> dict[str, str]:
    return {"rule": violation.rule, "message": violation.message}


def _pin_json(pin: core.Pin | None) -> dict[str, Any] | None:
    if pin is None:
        return None
    return {
        "target": pin.target,
        "reason": pin.reason,
        "actor": pin.actor,
        "at": rfc3339(pin.at),
        "force": pin.force,
    }


def _probe_json(kind: str, state: ProbeState) -> dict[str, Any]:
    return {
        "type": kind,
        "health": state.health.value,
        "last_ok": state.last_ok,
        "last_reason": state.last_reason or None,
        "last_at": rfc3339(state.last_at) if state.last_at else None,
        "successes": state.successes,
        "failures": state.failures,
    }
