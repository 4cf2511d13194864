"""What another instance (or etcd) changed: the leadership, the shared intents, the views.

A new leader behaves as after a restart: it reads what DNS serves back before its first
decision, so a change of leader flips nothing. Intents written on another instance (a pin made
through a follower, the flap counters of the leader's switch) replace this instance's copy, are
acted on at once, and have the service's records read back.
"""

from __future__ import annotations

import logging

from failover import intents as intents_codec
from failover.coord.base import ChangeKind
from failover.engine.context import Context
from failover.engine.reader import RecordReader

log = logging.getLogger("failover.engine")


class CoordinationChanges:
    """The coordinator's `on_change` hook (called on the event loop)."""

    def __init__(self, ctx: Context, reader: RecordReader) -> None:
        self.ctx = ctx
        self.reader = reader
        self.was_leader = ctx.coord.is_leader()

    def __call__(self, kind: ChangeKind) -> None:
        if kind == "leader":
            self._leadership()
        elif kind == "intents":
            self._intents()
        self.ctx.wake()

    def _leadership(self) -> None:
        ctx = self.ctx
        leader = ctx.coord.is_leader()
        if leader and not self.was_leader:
            log.warning("this instance leads now (%s)", ctx.coord.condition())
            for rt in ctx.services.values():
                if not rt.busy:
                    rt.forget_records()
            self.reader.start(ctx.services.values(), ctx.clock())
        elif not leader and self.was_leader:
            log.warning("this instance no longer leads (%s)", ctx.coord.condition())
        self.was_leader = leader

    def _intents(self) -> None:
        """Another instance changed a service's intents. Every switch of the leader changes
        them (its flap counters), so read that service's records back now too: a follower's
        `status` shows the leader's switch at once, not at its next periodic re-read."""
        saved = self.ctx.coord.load_intents()
        for name, rt in self.ctx.services.items():
            if name not in saved:
                continue
            state = intents_codec.decode_state(saved[name], rt.config)
            if state != rt.state:
                log.info("%s: intents changed by another instance", name, extra={"service": name})
                rt.state = state
                rt.retry_now()
                rt.reread_soon()
