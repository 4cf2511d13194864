"""`failover drain` / `undrain` and the maintenance windows, carried out by the engine.

The rule ("a drained target counts as unavailable") is pure, in `core/drain.py`; here are the
commands that record a drain as an intent (persisted and shared like a pin), journal it and
let the normal decision move the service, verification included; and the per-cycle `tick`
that journals the windows opening and closing and drops the drains whose `--for` elapsed.
"""

from __future__ import annotations

import logging
from typing import Any

from failover.core import drain as rules
from failover.core.ops import Drain
from failover.engine.commands import Commands
from failover.engine.context import CommandError, Context
from failover.logs import fields
from failover.model import Mode, Trigger
from failover.runtime import ServiceRuntime
from failover.timefmt import rfc3339
from failover.views import violation_json

log = logging.getLogger("failover.engine")

RULE_PINNED = "pinned"  # draining the target a pin holds: release the pin first


class Drains:
    def __init__(self, ctx: Context, commands: Commands) -> None:
        self.ctx = ctx
        self.commands = commands
        self._windows: dict[str, set[str]] = {}  # service -> targets in a maintenance window

    def _target(self, rt: ServiceRuntime, target: str) -> None:
        if rt.config.target(target) is None:
            names = ", ".join(t.name for t in rt.config.targets)
            raise CommandError(
                "unknown_target", f"{rt.name} has no target {target!r} ({names})", 404
            )

    async def drain(
        self,
        service: str,
        target: str,
        reason: str,
        actor: str,
        *,
        seconds: float | None,
        force: bool,
    ) -> dict[str, Any]:
        """Record the drain, then decide now: a drained active target is switched away from
        and the answer waits for that switch's verification. Refused (409, rule named) when it
        would leave no UP target (`last-up`) or when a pin holds the target (`pinned`)."""
        rt = self.ctx.runtime(service)
        self._target(rt, target)
        async with self.ctx.lock:
            now = self.ctx.clock()
            pin = rt.state.pin
            if rt.state.mode is Mode.PINNED and pin is not None and pin.target == target:
                raise CommandError(
                    "refused",
                    f"refused by {RULE_PINNED}: {service} is pinned to {target} by {pin.actor}; "
                    f"release the pin first (failover release {service})",
                    409,
                    violations=[{"rule": RULE_PINNED, "message": f"pinned to {target}"}],
                )
            drains = rules.drained(rt.config, rt.state, now)
            health = self.commands.vantage.health(rt)  # the quorum's, as the decisions'
            violation = rules.last_up(rt.config, health, drains, target)
            if violation is not None and not force:
                raise CommandError(
                    "refused",
                    f"refused by {violation.rule}: {violation.message}",
                    409,
                    service=service,
                    target=target,
                    violations=[violation_json(violation)],
                )
            until = now + seconds if seconds else None
            rt.state = rules.add_drain(rt.state, Drain(target, reason, actor, now, until))
            rt.retry_now()
            await self.ctx.save_intents()
            await self.ctx.journal.write(
                service,
                "drain",
                Trigger.MANUAL,
                reason,
                now,
                target=target,
                actor=actor,
                until=rfc3339(until) if until else None,
                force=force,
            )
            log.warning(
                "%s: %s drained by %s: %s",
                service,
                target,
                actor,
                reason,
                extra=fields(service, target),
            )
        body: dict[str, Any] = {
            "service": service,
            "target": target,
            "until": rfc3339(until) if until else None,
        }
        if rt.published.target != target:
            return {**body, "result": "ok", "reason": f"{target} drained; it is not active"}
        if not self.ctx.coord.is_leader():
            leader = self.ctx.coord.leader_name() or "no leader"
            return {
                **body,
                "result": "pending",
                "reason": f"{target} drained; the leader ({leader}) switches away from it",
            }
        return {**body, **(await self.commands.act_now(rt))}

    async def undrain(self, service: str, target: str, actor: str) -> dict[str, Any]:
        """End a manual drain; the decision then treats the target by its health again (a
        failback, if the policy says so, follows the usual rules)."""
        rt = self.ctx.runtime(service)
        self._target(rt, target)
        async with self.ctx.lock:
            now = self.ctx.clock()
            if not any(d.target == target for d in rt.state.drains):
                window = rules.drained(rt.config, rt.state, now).get(target)
                why = (
                    f"; it is in a maintenance window until {rfc3339(window.until or now)} "
                    "(edit maintenance: in the configuration to end it)"
                    if window is not None
                    else ""
                )
                raise CommandError("not_drained", f"{target} is not drained{why}", 409)
            rt.state = rules.remove_drain(rt.state, target)
            rt.retry_now()
            await self.ctx.save_intents()
            await self.ctx.journal.write(
                service,
                "undrain",
                Trigger.MANUAL,
                f"undrain by {actor}",
                now,
                target=target,
                actor=actor,
            )
        outcome = await self.commands.act_now(rt) if self.ctx.coord.is_leader() else {}
        return {"service": service, "target": target, "result": "ok", **outcome}

    async def tick(self, rt: ServiceRuntime, now: float) -> None:
        """Under the lock, each cycle: expire `--for` drains and journal maintenance windows
        opening and closing (the leader does both; every instance tracks the windows, so a
        new leader does not journal again the windows it found open)."""
        if self.ctx.coord.is_leader():
            state, gone = rules.expire(rt.state, now)
            if gone:
                rt.state = state
                self.ctx.save_intents_soon(rt.name)
                for d in gone:
                    self.ctx.journal.enqueue(
                        rt.name,
                        "undrain",
                        Trigger.AUTO,
                        f"the drain of {d.target} expired",
                        now,
                        target=d.target,
                        actor=d.actor,
                    )
        if not any(t.maintenance for t in rt.config.targets):
            return
        open_now = {t.name for t in rt.config.targets if rules.in_maintenance(t, now)}
        before = self._windows.get(rt.name, set())
        if open_now == before:
            return
        self._windows[rt.name] = open_now
        if not self.ctx.coord.is_leader():
            return  # one entry per window, from the leader (the history is shared)
        for name in sorted(open_now - before):
            found = rules.in_maintenance(rt.config.target(name), now)
            why = found[0].reason if found else "maintenance window"
            self.ctx.journal.enqueue(
                rt.name,
                "drain",
                Trigger.AUTO,
                why,
                now,
                target=name,
                actor="maintenance",
            )
        for name in sorted(before - open_now):
            self.ctx.journal.enqueue(
                rt.name,
                "undrain",
                Trigger.AUTO,
                "maintenance window closed",
                now,
                target=name,
                actor="maintenance",
            )
