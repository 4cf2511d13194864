"""The single actor: each cycle takes a snapshot, asks the core, hands the plan to the writers.

Decisions and operator commands run under one lock, so decision state has one writer. DNS
writes go through one queue per provider (`apply.py`) and run as per-service tasks outside the
lock: a hung provider delays only the services it serves, never the decision loop. A service
with a change in flight is not decided again until the change is accepted or failed. Probe
results only update health counters and wake the actor; they never act.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from failover import intents as intents_codec
from failover import reload as live_reload
from failover import views
from failover.apply import Confirmation, ProviderOutcome, ProviderQueue, submit_plan
from failover.config.types import Config, ServiceConfig
from failover.coord.base import Coordinator
from failover.core import decide as core
from failover.core.health import ProbeState, TargetHealth, observe, target_health, vantage_isolated
from failover.core.plan import RULE_NEVER_EMPTY, Plan, build_plan, check_plan
from failover.journal import Journal
from failover.logs import fields
from failover.metrics import Metrics
from failover.model import Health, Mode, ProbeResult, RecordKey, RecordSet, Trigger
from failover.probes.scheduler import ProbeJob
from failover.providers.base import Provider, ProviderError
from failover.store import Store

log = logging.getLogger("failover.engine")

CANARY = "*canary"  # the service name of canary probe jobs (not a valid service name)
TICK = 1.0  # seconds between cycles when nothing wakes the engine (timers: cooldown, grace)
MAX_BACKOFF = 30.0
STALL_SLACK = 30.0  # beyond the longest legitimate cycle, before the loop counts as stuck


class CommandError(Exception):
    """An operator command that cannot be carried out; `status` is the HTTP status to return."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.extra = extra


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
    inflight: asyncio.Task[dict[str, Any]] | None = None
    confirming: asyncio.Task[dict[str, Any]] | None = None
    confirmations: dict[str, Confirmation] = field(default_factory=dict)  # by provider
    unverified: bool = False
    drill: str | None = None  # the drill target while a drill holds it (drill.py)
    partial: dict[RecordKey, RecordSet | None] = field(default_factory=dict)  # first read
    changed_at: float = float("-inf")  # last time a provider accepted a change of ours
    started_at: float | None = None  # start-up grace of a service a reload added or reset


def _unknown_target(reason: str) -> TargetHealth:
    return TargetHealth(Health.UNKNOWN, None, None, reason)


CONFIRM_KEY = "_confirming"


async def with_confirmation(outcome: dict[str, Any]) -> dict[str, Any]:
    """A switch outcome without its internal keys, plus its verification once known."""
    confirming = outcome.get(CONFIRM_KEY)
    public = {k: v for k, v in outcome.items() if k != CONFIRM_KEY}
    if isinstance(confirming, asyncio.Task) and public.get("result") in ("ok", "partial"):
        public.update(await asyncio.shield(confirming))
    return public


def merge_switch(current: core.ServiceState, decided: core.ServiceState) -> core.ServiceState:
    """Keep what a switch changed (flap counters) on top of intents set while it was in flight."""
    return replace(
        current,
        auto_switches=decided.auto_switches,
        last_switch_at=decided.last_switch_at,
        last_auto_switch_at=decided.last_auto_switch_at,
        blocked=current.blocked or decided.blocked,
    )


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
        self.isolated = False
        self.last_cycle_at: float | None = None
        self._beat = time.monotonic()  # the loop's last sign of progress (see `alive`)
        self.journal = Journal(store, config.instance.name)
        self.queues = {
            name: ProviderQueue(name, provider, config.providers[name], metrics)
            for name, provider in providers.items()
        }
        self.canary_probes: dict[tuple[str, str], ProbeState] = {}  # (canary, probe)
        self._reads: dict[str, asyncio.Task[None]] = {}  # provider -> background read
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        saved = coord.load_intents()
        self.services: dict[str, ServiceRuntime] = {
            name: self.new_runtime(svc, intents_codec.decode_state(saved.get(name), svc))
            for name, svc in config.services.items()
        }
        metrics.attach_live(lambda: views.live_view(self))

    @staticmethod
    def new_runtime(svc: ServiceConfig, state: core.ServiceState) -> ServiceRuntime:
        runtime = ServiceRuntime(svc, state)
        for target in svc.targets:
            reason = "no probe result yet" if target.probes else "no probes configured"
            runtime.targets[target.name] = _unknown_target(reason)
            for probe in target.probes:
                runtime.probes[(target.name, probe.name)] = ProbeState()
        return runtime

    # ----------------------------------------------------------------- inputs

    def on_probe_result(self, job: ProbeJob, result: ProbeResult, finished_at: float) -> None:
        """Fold a probe result into health; wake the actor when a target's health changes."""
        if job.service == CANARY:
            self._on_canary_result(job, result, finished_at)
            return
        runtime = self.services.get(job.service)
        target = runtime.config.target(job.target) if runtime else None
        if runtime is None or target is None:
            return
        self.metrics.observe_probe(job, result)
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
                "%s/%s is %s: %s",
                job.service,
                job.target,
                health.health.upper(),
                health.reason,
                extra=fields(job.service, job.target),
            )
            self._wake.set()

    def _on_canary_result(self, job: ProbeJob, result: ProbeResult, finished_at: float) -> None:
        canary = next((c for c in self.config.canaries if c.name == job.target), None)
        if canary is None:  # removed by a reload while its probe ran
            return
        self.metrics.observe_probe(job, result)
        fall, rise = canary.health.fall, canary.health.rise
        key = (canary.name, job.spec.name)
        self.canary_probes[key] = observe(
            self.canary_probes.get(key, ProbeState()),
            result.ok,
            result.reason,
            finished_at,
            fall,
            rise,
        )
        self._wake.set()

    def canary_failing(self, name: str) -> bool:
        """A canary counts as failing once its latest result failed, like a target."""
        return any(
            state.last_ok is False
            for (canary, _), state in self.canary_probes.items()
            if canary == name
        )

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ loop

    async def start(self) -> None:
        """Read the published answer back before any decision, so a restart flips nothing."""
        async with self._lock:
            await self._read_many(list(self.services.values()))

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
            self._beat = time.monotonic()
            await self.cycle()

    def alive(self) -> bool:
        """The loop made progress lately: a cycle began or ended within `stall_limit`. The
        systemd watchdog pings only while this holds, so a stuck loop gets restarted."""
        return time.monotonic() - self._beat <= self.stall_limit()

    def stall_limit(self) -> float:
        """The longest legitimate cycle (a provider read: its timeout plus retry deadline),
        plus slack: a slow provider must not get the daemon restarted during an outage."""
        providers = self.config.providers.values()
        longest = max((p.timeout + p.retry.deadline for p in providers), default=0.0)
        return TICK + longest + STALL_SLACK

    async def stop(self, timeout: float = 30.0) -> list[str]:
        """Stop deciding; let in-flight changes be accepted or fail for at most `timeout`
        seconds, then abandon the rest (journalled: the provider may still apply them, and the
        next start reads the published records back). Saves the state. Returns the services
        whose change was abandoned."""
        self._stopping.set()
        self._wake.set()
        reads = list(self._reads.values())
        for read in reads:  # a resync read has nothing to finish
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with contextlib.suppress(TimeoutError):  # a cycle in progress may start changes
            async with asyncio.timeout_at(deadline), self._lock:
                pass
        inflight = {name: rt.inflight for name, rt in self.services.items() if rt.inflight}
        if inflight:
            log.info(
                "waiting up to %gs for %d in-flight DNS changes before stopping",
                timeout,
                len(inflight),
            )
            await asyncio.wait(inflight.values(), timeout=max(0.0, deadline - loop.time()))
        abandoned = [(n, self.services[n].pending, t) for n, t in inflight.items() if not t.done()]
        for _, _, task in abandoned:
            task.cancel()
        await asyncio.gather(*(t for _, _, t in abandoned), return_exceptions=True)
        for name, target, _ in abandoned:
            reason = (
                f"shutdown: the change to {target} was not accepted by every provider within "
                f"{timeout:g}s and was abandoned; a provider may still apply it, and the next "
                "start reads the published records back before deciding"
            )
            log.error("%s: %s", name, reason, extra=fields(name, target))
            await self.journal.write(
                name, "abandoned", Trigger.AUTO, reason, self.clock(), to=target, result="error"
            )
        confirming = [rt.confirming for rt in self.services.values() if rt.confirming]
        for task in confirming:
            task.cancel()
        await asyncio.gather(*confirming, return_exceptions=True)
        for queue in self.queues.values():
            await queue.aclose()
        await self._save_intents()
        return [name for name, _, _ in abandoned]

    @contextlib.asynccontextmanager
    async def quiesced(
        self, affected: Callable[[ServiceRuntime], bool], timeout: float
    ) -> AsyncIterator[None]:
        """Hold the lock once no `affected` service has a DNS change in flight, so a reload
        swaps providers and services between changes. CommandError (503) after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._lock.acquire()
            except TimeoutError:
                message = f"the engine stayed busy for {timeout:g}s"
                raise CommandError("busy", message, 503) from None
            busy = {
                n: rt.inflight for n, rt in self.services.items() if rt.inflight and affected(rt)
            }
            if not busy:
                break
            self._lock.release()
            if loop.time() >= deadline:
                names = ", ".join(sorted(busy))
                raise CommandError(
                    "busy",
                    f"DNS changes of {names} still in flight after {timeout:g}s; "
                    "try again once they finish",
                    503,
                )
            await asyncio.wait(busy.values(), timeout=max(0.0, deadline - loop.time()))
        try:
            yield
        finally:
            self._lock.release()

    async def reconfigure(
        self, config: Config, providers: Mapping[str, Provider], closing: Collection[str]
    ) -> None:
        """Swap in a validated config; the caller holds the lock (`quiesced`). Unchanged
        services keep their runtime, unchanged targets their probe history (`reload.py`).
        `closing` names the providers replaced or removed: their queues close here, and
        verification still waiting on them is abandoned (journalled)."""
        assert self._lock.locked(), "reconfigure needs the lock: use quiesced()"
        now = self.clock()
        for name, rt in self.services.items():
            touched = {r.provider for r in rt.config.records} & set(closing)
            task = rt.confirming
            if task is None or task.done() or not (touched or name not in config.services):
                continue
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            rt.confirming = None
            reason = "verification abandoned: a reload replaced " + (
                ", ".join(sorted(touched)) if touched else "the service"
            )
            await self.journal.write(name, "verify", Trigger.AUTO, reason, now, result="abandoned")
        self.services = live_reload.merge_services(self, config, closing, now)
        old = self.queues
        self.queues = {
            name: old[name]
            if name in old and name not in closing
            else ProviderQueue(name, provider, config.providers[name], self.metrics)
            for name, provider in providers.items()
        }
        self.providers, self.config = providers, config
        for name in closing:
            if name in old:
                await old[name].aclose()
        await self._save_intents()
        self.ready = all(rt.current is not None for rt in self.services.values())
        self._wake.set()

    async def cycle(self) -> None:
        async with self._lock:
            now = self.clock()
            self._update_isolation(now)
            idle = [rt for rt in self.services.values() if rt.inflight is None]
            due = [
                rt
                for rt in idle
                if (rt.current is None and now >= rt.retry_at)
                or (
                    rt.current is not None
                    and now - rt.last_read >= self.config.instance.resync_interval
                )
            ]
            if due:  # resync reads run outside the lock: a hung provider stalls no decision
                self._start_reads(due, now)
            for rt in idle:
                try:
                    await self._decide_service(rt, now)
                except Exception as exc:  # one service's bug must not stop the others
                    log.exception("cycle of service %s failed", rt.config.name)
                    rt.last_error = f"internal error: {type(exc).__name__}: {exc}"
            self.last_cycle_at = now
            self._beat = time.monotonic()
            self.ready = all(rt.current is not None for rt in self.services.values())

    def _update_isolation(self, now: float) -> None:
        """A target counts as failing once its latest probe result failed, before it is DOWN:
        when a vantage point is cut off, the first target to reach `fall` must not trigger a
        switch to another that has started failing too."""
        signals = [
            (target.location, Health.DOWN if self._failing(rt, target.name) else Health.UP)
            for rt in self.services.values()
            for target in rt.config.targets
            if target.probes
        ] + [
            (canary.location, Health.DOWN if self.canary_failing(canary.name) else Health.UP)
            for canary in self.config.canaries
            if canary.probes
        ]
        isolated = vantage_isolated(signals)
        if isolated != self.isolated:
            self.isolated = isolated
            if isolated:
                reason = (
                    "every target in every location is DOWN at once: this vantage point is"
                    " probably cut off; no automatic switch until it clears"
                )
                log.error(reason)
            else:
                reason = "isolation cleared: some target is reachable again"
                log.warning(reason)
            self.journal.spawn(
                "*", "isolated" if isolated else "isolation_cleared", Trigger.AUTO, reason, now
            )

    @staticmethod
    def _failing(rt: ServiceRuntime, target: str) -> bool:
        if rt.targets[target].health is Health.DOWN:
            return True
        return any(state.last_ok is False for (t, _), state in rt.probes.items() if t == target)

    async def _decide_service(self, rt: ServiceRuntime, now: float) -> None:
        """Decide one service and start its action (the caller holds the lock)."""
        rt.published = self._classify(rt)
        started = self.started_at if rt.started_at is None else rt.started_at
        snap = core.Snapshot(now, started, dict(rt.targets), rt.published, self.isolated)
        if self.single_round:
            snap = replace(snap, started_at=now - rt.config.policy.startup_grace)
        decision = core.decide(rt.config, rt.state, snap)
        if (
            rt.drill is not None
            and decision.trigger is Trigger.AUTO
            and decision.action is not core.Action.NONE
            and rt.published.target == rt.drill
        ):  # the drill task owns this service while it holds: it returns at once if its target
            # dies, and hands over to automation (clearing rt.drill) if the origin dies
            decision = replace(
                decision,
                action=core.Action.NONE,
                target=None,
                reason=f"drill in progress on {rt.drill}; {decision.reason}",
                state=rt.state,
            )
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
                    await self.journal.write(
                        rt.config.name, "block", Trigger.AUTO, decision.reason, now
                    )
            if rt.pending is not None and rt.state.mode is not Mode.PAUSED and now >= rt.retry_at:
                plan = build_plan(rt.config, rt.pending, rt.current or {}, Trigger.AUTO, "retry")
                if not plan.changes:
                    rt.pending = rt.pending_from = None
                    rt.last_error = ""
                elif not self.dry_run:
                    rt.inflight = asyncio.create_task(self._retry_pending(rt, plan, now))
            return
        assert decision.target is not None
        if now < rt.retry_at:
            return
        plan = build_plan(
            rt.config, decision.target, rt.current or {}, decision.trigger, decision.reason
        )
        violations = check_plan(plan, rt.config, rt.targets, rt.current or {})
        if decision.force:  # a forced pin overrides every rule but never-empty
            violations = [v for v in violations if v.rule == RULE_NEVER_EMPTY]
        if violations:
            message = "; ".join(f"{v.rule}: {v.message}" for v in violations)
            if rt.last_error != message:
                rt.last_error = message
                await self.journal.write(
                    rt.config.name, "refused", decision.trigger, message, now, to=plan.target
                )
            return
        if not plan.changes:
            rt.state = merge_switch(rt.state, decision.state)
            await self._save_intents()
            return
        if self.dry_run:
            summary = "; ".join(c.describe() for c in plan.changes)
            if rt.last_error != f"dry-run: {summary}":
                rt.last_error = f"dry-run: {summary}"
                log.warning("dry-run: would apply %s (%s)", summary, decision.reason)
            return
        rt.inflight = asyncio.create_task(self._switch(rt, decision, plan, now))

    def _classify(self, rt: ServiceRuntime) -> core.Published:
        return views.classify_with_pending(rt)

    # ----------------------------------------------------------------- acting

    async def _switch(
        self, rt: ServiceRuntime, decision: core.Decision, plan: Plan, now: float
    ) -> dict[str, Any]:
        """Submit the plan to every provider at once; record the outcome; confirm after.

        While providers answer, the service counts as changing to the new target (not drift),
        and each provider's records show the new values as soon as that provider accepts."""
        from_target = rt.published.target
        before = (rt.pending, rt.pending_from)
        rt.pending, rt.pending_from = plan.target, from_target
        try:
            outcomes = await self._submit(rt, plan)
            async with self._lock:
                if not any(o.ok for o, _ in outcomes):
                    rt.pending, rt.pending_from = before
                result = await self._record_switch(rt, decision, plan, now, outcomes, from_target)
            await self.journal.sync()  # on disk before the switch counts as done (group commit)
            return result
        finally:
            rt.inflight = None
            self._wake.set()

    async def _submit(
        self, rt: ServiceRuntime, plan: Plan
    ) -> list[tuple[ProviderOutcome, asyncio.Future[Confirmation]]]:
        subs = submit_plan(self.queues, plan.changes)

        def progress(future: asyncio.Future[ProviderOutcome]) -> None:
            if not future.cancelled() and future.exception() is None and future.result().ok:
                self._assume_applied(rt, plan, {future.result().provider})
                rt.published = self._classify(rt)

        for sub in subs:
            sub.accepted.add_done_callback(progress)
        accepted = await asyncio.gather(*(sub.accepted for sub in subs))
        return [(outcome, sub.confirmed) for outcome, sub in zip(accepted, subs, strict=True)]

    async def _record_switch(
        self,
        rt: ServiceRuntime,
        decision: core.Decision,
        plan: Plan,
        now: float,
        outcomes: list[tuple[ProviderOutcome, asyncio.Future[Confirmation]]],
        from_target: str | None,
    ) -> dict[str, Any]:
        ok = [o for o, _ in outcomes if o.ok]
        result = "ok" if len(ok) == len(outcomes) else ("partial" if ok else "error")
        self._assume_applied(rt, plan, {o.provider for o in ok})
        if ok:
            rt.state = merge_switch(rt.state, decision.state)
            self._save_intents_soon()  # durable before _switch returns (group commit)
            self.metrics.switches.labels(
                rt.config.name, from_target or "none", plan.target, decision.trigger.value
            ).inc()
            detected = rt.targets.get(from_target or "")
            if decision.trigger is Trigger.AUTO and detected and detected.failing_since:
                accepted_at = now + min(o.accepted_after or 0.0 for o in ok)
                self.metrics.detection_to_publish.labels(rt.config.name).observe(
                    max(0.0, accepted_at - detected.failing_since)
                )
            rt.failures, rt.retry_at = 0, float("-inf")
        if result == "ok":
            rt.pending = rt.pending_from = None
            rt.last_error = ""
        else:
            if ok:
                rt.pending, rt.pending_from = plan.target, from_target
            self._backoff(rt, now)
            rt.last_error = "; ".join(f"{o.provider}: {o.error}" for o, _ in outcomes if not o.ok)
        pin = decision.state.pin
        entry = self.journal.enqueue(
            rt.config.name,
            "publish" if decision.action is core.Action.PUBLISH else "switch",
            decision.trigger,
            decision.reason,
            now,
            frm=from_target,
            to=plan.target,
            actor=pin.actor if decision.trigger is Trigger.MANUAL and pin else None,
            result=result,
            changes=[views.change_json(c) for c in plan.changes],
            providers=[o.as_json() for o, _ in outcomes],
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
            extra=fields(rt.config.name, plan.target),
        )
        confirmations = [(o.provider, fut) for o, fut in outcomes if o.ok]
        if confirmations:
            rt.confirming = asyncio.create_task(self._confirm(rt, plan, confirmations, now))
        return {
            "result": result,
            "providers": [o.as_json() for o, _ in outcomes],
            "reason": decision.reason,
            CONFIRM_KEY: rt.confirming,  # the caller that waits for verification (internal)
        }

    def _assume_applied(self, rt: ServiceRuntime, plan: Plan, providers: set[str]) -> None:
        """A provider that accepted a change serves it: show it now, re-read for the truth soon."""
        rt.changed_at = self.clock()
        if rt.current is None:
            return
        for change in plan.changes:
            if change.key.provider in providers:
                rt.current[change.key] = RecordSet(
                    change.key.name, change.key.type, change.ttl, change.after
                )
        rt.last_read = float("-inf")

    async def _confirm(
        self,
        rt: ServiceRuntime,
        plan: Plan,
        confirmations: list[tuple[str, asyncio.Future[Confirmation]]],
        started: float,
    ) -> dict[str, Any]:
        """Wait for in-sync and verification per provider; journal and alarm the outcome."""
        results = await asyncio.gather(*(fut for _, fut in confirmations))
        async with self._lock:
            for (provider, _), confirmation in zip(confirmations, results, strict=True):
                rt.confirmations[provider] = confirmation
            failed = [
                f"{p}: {c.verify_reason}"
                for (p, _), c in zip(confirmations, results, strict=True)
                if not c.in_sync or c.verified is False
            ]
            rt.unverified = bool(failed)
            body = [
                {"provider": p, **c.as_json()}
                for (p, _), c in zip(confirmations, results, strict=True)
            ]
            if failed:
                reason = "; ".join(failed)
            elif all(c.verified is None for c in results):
                reason = "in sync at the provider (verification disabled)"
            else:
                reason = "served by every authoritative server"
            self.journal.enqueue(
                rt.config.name,
                "verify",
                Trigger.AUTO,
                reason,
                self.clock(),
                to=plan.target,
                result="failed" if failed else "ok",
                providers=body,
            )
            if failed:
                log.error(
                    "%s: change to %s NOT verified: %s",
                    rt.config.name,
                    plan.target,
                    reason,
                    extra=fields(rt.config.name, plan.target),
                )
        await self.journal.sync()
        rt.confirming = None
        return {"verified": not failed, "verification": body}

    async def _retry_pending(self, rt: ServiceRuntime, plan: Plan, now: float) -> dict[str, Any]:
        try:
            outcomes = await self._submit(rt, plan)
            async with self._lock:
                failed = [o for o, _ in outcomes if not o.ok]
                self._assume_applied(rt, plan, {o.provider for o, _ in outcomes if o.ok})
                await self.journal.write(
                    rt.config.name,
                    "retry",
                    Trigger.AUTO,
                    f"completing the change to {rt.pending} at the lagging providers",
                    now,
                    frm=rt.pending_from,
                    to=rt.pending,
                    result="ok" if not failed else "error",
                    providers=[o.as_json() for o, _ in outcomes],
                )
                if failed:
                    self._backoff(rt, now)
                    rt.last_error = "; ".join(f"{o.provider}: {o.error}" for o in failed)
                else:
                    rt.pending = rt.pending_from = None
                    rt.failures, rt.retry_at, rt.last_error = 0, float("-inf"), ""
                rt.published = self._classify(rt)
                return {"result": "ok" if not failed else "error"}
        finally:
            rt.inflight = None
            self._wake.set()

    def _backoff(self, rt: ServiceRuntime, now: float) -> None:
        rt.failures += 1
        rt.retry_at = now + min(MAX_BACKOFF, 0.5 * 2 ** (rt.failures - 1))

    async def _read_many(self, runtimes: list[ServiceRuntime]) -> None:
        """One read call per provider for every due service, providers in parallel."""
        keys: dict[str, list[RecordKey]] = {}
        for rt in runtimes:
            for record in rt.config.records:
                keys.setdefault(record.provider, []).append(record.key)
        results = await asyncio.gather(*(self._read_provider(n, k) for n, k in keys.items()))
        by_provider = dict(zip(keys, results, strict=True))
        now = self.clock()
        for rt in runtimes:
            current: dict[RecordKey, RecordSet | None] = {}
            errors = []
            for record in rt.config.records:
                found = by_provider[record.provider]
                if isinstance(found, str):
                    errors.append(found)
                    rt.provider_errors[record.provider] = found
                else:
                    current[record.key] = found.get(record.key)
                    rt.provider_errors.pop(record.provider, None)
            rt.last_read = now
            if errors:
                message = "; ".join(sorted(set(errors)))
                if message != rt.read_error:
                    log.error(
                        "%s: cannot read the published records: %s",
                        rt.config.name,
                        message,
                        extra=fields(rt.config.name),
                    )
                rt.read_error = message
                rt.current = None
                self._backoff(rt, now)
            else:
                rt.read_error = ""
                rt.current = current
            rt.published = self._classify(rt)

    def _start_reads(self, due: list[ServiceRuntime], now: float) -> None:
        """One background read per provider (at most one in flight each) for the due services."""
        items: dict[str, list[tuple[ServiceRuntime, RecordKey]]] = {}
        for rt in due:
            for record in rt.config.records:
                items.setdefault(record.provider, []).append((rt, record.key))
        for name, wanted in items.items():
            if name in self._reads:
                continue
            for rt, _ in wanted:
                rt.last_read = now  # not due again while this read runs
            task = asyncio.create_task(self._background_read(name, wanted, now))
            self._reads[name] = task
            task.add_done_callback(self._read_done(name))

    def _read_done(self, name: str) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._reads.pop(name, None)

        return forget

    async def _background_read(
        self, name: str, wanted: list[tuple[ServiceRuntime, RecordKey]], started: float
    ) -> None:
        """Fold one provider's answer into each service. A failed read keeps the last values
        read (stale, flagged in status) so the other providers' records can still be acted on."""
        found = await self._read_provider(name, sorted({key for _, key in wanted}))
        async with self._lock:
            now = self.clock()
            for rt in {id(rt): rt for rt, _ in wanted}.values():
                if rt.inflight is not None or rt.changed_at >= started:
                    continue  # a change made during this read is fresher than what it saw
                keys = [key for other, key in wanted if other is rt]
                if isinstance(found, str):
                    if rt.provider_errors.get(name) != found:
                        log.error("%s: %s", rt.config.name, found, extra=fields(rt.config.name))
                    rt.provider_errors[name] = found
                    if rt.current is None:
                        self._backoff(rt, now)
                else:
                    rt.provider_errors.pop(name, None)
                    target = rt.current if rt.current is not None else rt.partial
                    for key in keys:
                        target[key] = found.get(key)
                    if rt.current is None and {r.key for r in rt.config.records} <= set(rt.partial):
                        rt.current, rt.partial = dict(rt.partial), {}
                rt.read_error = "; ".join(sorted(rt.provider_errors.values()))
                rt.published = self._classify(rt)
        self._wake.set()

    async def _read_provider(
        self, name: str, keys: list[RecordKey]
    ) -> dict[RecordKey, RecordSet | None] | str:
        timeout = self.config.providers[name].timeout + self.config.providers[name].retry.deadline
        try:
            async with asyncio.timeout(timeout):
                return await self.providers[name].read(keys)
        except (ProviderError, TimeoutError, OSError) as exc:
            kind = exc.kind if isinstance(exc, ProviderError) else "timeout"
            if not (isinstance(exc, ProviderError) and exc.counted):
                self.metrics.provider_errors.labels(name, kind).inc()
            return f"{name}: read failed: {exc or 'timeout'}"

    # ---------------------------------------------------------------- journal

    async def _journal_alarms(
        self,
        rt: ServiceRuntime,
        previous: core.Decision | None,
        decision: core.Decision,
        now: float,
    ) -> None:
        before = previous.alarms if previous else frozenset()
        for alarm in sorted(decision.alarms - before):
            kind = "drift" if alarm == "drift" else "alarm"
            log.warning(
                "%s: alarm %s: %s",
                rt.config.name,
                alarm,
                decision.reason,
                extra=fields(rt.config.name),
            )
            await self.journal.write(
                rt.config.name, kind, Trigger.AUTO, decision.reason, now, alarm=alarm
            )

    def _intents_snapshot(self) -> dict[str, Any]:
        return {name: intents_codec.encode_state(rt.state) for name, rt in self.services.items()}

    def _save_intents_soon(self) -> None:
        """Mark the intents for the next group commit; `journal.sync()` waits for it."""
        self.journal.mark_state(self._intents_snapshot, self.coord.save_intents)

    async def _save_intents(self) -> None:
        self._save_intents_soon()
        await self.journal.sync()

    # ---------------------------------------------------------------- commands

    @property
    def lock(self) -> asyncio.Lock:
        """The actor's lock, for collaborators such as drills that act through the engine."""
        return self._lock

    async def drill_switch(self, rt: ServiceRuntime, target: str, reason: str) -> dict[str, Any]:
        """One switch with trigger `drill` through the normal writers; waits for verification."""
        async with self._lock:
            if rt.inflight is not None:
                raise CommandError("busy", f"{rt.config.name} has a change in flight", 409)
            plan = build_plan(rt.config, target, rt.current or {}, Trigger.DRILL, reason)
            violations = check_plan(plan, rt.config, rt.targets, rt.current or {})
            if violations:
                text = "; ".join(f"{v.rule}: {v.message}" for v in violations)
                return {"result": "refused", "reason": text, "providers": []}
            if not plan.changes:
                return {"result": "ok", "reason": "already published", "providers": []}
            decision = core.Decision(core.Action.SWITCH, target, Trigger.DRILL, reason, rt.state)
            task = asyncio.create_task(self._switch(rt, decision, plan, self.clock()))
            rt.inflight = task
        return await with_confirmation(await asyncio.shield(task))

    def runtime(self, service: str) -> ServiceRuntime:
        runtime = self.services.get(service)
        if runtime is None:
            known = ", ".join(sorted(self.services)) or "none"
            raise CommandError("unknown_service", f"no service {service!r} (known: {known})", 404)
        return runtime

    async def act_now(self, rt: ServiceRuntime) -> dict[str, Any]:
        """Decide one service now and wait for what it does, verification included."""
        mine = False
        while True:
            async with self._lock:
                task = rt.inflight
                if task is None:
                    await self._decide_service(rt, self.clock())
                    task, mine = rt.inflight, True
                    if task is None:
                        reason = rt.decision.reason if rt.decision else ""
                        blocked = (
                            rt.last_error
                            if rt.last_error.startswith(
                                ("dry-run", "drift", "never-empty", "target-not-up")
                            )
                            else ""
                        )
                        return {"result": "noop", "reason": reason, "detail": blocked or None}
            outcome = await asyncio.shield(task)
            if mine or outcome.get("result") in ("error", "partial"):
                return await with_confirmation(outcome)

    async def promote(
        self, service: str, target: str, reason: str, actor: str, *, force: bool, dry_run: bool
    ) -> dict[str, Any]:
        """Pin `service` to `target` and apply it now. Refusals name the safety rule."""
        async with self._lock:
            rt = self.runtime(service)
            if rt.config.target(target) is None:
                names = ", ".join(t.name for t in rt.config.targets)
                raise CommandError(
                    "unknown_target", f"{service} has no target {target!r} ({names})", 404
                )
            if rt.current is None and rt.inflight is None:
                await self._read_many([rt])
            plan = build_plan(rt.config, target, rt.current or {}, Trigger.MANUAL, reason)
            violations = check_plan(plan, rt.config, rt.targets, rt.current or {})
            body: dict[str, Any] = {
                "service": service,
                "target": target,
                "plan": [views.change_json(c) for c in plan.changes],
                "violations": [views.violation_json(v) for v in violations],
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
            rt.state = core.pin(rt.state, core.Pin(target, reason, actor, now, force))
            rt.retry_at = float("-inf")
            await self._save_intents()
            await self.journal.write(
                service, "pin", Trigger.MANUAL, reason, now, to=target, actor=actor, force=force
            )
        return {**body, **(await self.act_now(rt))}

    async def simple_command(self, service: str | None, verb: str, actor: str) -> dict[str, Any]:
        """release / pause / resume / ack: record the intent, journal it, decide at once."""
        transforms: dict[str, Callable[[core.ServiceState], core.ServiceState]] = {
            "release": core.release,
            "pause": core.pause,
            "resume": core.resume,
            "ack": core.acknowledge,
        }
        async with self._lock:
            runtimes = [self.runtime(service)] if service else list(self.services.values())
            now = self.clock()
            for rt in runtimes:
                if verb == "release" and rt.state.pin is None:
                    raise CommandError("not_pinned", f"{rt.config.name} is not pinned", 409)
                if verb == "ack" and not rt.state.blocked:
                    raise CommandError("not_blocked", f"{rt.config.name} is not blocked", 409)
            for rt in runtimes:
                rt.state = transforms[verb](rt.state)
                rt.retry_at = float("-inf")
            await self._save_intents()
            for rt in runtimes:
                await self.journal.write(
                    rt.config.name, verb, Trigger.MANUAL, f"{verb} by {actor}", now, actor=actor
                )
        results = await asyncio.gather(*(self.act_now(rt) for rt in runtimes))
        return {
            "result": "ok",
            "services": {rt.config.name: r for rt, r in zip(runtimes, results, strict=True)},
        }

    def status(self) -> dict[str, Any]:
        return views.status(self)
