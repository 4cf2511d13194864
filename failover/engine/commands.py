"""Operator commands: record the intent, journal it, then let the normal decision act on it.

Commands never write DNS themselves (one writer, always): `promote` stores a pin and asks the
actor to decide the service now, then waits for what that decision does, verification included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from failover.config.provider_types import call_budget
from failover.core import decide as core
from failover.core import drain as drain_rules
from failover.core.plan import build_plan, check_plan, refusal
from failover.core.pool import pool_values
from failover.engine.context import CommandError, Context
from failover.engine.reader import RecordReader
from failover.engine.switcher import Switcher, with_confirmation
from failover.engine.vantage import Vantage
from failover.model import Trigger
from failover.runtime import HELD, ServiceRuntime
from failover.views import change_json, violation_json

FOLLOWER_WAIT = 30.0  # seconds a follower waits for the leader to publish a pin it received
Decide = Callable[[ServiceRuntime, float], Awaitable[None]]

TRANSFORMS: dict[str, Callable[[core.ServiceState], core.ServiceState]] = {
    "release": core.release,
    "pause": core.pause,
    "resume": core.resume,
    "ack": core.acknowledge,
}


class Commands:
    def __init__(
        self,
        ctx: Context,
        reader: RecordReader,
        switcher: Switcher,
        decide: Decide,
        vantage: Vantage,
    ) -> None:
        self.ctx = ctx
        self.reader = reader
        self.switcher = switcher
        self.decide = decide
        # the health and pool values commands judge by: the quorum's with several instances,
        # as the decisions' (judged by this instance's probes alone, a promote's plan and dry
        # run showed another pool subset than the decision then published)
        self.vantage = vantage

    async def act_now(self, rt: ServiceRuntime) -> dict[str, Any]:
        """Decide one service now and wait for what it does, verification included."""
        mine = False
        while True:
            async with self.ctx.lock:
                task = rt.inflight
                if task is None:
                    await self.decide(rt, self.ctx.clock())
                    task, mine = rt.inflight, True
                    if task is None:
                        reason = rt.decision.reason if rt.decision else ""
                        detail = rt.detail if rt.phase in HELD else None
                        return {"result": "noop", "reason": reason, "detail": detail}
            outcome = await asyncio.shield(task)
            if mine or outcome.get("result") in ("error", "partial"):
                return await with_confirmation(outcome)

    async def promote(
        self, service: str, target: str, reason: str, actor: str, *, force: bool, dry_run: bool
    ) -> dict[str, Any]:
        """Pin `service` to `target` and apply it now. Refusals name the safety rule."""
        rt = self.ctx.runtime(service)
        if rt.config.target(target) is None:
            names = ", ".join(t.name for t in rt.config.targets)
            raise CommandError(
                "unknown_target", f"{service} has no target {target!r} ({names})", 404
            )
        if rt.current is None and rt.inflight is None:  # read outside the lock, bounded
            provider_cfgs = [self.ctx.config.providers[r.provider] for r in rt.config.records]
            longest = max(map(call_budget, provider_cfgs), default=0.0)
            await self.reader.read_now(rt, longest)
        async with self.ctx.lock:
            values = pool_values(rt.config, target, self.vantage.members(rt))  # its UP values
            plan = build_plan(rt.config, target, rt.current or {}, Trigger.MANUAL, reason, values)
            health = drain_rules.effective_health(  # a drained target is not UP
                self.vantage.health(rt), drain_rules.drained(rt.config, rt.state, self.ctx.clock())
            )
            violations = check_plan(plan, rt.config, health, rt.current or {})
            body: dict[str, Any] = {
                "service": service,
                "target": target,
                "plan": [change_json(c) for c in plan.changes],
                "violations": [violation_json(v) for v in violations],
                "read_error": rt.read_error or None,
            }
            if rt.current is None:
                raise CommandError(
                    "unreadable", f"cannot read current records: {rt.read_error}", 503, **body
                )
            refused = refusal(violations, force)
            if refused:
                raise CommandError("refused", refused.for_operator(), 409, **body)
            if dry_run:
                return {**body, "result": "dry-run"}
            now = self.ctx.clock()
            ours = core.Pin(target, reason, actor, now, force)
            rt.state = core.pin(rt.state, ours)
            rt.retry_now()
            await self.ctx.save_intents()
            await self.ctx.journal.write(
                service, "pin", Trigger.MANUAL, reason, now, to=target, actor=actor, force=force
            )
        if self.ctx.coord.is_leader():
            outcome = {**body, **(await self.act_now(rt))}
        else:
            outcome = {**body, **(await self._leader_applies(rt, target))}
        winner = rt.state.pin
        if winner != ours:  # another command changed the pin before this one was carried out
            who = f"a promote to {winner.target} by {winner.actor}" if winner else "a release"
            raise CommandError(
                "superseded",
                f"{service}: superseded by {who} before this change was verified; "
                f"DNS serves {rt.published.target or 'no target'} (see failover status)",
                409,
                **{**outcome, "winner": winner.target if winner else None},
            )
        return outcome

    async def _leader_applies(self, rt: ServiceRuntime, target: str) -> dict[str, Any]:
        """On a follower: the pin is shared (etcd); wait, reading DNS back ourselves, until
        the leader has published the target, for at most FOLLOWER_WAIT seconds."""
        leader = self.ctx.coord.leader_name() or "no leader"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FOLLOWER_WAIT
        while loop.time() < deadline:
            await self.reader.read_now(rt, max(0.1, deadline - loop.time()))
            if rt.published.target == target:
                return {
                    "result": "ok",
                    "read_back": True,
                    "reason": f"the leader ({leader}) published {target}"
                    " (read back by this instance)",
                }
            await asyncio.sleep(0.5)
        return {
            "result": "pending",
            "reason": f"pinned; the leader ({leader}) has not published {target} after"
            f" {FOLLOWER_WAIT:g}s (see failover status)",
        }

    async def simple(self, service: str | None, verb: str, actor: str) -> dict[str, Any]:
        """release / pause / resume / ack: record the intent, journal it, decide at once."""
        async with self.ctx.lock:
            runtimes = [self.ctx.runtime(service)] if service else list(self.ctx.services.values())
            now = self.ctx.clock()
            for rt in runtimes:
                if verb == "release" and rt.state.pin is None:
                    raise CommandError("not_pinned", f"{rt.name} is not pinned", 409)
                if verb == "ack" and not rt.state.blocked:
                    raise CommandError("not_blocked", f"{rt.name} is not blocked", 409)
            for rt in runtimes:
                rt.state = TRANSFORMS[verb](rt.state)
                rt.retry_now()
            await self.ctx.save_intents()
            for rt in runtimes:
                await self.ctx.journal.write(
                    rt.name, verb, Trigger.MANUAL, f"{verb} by {actor}", now, actor=actor
                )
        results = await asyncio.gather(*(self.act_now(rt) for rt in runtimes))
        return {
            "result": "ok",
            "services": {rt.name: r for rt, r in zip(runtimes, results, strict=True)},
        }

    async def drill_switch(self, rt: ServiceRuntime, target: str, reason: str) -> dict[str, Any]:
        """One switch with trigger `drill` through the normal writers; waits for verification."""
        async with self.ctx.lock:
            if rt.inflight is not None:
                raise CommandError("busy", f"{rt.name} has a change in flight", 409)
            values = pool_values(rt.config, target, self.vantage.members(rt))
            plan = build_plan(rt.config, target, rt.current or {}, Trigger.DRILL, reason, values)
            health = self.vantage.health(rt)
            refused = refusal(check_plan(plan, rt.config, health, rt.current or {}), False)
            if refused:
                return {"result": "refused", "reason": refused.message(), "providers": []}
            if not plan.changes:
                return {"result": "ok", "reason": "already published", "providers": []}
            decision = core.Decision(core.Action.SWITCH, target, Trigger.DRILL, reason, rt.state)
            task = self.switcher.switch(rt, decision, plan, self.ctx.clock())
        return await with_confirmation(await asyncio.shield(task))
