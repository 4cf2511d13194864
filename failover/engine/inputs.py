"""Probe results in, health out: fold each result into its target's health, and judge whether
this vantage point itself is cut off (the isolation guard) or short of resources (a local
fault: a probe that failed with EMFILE, ENOBUFS … or while the loop stalled says nothing about
its target, so it is not counted toward `fall`, and decisions are held until every probe that
failed that way has reported again). Nothing here acts; a change of health only wakes the actor."""

from __future__ import annotations

import itertools
import logging

from failover.core.health import (
    ProbeState,
    local_fault_holds,
    observe,
    target_health,
    vantage_isolated,
)
from failover.core.pool import fold_members, pool_failing, pool_health
from failover.core.values import FALLBACK
from failover.engine.context import Context
from failover.logs import fields
from failover.model import Health, ProbeResult, Trigger
from failover.probes.scheduler import ProbeJob
from failover.runtime import ServiceRuntime

log = logging.getLogger("failover.engine")

CANARY = "*canary"  # the service name of canary probe jobs (not a valid service name)
LOCAL_FAULT_MIN_HOLD = 1.0  # seconds decisions stay held after the last local fault, at least


class HealthInputs:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.single_round = False  # `run --once`: one result decides a probe's health
        self.isolated = False
        # when this instance could judge again after a time it could not (core.Snapshot)
        self.judging_since: float | None = None
        self.canary_probes: dict[tuple[str, str], ProbeState] = {}  # (canary, probe)
        self.local_fault = ""  # why decisions are held ("" while they are not)
        self._last_local_fault: tuple[float, str] | None = None  # (when, reason)
        self._unheard: set[tuple[str, str, str]] = set()  # probe jobs whose last run was local
        self._keys_of: tuple[object, set[tuple[str, str, str]]] | None = None  # _probe_keys

    def on_probe_result(self, job: ProbeJob, result: ProbeResult, finished_at: float) -> None:
        """Fold a probe result into health; wake the actor when a target's health changes."""
        kind = result.detail.get("local_fault") if not result.ok else None
        if kind is not None:
            self._on_local_fault(job, str(kind), result.reason, finished_at)
            return
        self._unheard.discard(job.key)
        if job.service == CANARY:
            self._on_canary_result(job, result, finished_at)
            return
        runtime = self.ctx.services.get(job.service)
        if runtime is not None and job.target == FALLBACK:
            self._on_fallback_result(runtime, job, result, finished_at)
            return
        target = runtime.config.target(job.target) if runtime else None
        if runtime is None or target is None:
            return
        self.ctx.metrics.observe_probe(job, result)
        fall, rise = (1, 1) if self.single_round else (target.health.fall, target.health.rise)
        key = (job.target, job.spec.name)
        runtime.probes[key] = observe(
            runtime.probes.get(key, ProbeState()), result.ok, result.reason, finished_at, fall, rise
        )
        previous = runtime.targets.get(job.target)
        probes = {p.name: runtime.probes[(job.target, p.name)] for p in target.probes}
        if target.pool is not None:
            old = runtime.members.get(job.target, {})
            members = fold_members(target, probes, old, finished_at)
            runtime.members[job.target] = members
            health = pool_health(target, members, previous, finished_at)
            if any(old.get(v) is None or old[v].health is not h.health for v, h in members.items()):
                # the published subset may change while the target stays UP
                self.ctx.wake_service(job.service, urgent=True)
                self.ctx.health_changed.set()
        else:
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
            self.ctx.wake_service(job.service, urgent=True)
            self.ctx.health_changed.set()

    def _on_fallback_result(
        self, runtime: ServiceRuntime, job: ProbeJob, result: ProbeResult, finished_at: float
    ) -> None:
        """The fallback's own probes: it is published only while they say it is UP."""
        fb = runtime.config.fallback
        if fb is None:
            return
        self.ctx.metrics.observe_probe(job, result)
        fall, rise = (1, 1) if self.single_round else (fb.health.fall, fb.health.rise)
        if job.spec.name not in {p.name for p in fb.probes}:
            return  # removed by a reload while it ran
        key = (FALLBACK, job.spec.name)
        runtime.probes[key] = observe(
            runtime.probes.get(key, ProbeState()), result.ok, result.reason, finished_at, fall, rise
        )
        states = {p.name: runtime.probes.get((FALLBACK, p.name), ProbeState()) for p in fb.probes}
        previous = runtime.fallback_health
        runtime.fallback_health = target_health(states, previous, finished_at)
        if previous is None or previous.health is not runtime.fallback_health.health:
            self.ctx.health_changed.set()  # part of this instance's view (several instances)
            self.ctx.wake()

    def _on_canary_result(self, job: ProbeJob, result: ProbeResult, finished_at: float) -> None:
        canary = next((c for c in self.ctx.config.canaries if c.name == job.target), None)
        if canary is None:  # removed by a reload while its probe ran
            return
        self.ctx.metrics.observe_probe(job, result)
        key = (canary.name, job.spec.name)
        self.canary_probes[key] = observe(
            self.canary_probes.get(key, ProbeState()),
            result.ok,
            result.reason,
            finished_at,
            canary.health.fall,
            canary.health.rise,
        )
        # a canary only feeds the isolation guard, which the next cycle re-judges (and then
        # decides every service if it changed): no full sweep for each of its results
        self.ctx.woken.set()

    def _on_local_fault(self, job: ProbeJob, kind: str, reason: str, now: float) -> None:
        """Not evidence against the target: counted as a local fault, and decisions held."""
        self.ctx.metrics.local_faults.labels(kind).inc()
        self._unheard.add(job.key)
        self._last_local_fault = (now, f"{job.service}/{job.target}/{job.spec.name}: {reason}")
        if not self.local_fault:
            self.update_local_fault(now)

    def update_local_fault(self, now: float) -> None:
        """Raise or clear the local fault (journalled instance-wide, like isolation). It holds
        for `LOCAL_FAULT_MIN_HOLD` after the last one, and until every probe whose run failed
        locally has reported again: only then is each target's health current."""
        if self._unheard:
            self._unheard &= self._probe_keys()  # a reload may have removed some
        last = self._last_local_fault
        holds = last is not None and (
            bool(self._unheard) or local_fault_holds(last[0], now, LOCAL_FAULT_MIN_HOLD)
        )
        reason = last[1] if holds and last is not None else ""
        changed = bool(reason) != bool(self.local_fault)
        self.local_fault = reason  # the latest fault while it holds
        if not changed:
            return
        if reason:
            text = (
                f"local fault: probes fail for a reason on this host, not at the targets "
                f"({reason}); no automatic switch until it clears"
            )
            log.error(text)
        else:
            text = "local fault cleared: every probe has reported again"
            log.warning(text)
        self.ctx.journal.spawn(
            "*", "local_fault" if reason else "local_fault_cleared", Trigger.AUTO, text, now
        )
        self.ctx.wake()

    def _probe_keys(self) -> set[tuple[str, str, str]]:
        """Every probe job's key, computed once per config (a reload replaces it)."""
        cached = self._keys_of
        if cached is not None and cached[0] is self.ctx.config:
            return cached[1]
        keys = {
            (rt.name, target.name, probe.name)
            for rt in self.ctx.services.values()
            for target in rt.config.targets
            for probe in target.probes
        }
        keys |= {(CANARY, c.name, p.name) for c in self.ctx.config.canaries for p in c.probes}
        self._keys_of = (self.ctx.config, keys)
        return keys

    def canary_failing(self, name: str) -> bool:
        """A canary counts as failing once its latest result failed, like a target."""
        return any(
            state.last_ok is False
            for (canary, _), state in self.canary_probes.items()
            if canary == name
        )

    def update_isolation(self, now: float) -> None:
        """A target counts as failing once its latest probe result failed, before it is DOWN:
        when a vantage point is cut off, the first target to reach `fall` must not trigger a
        switch to another that has started failing too."""
        signals = itertools.chain(
            (
                (target.location, Health.DOWN if _failing(rt, target.name) else Health.UP)
                for rt in self.ctx.services.values()
                for target in rt.config.targets
                if target.probes
            ),
            (
                (canary.location, Health.DOWN if self.canary_failing(canary.name) else Health.UP)
                for canary in self.ctx.config.canaries
                if canary.probes
            ),
        )
        seen: list[tuple[str | None, Health]] = []
        for signal in signals:  # one target not failing settles it: no need to see them all
            seen.append(signal)
            if signal[1] is not Health.DOWN:
                break
        isolated = vantage_isolated(seen) if seen[-1:] and seen[-1][1] is Health.DOWN else False
        if isolated == self.isolated:
            return
        self.isolated = isolated
        self.ctx.health_changed.set()
        if isolated:
            reason = (
                "every target in every location is DOWN at once: this vantage point is"
                " probably cut off; no automatic switch until it clears"
            )
            log.error(reason)
        else:
            reason = (
                "isolation cleared: some target is reachable again; no automatic switch until"
                " every target has re-reported"
            )
            log.warning(reason)
            self.judging_since = now
        self.ctx.journal.spawn(
            "*", "isolated" if isolated else "isolation_cleared", Trigger.AUTO, reason, now
        )

    def resumed(self, now: float, why: str) -> None:
        """This instance could not judge for a while (a stalled loop): targets re-report
        before any automatic switch, as after isolation."""
        log.warning("%s; no automatic switch until every target has re-reported", why)
        self.judging_since = now


def _failing(rt: ServiceRuntime, target: str) -> bool:
    if rt.targets[target].health is Health.DOWN:
        return True
    config = rt.config.target(target)
    if config is not None and config.pool is not None:  # one value failing is not the target
        return pool_failing(config, {n: s for (t, n), s in rt.probes.items() if t == target})
    return any(state.last_ok is False for (t, _), state in rt.probes.items() if t == target)
