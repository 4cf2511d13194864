"""Several vantage points: publish this instance's view, decide on the quorum of live views.

Every instance probes every target and publishes what it sees under its own lease; the leader
counts the fresh views (its own judgement included, always current) and decides on a target's
health only when a quorum agrees (`core.health.quorum_health`). The same goes for each pool
value (`target@value`) and for a service's fallback (`(fallback)`, published when it has
probes). Alone, nothing changes: the standalone coordinator has no views and the instance's
own health is the decision's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from failover.coord.base import Health as ViewHealth
from failover.coord.base import View
from failover.core.health import TargetHealth, Vote, quorum_health, quorum_size
from failover.core.pool import member_key, member_views, pool_health
from failover.core.values import FALLBACK
from failover.engine.context import Context
from failover.engine.inputs import HealthInputs
from failover.model import Health
from failover.runtime import ServiceRuntime

log = logging.getLogger("failover.engine")

VOTE_TEXT: dict[Health, ViewHealth] = {
    Health.UP: "up",
    Health.DOWN: "down",
    Health.UNKNOWN: "unknown",
}
PUBLISH_EVERY = 1.0  # seconds between two publications of an unchanged view (at most)


class Vantage:
    def __init__(self, ctx: Context, inputs: HealthInputs) -> None:
        self.ctx = ctx
        self.inputs = inputs
        self._published: tuple[bool, dict[str, dict[str, ViewHealth]]] | None = None
        self._last = float("-inf")

    @property
    def coordinated(self) -> bool:
        return self.ctx.config.coordination is not None

    def own_view(self) -> View:
        """Each target's health, and each pool value's under `target@value` (core/pool.py), so
        the leader decides a pool's published subset on the quorum too."""
        targets = {
            name: {t: VOTE_TEXT[h.health] for t, h in rt.targets.items()}
            | {k: VOTE_TEXT[h] for k, h in member_views(rt.config, rt.members).items()}
            | (
                {}
                if rt.fallback_health is None
                else {FALLBACK: VOTE_TEXT[rt.fallback_health.health]}
            )
            for name, rt in self.ctx.services.items()
        }
        instance = self.ctx.config.instance
        return View(instance.name, instance.location, self.inputs.isolated, time.time(), targets)

    async def publish_forever(self) -> None:
        """Publish when the view changes (health or isolation), and at least every second so
        the leader sees it fresh; a failed publication is retried at the next turn."""
        while True:
            try:
                async with asyncio.timeout(PUBLISH_EVERY):
                    await self.ctx.health_changed.wait()
            except TimeoutError:
                pass
            self.ctx.health_changed.clear()
            view = self.own_view()
            key = (view.isolated, {s: dict(t) for s, t in view.targets.items()})
            if key == self._published and time.monotonic() - self._last < PUBLISH_EVERY:
                continue
            try:
                await self.ctx.coord.publish_view(view)
            except Exception as exc:  # etcd down: the coordinator reports it in its condition
                log.debug("view not published: %s", exc)
                continue
            self._published, self._last = key, time.monotonic()

    def others(self) -> Mapping[str, View]:
        me = self.ctx.config.instance.name
        return {name: v for name, v in self.ctx.coord.views().items() if name != me}

    def health(self, rt: ServiceRuntime) -> dict[str, TargetHealth]:
        """The health the decision uses for each of `rt`'s targets."""
        coordination = self.ctx.config.coordination
        if coordination is None:
            return dict(rt.targets)
        others = self.others()
        quorum = quorum_size(len(others) + 1, coordination.quorum)
        decided = {
            target: quorum_health(own, self._ballot(others, rt.name, target, own.health), quorum)
            for target, own in rt.targets.items()
        }
        pools = [t for t in rt.config.targets if t.pool is not None and t.name in decided]
        if pools:  # a pool's health follows from its values' quorums
            members = self.members(rt)
            for t in pools:
                own = rt.targets.get(t.name)
                decided[t.name] = pool_health(t, members[t.name], own, self.ctx.clock())
        return decided

    def fallback(self, rt: ServiceRuntime) -> TargetHealth | None:
        """The fallback's health the decision uses (None: it has no probes). Alone, this
        instance's; with several, the quorum of the views that judge it, so one vantage point's
        blip neither holds the fallback back nor publishes it alone. Views without a fallback
        entry (an instance of an older version, during an upgrade) do not count: when no other
        view judges it, this instance's judgement stands, as it did before views carried it."""
        own = rt.fallback_health
        coordination = self.ctx.config.coordination
        if own is None or coordination is None:
            return own
        votes = self._ballot(self.others(), rt.name, FALLBACK, own.health)
        if len(votes) == 1:
            return own
        return quorum_health(own, votes, quorum_size(len(votes), coordination.quorum))

    def members(self, rt: ServiceRuntime) -> dict[str, dict[str, TargetHealth]]:
        """The health each pool value is decided on: alone, this instance's; with several
        instances, the quorum of the live views (`target@value` entries)."""
        coordination = self.ctx.config.coordination
        if coordination is None:
            return {t: dict(m) for t, m in rt.members.items()}
        others = self.others()
        quorum = quorum_size(len(others) + 1, coordination.quorum)
        decided: dict[str, dict[str, TargetHealth]] = {}
        for target, values in rt.members.items():
            decided[target] = {}
            for value, own in values.items():
                votes = self._ballot(others, rt.name, member_key(target, value), own.health)
                decided[target][value] = quorum_health(own, votes, quorum)
        return decided

    def _ballot(
        self, others: Mapping[str, View], service: str, key: str, own: Health
    ) -> list[Vote]:
        """This instance's vote on `key` (a target, `target@value`, the fallback), then each
        other live view's that judges it: one way to count, for targets, values and fallback."""
        votes = [Vote(self.ctx.config.instance.name, own, self.inputs.isolated)]
        for name, view in others.items():
            seen = view.targets.get(service, {}).get(key)
            if seen is not None:
                votes.append(Vote(name, Health(seen), view.isolated))
        return votes

    def isolated(self) -> bool:
        """Hold automatic switches only when no other live vantage point can judge either."""
        if not self.inputs.isolated:
            return False
        return not any(not view.isolated for view in self.others().values())

    def votes(self, service: str, target: str, own: Health) -> dict[str, str]:
        """Each live instance's view of one target, for `status`."""
        ballot = self._ballot(self.others(), service, target, own)
        return {vote.instance: vote.health.value for vote in ballot}
