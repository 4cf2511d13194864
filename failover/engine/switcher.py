"""Making a change: submit a plan to every provider, record the outcome, confirm, retry.

A change runs as a task outside the decision lock (a hung provider delays only the services it
serves); it takes the lock only to record what happened. Every transition of the service goes
through its runtime (`runtime.py`), so the phase always says where the change stands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from failover import heap
from failover.apply import STALE_LEADER, submit_plan
from failover.core import decide as core
from failover.core.plan import Plan
from failover.engine.context import Context
from failover.engine.recovery import INTENT, new_intent_id
from failover.engine.verifier import Rechecker
from failover.logs import fields
from failover.model import Trigger
from failover.provider_sync import ProviderSync
from failover.runtime import ServiceRuntime
from failover.submission import Confirmation, ProviderOutcome
from failover.views import change_json

log = logging.getLogger("failover.engine")

CONFIRM_KEY = "_confirming"
Outcomes = list[tuple[ProviderOutcome, asyncio.Future[Confirmation]]]


async def with_confirmation(outcome: dict[str, Any]) -> dict[str, Any]:
    """A switch outcome without its internal keys, plus its verification once known."""
    confirming = outcome.get(CONFIRM_KEY)
    public = {k: v for k, v in outcome.items() if k != CONFIRM_KEY}
    if isinstance(confirming, asyncio.Task) and public.get("result") in ("ok", "partial"):
        public.update(await asyncio.shield(confirming))
    return public


def merge_switch(current: core.ServiceState, decided: core.ServiceState) -> core.ServiceState:
    """Keep what a switch changed (flap counters) on top of intents set while it was in flight."""
    return core.ServiceState(
        mode=current.mode,
        pin=current.pin,
        blocked=current.blocked or decided.blocked,
        auto_switches=decided.auto_switches,
        last_switch_at=decided.last_switch_at,
        last_auto_switch_at=decided.last_auto_switch_at,
        drains=current.drains,
        switchover=current.switchover,
    )


def _kind(decision: core.Decision) -> str:
    """The journal kind of a decided change: publish, switch, pool (a pool's subset) or
    fallback (every target DOWN)."""
    if decision.action in (core.Action.PUBLISH, core.Action.POOL, core.Action.FALLBACK):
        return decision.action.value
    return "switch"


def _refusals(outcomes: Outcomes) -> dict[str, str]:
    """The providers that did not take their part, with why (they lag until a retry lands)."""
    return {o.provider: o.error for o, _ in outcomes if not o.ok}


def _errors(outcomes: list[ProviderOutcome]) -> str:
    return "; ".join(f"{o.provider}: {o.error}" for o in outcomes if not o.ok)


class Switcher:
    def __init__(self, ctx: Context, burst: heap.BurstHold) -> None:
        self.ctx = ctx
        self.rechecker = Rechecker(ctx)
        self.burst = burst
        self.in_flight: set[asyncio.Task[dict[str, Any]]] = set()  # changes and verifications

    def _tracked(self, task: asyncio.Task[dict[str, Any]]) -> asyncio.Task[dict[str, Any]]:
        """Count the task in `in_flight` until it ends; a burst of them holds the collector
        from the change that makes it one (`heap.BurstHold`)."""
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)
        self.burst.update(len(self.in_flight), time.monotonic())
        return task

    def switch(
        self, rt: ServiceRuntime, decision: core.Decision, plan: Plan, now: float
    ) -> asyncio.Task[dict[str, Any]]:
        """Start the change (the caller holds the lock); returns its task (`rt.inflight`)."""
        frm = rt.published.target
        token = self.ctx.coord.fencing_token()  # the leadership this plan is built under
        started: list[asyncio.Task[dict[str, Any]]] = []

        def start(restore: tuple[str | None, str | None]) -> asyncio.Task[dict[str, Any]]:
            switch = self._switch(rt, decision, plan, now, frm, restore, token)
            started.append(self._tracked(asyncio.create_task(switch)))
            return started[0]

        rt.begin_change(plan.target, frm, start)
        return started[0]

    def retry(self, rt: ServiceRuntime, plan: Plan, now: float) -> None:
        """Complete a change at the providers that did not take it yet."""
        token = self.ctx.coord.fencing_token()
        rt.begin_change(
            plan.target,
            rt.pending_from,
            lambda _: self._tracked(asyncio.create_task(self._retry(rt, plan, now, token))),
        )

    async def _switch(
        self,
        rt: ServiceRuntime,
        decision: core.Decision,
        plan: Plan,
        now: float,
        from_target: str | None,
        restore: tuple[str | None, str | None],
        token: int,
    ) -> dict[str, Any]:
        """Submit the plan to every provider at once; record the outcome; confirm after.

        While providers answer, the service counts as changing to the new target (not drift),
        and each provider's records show the new values as soon as that provider accepts."""
        try:
            action = _kind(decision)
            intent = await self._write_ahead(
                rt, action, decision.trigger, decision.reason, now, from_target, plan
            )
            outcomes = await self._submit(rt, plan, token)
            result = await self.ctx.locked(
                lambda: self._record_switch(
                    rt, decision, plan, now, outcomes, from_target, restore, intent
                )
            )
            await self.ctx.journal.sync()  # on disk before the switch counts as done
            return result
        finally:
            rt.change_ended()
            self.ctx.wake_service(rt.name)  # what comes next (a retry) concerns it alone

    async def _write_ahead(
        self,
        rt: ServiceRuntime,
        action: str,
        trigger: Trigger,
        reason: str,
        now: float,
        frm: str | None,
        plan: Plan,
    ) -> str:
        """Make the intent durable before any provider call (`recovery.py` reads it back after
        a crash). The journal never raises: when the disk refuses the intent, it waits in
        memory behind the `journal_unwritable` alarm and the change goes out (availability)."""
        intent = new_intent_id()
        await self.ctx.journal.write(
            rt.name,
            INTENT,
            trigger,
            reason,
            now,
            frm=frm,
            to=plan.target,
            action=action,
            intent=intent,
            changes=[change_json(c) for c in plan.changes],
        )
        return intent

    async def _submit(self, rt: ServiceRuntime, plan: Plan, token: int) -> Outcomes:
        subs = submit_plan(self.ctx.queues, plan.changes, token)

        def progress(future: asyncio.Future[ProviderOutcome]) -> None:
            if not future.cancelled() and future.exception() is None and future.result().ok:
                rt.assume_applied(plan.changes, {future.result().provider}, self.ctx.clock())
                rt.classify()

        for sub in subs:
            sub.accepted.add_done_callback(progress)
        accepted = await asyncio.gather(*(sub.accepted for sub in subs))
        return [(outcome, sub.confirmed) for outcome, sub in zip(accepted, subs, strict=True)]

    def _record_switch(
        self,
        rt: ServiceRuntime,
        decision: core.Decision,
        plan: Plan,
        now: float,
        outcomes: Outcomes,
        from_target: str | None,
        restore: tuple[str | None, str | None],
        intent: str,
    ) -> dict[str, Any]:
        ok = [o for o, _ in outcomes if o.ok]
        result = "ok" if len(ok) == len(outcomes) else ("partial" if ok else "error")
        stale = not ok and any(o.kind == STALE_LEADER for o, _ in outcomes)
        if stale:
            result = "refused"  # fencing: not sent to any provider
        rt.assume_applied(plan.changes, {o.provider for o in ok}, self.ctx.clock())
        rt.providers_refused(plan.changes, _refusals(outcomes), now)
        if ok:
            rt.state = merge_switch(rt.state, decision.state)
            self.ctx.save_intents_soon(rt.name)  # durable before _switch returns (group commit)
            # a pool's other subset, a switchover's TTL change: the same target, not a switch
            if decision.action is not core.Action.POOL and from_target != plan.target:
                self.ctx.metrics.switches.labels(
                    rt.name, from_target or "none", plan.target, decision.trigger.value
                ).inc()
            detected = rt.targets.get(from_target or "")
            if (
                decision.trigger is Trigger.AUTO
                and decision.action is not core.Action.POOL
                and detected
                and detected.failing_since
            ):
                accepted_at = now + min(o.accepted_after or 0.0 for o in ok)
                self.ctx.metrics.detection_to_publish.observe(
                    rt.name, max(0.0, accepted_at - detected.failing_since)
                )
        confirmations = [(o.provider, fut) for o, fut in outcomes if o.ok]
        if result == "ok":
            rt.change_applied(confirming=bool(confirmations))
        else:
            errors = _errors([o for o, _ in outcomes])
            rt.change_failed(errors, now, restore=None if ok else restore, fresh_backoff=bool(ok))
        pin = decision.state.pin
        entry = self.ctx.journal.enqueue(
            rt.name,
            _kind(decision),
            decision.trigger,
            decision.reason,
            now,
            frm=from_target,
            to=plan.target,
            actor=pin.actor if decision.trigger is Trigger.MANUAL and pin else None,
            result=result,
            changes=[change_json(c) for c in plan.changes],
            providers=[o.as_json() for o, _ in outcomes],
            intent=intent,
        )
        if ok:
            rt.last_switch = entry
        log.warning(
            "%s %s -> %s (%s): %s",
            rt.name,
            from_target or "(none)",
            plan.target,
            result,
            decision.reason,
            extra=fields(rt.name, plan.target),
        )
        if confirmations:
            rt.verification_started(self.confirm(rt, plan, confirmations))
        return {
            "result": result,
            "providers": [o.as_json() for o, _ in outcomes],
            "reason": decision.reason,
            CONFIRM_KEY: rt.confirming,  # the caller that waits for verification (internal)
        }

    def confirm(
        self,
        rt: ServiceRuntime,
        plan: Plan,
        confirmations: list[tuple[str, asyncio.Future[Confirmation]]],
    ) -> asyncio.Task[dict[str, Any]]:
        """Start confirming the providers that accepted; each verdict concerns the change each
        provider holds now (`rt.sync`), so a newer change makes it history, not state."""
        mine = {p: rt.sync[p] for p, _ in confirmations if p in rt.sync}
        return self._tracked(asyncio.create_task(self._confirm(rt, plan, confirmations, mine)))

    async def _confirm(
        self,
        rt: ServiceRuntime,
        plan: Plan,
        confirmations: list[tuple[str, asyncio.Future[Confirmation]]],
        mine: dict[str, ProviderSync],
    ) -> dict[str, Any]:
        """Wait for in-sync and verification per provider; journal and alarm the outcome. A
        change that does not verify is re-checked afterwards until it does (`verifier.py`)."""
        results = await asyncio.gather(*(fut for _, fut in confirmations))
        by_provider = {p: c for (p, _), c in zip(confirmations, results, strict=True)}
        failed = [
            f"{p}: {c.verify_reason}"
            for p, c in by_provider.items()
            if not c.in_sync or c.verified is False
        ]
        body = [{"provider": p, **c.as_json()} for p, c in by_provider.items()]
        if failed:
            reason = "; ".join(failed)
        elif all(c.verified is None for c in results):
            reason = "in sync at the provider (verification disabled)"
        else:
            reason = "served by every authoritative server"
        task = asyncio.current_task()

        def record() -> None:
            verdicts = {p: (mine[p], c) for p, c in by_provider.items() if p in mine}
            current = rt.verification_ended(task, verdicts, self.ctx.clock())
            if confirmations and not current:  # superseded everywhere by a newer change
                return
            if failed:
                self.rechecker.ensure(rt)
                # its provider alarms and rechecks: decided again. A verified change leaves
                # the decision as it was (it was decided when the change was accepted):
                # 10,000 wakes at the end of a mass failover only delayed its last records
                self.ctx.wake_service(rt.name)
            self.ctx.journal.enqueue(
                rt.name,
                "verify",
                Trigger.AUTO,
                reason,
                self.ctx.clock(),
                to=plan.target,
                result="failed" if failed else "ok",
                providers=body,
            )
            if failed:
                log.error(
                    "%s: change to %s NOT verified: %s",
                    rt.name,
                    plan.target,
                    reason,
                    extra=fields(rt.name, plan.target),
                )

        await self.ctx.locked(record)  # one turn of the lock for a whole wave of verdicts
        await self.ctx.journal.sync()
        return {"verified": not failed, "verification": body}

    async def _retry(
        self, rt: ServiceRuntime, plan: Plan, now: float, token: int
    ) -> dict[str, Any]:
        """Re-apply the change at the providers that lag: they refused it, or accepted it and
        kept the old answer (the runtime's backoff says when). One journal line per attempt,
        counting how often each provider ignored it; what is accepted is confirmed again."""
        try:
            reason = f"completing the change to {rt.pending} at the lagging providers"
            intent = await self._write_ahead(
                rt, "retry", Trigger.AUTO, reason, now, rt.pending_from, plan
            )
            outcomes = await self._submit(rt, plan, token)
            async with self.ctx.lock:
                failed = [o for o, _ in outcomes if not o.ok]
                accepted = {o.provider for o, _ in outcomes if o.ok}
                rt.assume_applied(plan.changes, accepted, self.ctx.clock())
                rt.providers_refused(plan.changes, _refusals(outcomes), now)
                reason = f"completing the change to {rt.pending} at the lagging providers"
                ignored = [
                    f"{p} accepted and ignored it {rt.sync[p].ignored} time(s) in a row"
                    for p in sorted(accepted)
                    if p in rt.sync and rt.sync[p].ignored
                ]
                if ignored:
                    reason += f" ({'; '.join(ignored)})"
                await self.ctx.journal.write(
                    rt.name,
                    "retry",
                    Trigger.AUTO,
                    reason,
                    now,
                    frm=rt.pending_from,
                    to=rt.pending,
                    result="ok" if not failed else "error",
                    providers=[o.as_json() for o, _ in outcomes],
                    intent=intent,
                )
                confirmations = [(o.provider, fut) for o, fut in outcomes if o.ok]
                if failed:
                    rt.change_failed(_errors(failed), now)
                else:
                    rt.change_applied(confirming=bool(confirmations))
                if confirmations:
                    rt.verification_started(self.confirm(rt, plan, confirmations))
                return {"result": "ok" if not failed else "error"}
        finally:
            rt.change_ended()
            self.ctx.wake_service(rt.name)  # what comes next (a retry) concerns it alone
