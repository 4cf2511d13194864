"""`failover switchover`: lower the TTL, wait it out, switch (pinned, verified), restore it.

The plans and the times are pure (`core/switchover.py`); the state is an intent kept with the
pin (`ServiceState.switchover`, persisted and shared like a pin), so the steps resume where
they stood after a restart or on a new leader. Each cycle `tick` starts the step that is due,
through the normal writers (one writer, verified), and a follower task records its outcome.
Any failure goes to the `restore` step: the short TTL is never left behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from failover.core import decide as core
from failover.core import drain as drain_rules
from failover.core import switchover as rules
from failover.core.ops import STEP_LOWERED, STEP_RESTORE, STEP_SCHEDULED, STEP_SWITCHED, Switchover
from failover.core.plan import Plan, Violation, build_plan, check_plan, refusal
from failover.core.pool import pool_values, served_values
from failover.engine.context import CommandError, Context
from failover.engine.reader import RecordReader
from failover.engine.switcher import Switcher, with_confirmation
from failover.engine.vantage import Vantage
from failover.model import Trigger
from failover.runtime import ServiceRuntime
from failover.timefmt import rfc3339
from failover.views import change_json, violation_json
from failover.views_ops import switchover_json

log = logging.getLogger("failover.engine")

RESTORE_RETRY = 5.0  # seconds between attempts of a TTL restore that failed
Step = Callable[[Switchover, float], Switchover | None]


class Switchovers:
    def __init__(
        self, ctx: Context, reader: RecordReader, switcher: Switcher, vantage: Vantage
    ) -> None:
        self.ctx = ctx
        self.reader = reader
        self.switcher = switcher
        self.vantage = vantage  # health and pool values: the quorum's, as the decisions'
        self._running: dict[str, asyncio.Task[None]] = {}

    def _health(self, rt: ServiceRuntime, now: float) -> dict[str, Any]:
        drains = drain_rules.drained(rt.config, rt.state, now)
        return drain_rules.effective_health(self.vantage.health(rt), drains)

    async def start(
        self,
        service: str,
        target: str,
        reason: str,
        actor: str,
        *,
        ttl: int,
        at: float | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        """Check and record the switchover; the engine carries it out (`tick`). Refused (409,
        rules named) when the target is not UP (drained counts as not UP), already active,
        the TTL is not shorter, or another switchover runs."""
        rt = self.ctx.runtime(service)
        if rt.current is None and rt.inflight is None:
            providers = [self.ctx.config.providers[r.provider] for r in rt.config.records]
            await self.reader.read_now(rt, max((p.timeout for p in providers), default=5.0))
        async with self.ctx.lock:
            now = self.ctx.clock()
            current = rt.current or {}
            active = rt.published.target if rt.published.kind == "target" else None
            health = self._health(rt, now)
            violations = rules.check(rt.config, health, target, active, rt.state.switchover)
            old = rules.longest_ttl(rt.config, current)
            if ttl >= old:
                violations.append(
                    Violation(
                        rules.RULE_TTL_NOT_SHORTER,
                        f"--ttl {ttl}s is not shorter than the record TTL ({old}s)",
                    )
                )
            plan = None
            if rt.config.target(target) is not None:
                members = self.vantage.members(rt)
                values = pool_values(rt.config, target, members)  # a pool: its UP values
                plan = rules.ttl_plan(rt.config, target, current, ttl, reason, values)
                violations += [
                    v
                    for v in check_plan(plan, rt.config, health, current)
                    if v.rule not in {v.rule for v in violations}
                ]
            start = max(now, at or now)
            body: dict[str, Any] = {
                "service": service,
                "target": target,
                "origin": active,
                "ttl": ttl,
                "old_ttl": old,
                "start_at": rfc3339(start),
                "steps": [
                    {"step": "lower", "at": rfc3339(start), "what": f"TTL {old}s -> {ttl}s"},
                    {
                        "step": "switch",
                        "at": rfc3339(start + old),
                        "what": f"{active or '?'} -> {target} (TTL {ttl}s), pinned, verified",
                    },
                    {
                        "step": "restore",
                        "at": rfc3339(start + old + ttl),
                        "what": f"TTL {ttl}s -> configured TTL, once verified",
                    },
                ],
                "plan": [change_json(c) for c in plan.changes] if plan else [],
                "violations": [violation_json(v) for v in violations],
            }
            if rt.current is None:
                raise CommandError(
                    "unreadable", f"cannot read current records: {rt.read_error}", 503, **body
                )
            if violations:
                rules_named = ", ".join(v.rule for v in violations)
                text = "; ".join(v.message for v in violations)
                raise CommandError("refused", f"refused by {rules_named}: {text}", 409, **body)
            if dry_run:
                return {**body, "result": "dry-run"}
            sw = rules.new(target, reason, actor, ttl, now, at)
            rt.state = replace(rt.state, switchover=sw)
            await self.ctx.save_intents()
            await self._journal(rt, sw, STEP_SCHEDULED, f"switchover to {target}: {reason}", now)
        self.ctx.wake()
        return {**body, "result": "scheduled", "switchover": switchover_json(sw)}

    async def _journal(
        self, rt: ServiceRuntime, sw: Switchover, step: str, reason: str, now: float, **extra: Any
    ) -> None:
        self.ctx.journal.enqueue(
            rt.name,
            "switchover",
            Trigger.MANUAL,
            reason,
            now,
            step=step,
            to=sw.target,
            actor=sw.actor,
            ttl=sw.ttl,
            **extra,
        )
        log.warning("%s: switchover to %s: %s (%s)", rt.name, sw.target, step, reason)

    def tick(self, rt: ServiceRuntime, now: float) -> None:
        """Under the lock, each cycle: start the step that is due (the leader only)."""
        sw = rt.state.switchover
        if sw is None or not self.ctx.coord.is_leader() or self.ctx.dry_run:
            return
        running = self._running.get(rt.name)
        if running is not None and not running.done():
            return
        if rt.inflight is not None or rt.current is None or not rules.due(sw, now):
            return
        if rt.published.kind == "unknown":
            return  # the records cannot be read: wait (never restore blindly)
        if sw.step == STEP_SCHEDULED:
            self._lower(rt, sw, now)
        elif sw.step == STEP_LOWERED:
            self._switch(rt, sw, now)
        elif sw.step == STEP_SWITCHED and rt.unverified and now < sw.next_at + sw.old_ttl:
            return  # the new answer is not verified yet: give it up to the old TTL more
        else:
            self._restore(rt, sw, now)

    def _set(self, rt: ServiceRuntime, sw: Switchover | None) -> None:
        rt.state = replace(rt.state, switchover=sw)
        self.ctx.save_intents_soon(rt.name)

    def _abort(self, rt: ServiceRuntime, sw: Switchover, why: str, now: float) -> None:
        """Nothing switched: restore the TTL (a no-op when it was never lowered)."""
        self._set(rt, rules.to_restore(sw, now))
        self.ctx.journal.enqueue(
            rt.name,
            "switchover",
            Trigger.MANUAL,
            why,
            now,
            step="aborted",
            to=sw.target,
            actor=sw.actor,
            result="error",
        )
        log.error("%s: switchover to %s aborted: %s", rt.name, sw.target, why)

    def _target_up(self, rt: ServiceRuntime, sw: Switchover, now: float) -> str | None:
        th = self._health(rt, now).get(sw.target)
        if th is None or th.health.value != "up" or rt.config.target(sw.target) is None:
            state = th.health.name if th is not None else "UNKNOWN"
            return f"target-not-up: {sw.target} is {state}" + (f" ({th.reason})" if th else "")
        return None

    def _lower(self, rt: ServiceRuntime, sw: Switchover, now: float) -> None:
        pub = rt.published
        why = self._target_up(rt, sw, now)
        if why is None and (pub.kind != "target" or pub.missing or pub.target is None):
            why = f"the records do not serve a target ({pub.detail or pub.kind})"
        if why is None and pub.target == sw.target:
            why = f"{sw.target} is already served"
        if why is not None:
            self._abort(rt, sw, why, now)
            return
        assert pub.target is not None and rt.current is not None
        old = rules.longest_ttl(rt.config, rt.current)
        kept = served_values(rt.config, pub.target, self.vantage.members(rt), rt.current)
        plan = rules.ttl_plan(rt.config, pub.target, rt.current, sw.ttl, sw.reason, kept)
        origin = pub.target
        reason = f"switchover to {sw.target}: lowering the TTL to {sw.ttl}s (from {old}s)"

        def ok(s: Switchover, t: float) -> Switchover:
            return rules.lowered(s, t, origin, old)

        self._change(rt, plan, core.Action.PUBLISH, reason, now, STEP_LOWERED, ok)

    def _switch(self, rt: ServiceRuntime, sw: Switchover, now: float) -> None:
        assert rt.current is not None
        why = self._target_up(rt, sw, now)
        members = self.vantage.members(rt)
        values = pool_values(rt.config, sw.target, members)  # a pool: its UP values
        plan = rules.ttl_plan(rt.config, sw.target, rt.current, sw.ttl, sw.reason, values)
        if why is None:
            health = self._health(rt, now)
            refused = refusal(check_plan(plan, rt.config, health, rt.current), False)
            why = refused.message() if refused else None
        if why is not None:
            self._abort(rt, sw, why, now)
            return
        rt.state = core.pin(
            rt.state, core.Pin(sw.target, f"switchover: {sw.reason}", sw.actor, now)
        )
        self.ctx.save_intents_soon(rt.name)
        self.ctx.journal.enqueue(
            rt.name,
            "pin",
            Trigger.MANUAL,
            f"switchover: {sw.reason}",
            now,
            to=sw.target,
            actor=sw.actor,
            force=False,
        )
        reason = f"switchover: {sw.reason} -> switching to {sw.target} (TTL {sw.ttl}s)"
        self._change(rt, plan, core.Action.SWITCH, reason, now, STEP_SWITCHED, rules.switched)

    def _restore(self, rt: ServiceRuntime, sw: Switchover, now: float) -> None:
        pub = rt.published
        assert rt.current is not None
        if pub.kind != "target" or pub.target is None or pub.missing:
            self._done(
                rt,
                sw,
                f"TTL not restored: the records do not serve a target ({pub.detail or pub.kind})",
                now,
                "error",
            )
            return
        kept = served_values(rt.config, pub.target, self.vantage.members(rt), rt.current)
        plan = build_plan(rt.config, pub.target, rt.current, Trigger.MANUAL, sw.reason, kept)
        reason = f"switchover to {sw.target}: restoring the configured TTL"

        def retry(s: Switchover, t: float) -> Switchover:
            return replace(s, step=STEP_RESTORE, next_at=t + RESTORE_RETRY)

        self._change(rt, plan, core.Action.PUBLISH, reason, now, "restored", None, retry)

    def _done(self, rt: ServiceRuntime, sw: Switchover, why: str, now: float, result: str) -> None:
        self._set(rt, None)
        self.ctx.journal.enqueue(
            rt.name,
            "switchover",
            Trigger.MANUAL,
            why,
            now,
            step="done",
            to=sw.target,
            actor=sw.actor,
            result=result,
        )
        log.warning("%s: switchover to %s done: %s", rt.name, sw.target, why)

    def _change(
        self,
        rt: ServiceRuntime,
        plan: Plan,
        action: core.Action,
        reason: str,
        now: float,
        step: str,
        ok: Step | None,
        failed: Step = rules.to_restore,
    ) -> None:
        """Submit `plan` through the normal writers (the caller holds the lock), then record the
        step: `ok` once accepted and verified (None: the switchover is done), else `failed`."""
        sw = rt.state.switchover
        assert sw is not None
        if not plan.changes:
            self._advance(rt, step, ok, reason + " (already served)", now)
            return
        decision = core.Decision(action, plan.target, Trigger.MANUAL, reason, rt.state)
        task = self.switcher.switch(rt, decision, plan, now)
        self._running[rt.name] = asyncio.create_task(
            self._follow(rt, task, step, ok, failed, reason), name=f"switchover-{rt.name}"
        )

    def _advance(
        self, rt: ServiceRuntime, step: str, ok: Step | None, why: str, now: float
    ) -> None:
        sw = rt.state.switchover
        assert sw is not None
        if ok is None:
            self._done(rt, sw, why, now, "ok")
            return
        nxt = ok(sw, now)
        self._set(rt, nxt)
        extra = {"next_at": rfc3339(nxt.next_at)} if nxt is not None else {}
        self.ctx.journal.enqueue(
            rt.name,
            "switchover",
            Trigger.MANUAL,
            why,
            now,
            step=step,
            to=sw.target,
            actor=sw.actor,
            ttl=sw.ttl,
            result="ok",
            **extra,
        )

    async def _follow(
        self,
        rt: ServiceRuntime,
        task: asyncio.Task[dict[str, Any]],
        step: str,
        ok: Step | None,
        failed: Step,
        reason: str,
    ) -> None:
        try:
            outcome = await with_confirmation(await asyncio.shield(task))
        except Exception as exc:  # the change task failed: restore (never leave the short TTL)
            outcome = {"result": "error", "reason": f"{type(exc).__name__}: {exc}"}
        async with self.ctx.lock:
            now = self.ctx.clock()
            sw = rt.state.switchover
            if sw is None or not self.ctx.coord.is_leader():
                return  # cancelled, or a new leader carries the step out again
            good = outcome.get("result") == "ok" and outcome.get("verified") is not False
            if good:
                self._advance(rt, step, ok, reason, now)
            else:
                why = (
                    f"{reason}: {outcome.get('result')} ({outcome.get('reason') or 'not verified'})"
                )
                nxt = failed(sw, now)
                self._set(rt, nxt)
                self.ctx.journal.enqueue(
                    rt.name,
                    "switchover",
                    Trigger.MANUAL,
                    why,
                    now,
                    step=f"{step}-failed",
                    to=sw.target,
                    actor=sw.actor,
                    result="error",
                )
                log.error("%s: %s", rt.name, why)
        await self.ctx.journal.sync()
        self.ctx.wake()

    async def cancel(self, service: str, actor: str) -> dict[str, Any]:
        """End the switchover: go to `restore` at once (nothing to do when the TTL was never
        lowered). A switch already made stays, pinned (`failover release` ends the pin)."""
        rt = self.ctx.runtime(service)
        async with self.ctx.lock:
            sw = rt.state.switchover
            if sw is None:
                raise CommandError("not_running", f"{service} has no switchover in progress", 409)
            now = self.ctx.clock()
            if sw.step != STEP_RESTORE:
                rt.state = replace(rt.state, switchover=rules.to_restore(sw, now))
            await self.ctx.save_intents()
            await self.ctx.journal.write(
                service, "switchover", Trigger.MANUAL, f"cancelled by {actor}", now,
                step="cancelled", to=sw.target, actor=actor,
            )  # fmt: skip
        self.ctx.wake()
        return {"result": "cancelled", "service": service, "target": sw.target, "step": sw.step}

    async def stop(self) -> None:
        tasks = [t for t in self._running.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
