"""One service's decision and its carrying out, each cycle and after a command (under the
engine's lock): the snapshot, `decide_traffic` with the drain rule as its base (pools, the
all-down fallback and drains in one pure decision), then the plan handed to the switcher.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from failover.core import decide as core
from failover.core import drain as drain_rules
from failover.core.fallback import decide_traffic
from failover.core.plan import build_plan, check_plan, refusal
from failover.core.pool import pool_values
from failover.core.split import split_answers
from failover.core.switchover import keep_short_ttl
from failover.engine.alarms import journal_decision_alarms, journal_provider_alarms
from failover.engine.context import Context
from failover.engine.inputs import HealthInputs
from failover.engine.switcher import Switcher, merge_switch
from failover.engine.vantage import Vantage
from failover.model import Mode, Trigger
from failover.runtime import QUIET, ServiceRuntime

log = logging.getLogger("failover.engine")


class Decider:
    def __init__(
        self,
        ctx: Context,
        inputs: HealthInputs,
        vantage: Vantage,
        switcher: Switcher,
        started_at: Callable[[], float],
    ) -> None:
        self.ctx = ctx
        self.inputs = inputs
        self.vantage = vantage
        self.switcher = switcher
        self.started_at = started_at  # when the engine started (the start-up grace)

    async def decide(self, rt: ServiceRuntime, now: float) -> None:
        """Decide one service and start its action (the caller holds the lock). Its journal
        entries and state go to the next group commit: the caller syncs once for every
        service it decided (the engine's cycle, a command), not once per service."""
        rt.quiet_until = float("-inf")  # a decision that fails is made again next sweep
        await self._decide(rt, now)
        rt.quiet_until, rt.quiet_state = quiet_until(rt), rt.state

    async def _decide(self, rt: ServiceRuntime, now: float) -> None:
        ctx = self.ctx
        rt.classify()
        started = self.started_at() if rt.started_at is None else rt.started_at
        snap = core.Snapshot(
            now,
            started,
            self.vantage.health(rt),
            rt.published,
            self.vantage.isolated(),
            self.inputs.judging_since,
            self.inputs.local_fault,
        )
        if self.inputs.single_round:
            snap = replace(snap, started_at=now - rt.config.policy.startup_grace)
        members = self.vantage.members(rt)
        decision = decide_traffic(  # drained targets: unavailable (core/drain.py)
            rt.config,
            rt.state,
            snap,
            members,
            rt.current,
            self.vantage.fallback(rt),
            base=drain_rules.decide,
        )
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
        await journal_decision_alarms(ctx.journal, rt, previous, decision, now)
        rt.observe_split(split_answers(rt.config, rt.current, rt.targets))
        await journal_provider_alarms(ctx.journal, rt, now)
        if not ctx.coord.is_leader():
            return
        if decision.action is core.Action.NONE:
            rt.nothing_wanted()
            if decision.state != rt.state:
                rt.state = decision.state
                ctx.save_intents_soon(rt.name)
                if decision.state.blocked and (previous is None or not previous.state.blocked):
                    ctx.journal.enqueue(rt.name, "block", Trigger.AUTO, decision.reason, now)
            if rt.state.mode is not Mode.PAUSED and rt.retry_due(now):
                assert rt.pending is not None
                plan = build_plan(
                    rt.config,
                    rt.pending,
                    rt.current or {},
                    Trigger.AUTO,
                    "retry",
                    pool_values(rt.config, rt.pending, members),
                )
                plan = keep_short_ttl(plan, rt.state.switchover, rt.current or {})
                if not plan.changes:
                    rt.nothing_left()
                elif not ctx.dry_run:
                    self.switcher.retry(rt, plan, now)
            return
        assert decision.target is not None
        if now < rt.retry_at:
            return
        current = rt.current or {}
        values = decision.values or pool_values(rt.config, decision.target, members)
        plan = build_plan(
            rt.config, decision.target, current, decision.trigger, decision.reason, values
        )
        plan = keep_short_ttl(plan, rt.state.switchover, current)  # a switchover's short TTL
        # judged on the health the decision used (the quorum's with several instances): on
        # this instance's probes alone, the leader's own blip refused the switch the quorum
        # decided, and a service stayed on a dead or drained target
        refused = refusal(check_plan(plan, rt.config, snap.health, current), decision.force)
        if refused:
            message = refused.message()
            if rt.refuse(message):
                ctx.journal.enqueue(
                    rt.name, "refused", decision.trigger, message, now, to=plan.target
                )
            return
        if not plan.changes:
            if rt.pending is not None and rt.pending != plan.target:
                rt.drop_pending()  # the records already serve what is wanted: nothing owed
            rt.nothing_wanted()
            rt.state = merge_switch(rt.state, decision.state)
            ctx.save_intents_soon(rt.name)
            return
        if ctx.dry_run:
            summary = "; ".join(c.describe() for c in plan.changes)
            if rt.hold_dry_run(summary):
                log.warning("dry-run: would apply %s (%s)", summary, decision.reason)
            return
        self.switcher.switch(rt, decision, plan, now)


def quiet_until(rt: ServiceRuntime) -> float:
    """Until when the engine's timer sweeps may skip `rt`: its decision wants nothing and
    stands on time alone until then (`Decision.until`), and nothing else of the service runs
    on a timer. Whatever changes its inputs meanwhile wakes it (`ctx.wake_service`, or a full
    sweep for what concerns every service). Anything in motion (a change, a retry, a drill, a
    drain, a maintenance window, a switchover, a lagging provider) is decided every sweep."""
    decision = rt.decision
    if (
        decision is None
        or decision.action is not core.Action.NONE
        or rt.phase not in QUIET
        or rt.pending is not None
        or rt.current is None
        or rt.drill is not None
        or rt.state.drains
        or rt.state.switchover is not None
        or rt.told
        or any(sync.recheck for sync in rt.sync.values())
        or any(target.maintenance for target in rt.config.targets)
    ):
        return float("-inf")
    return decision.until
