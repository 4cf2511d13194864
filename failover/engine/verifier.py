"""Re-checking changes that did not verify: verification is a state, not a single event.

Why: a name server that lags, or is down for a minute, serves the new answer later; a reload
that reopens a provider interrupts the first check. Checked once, the `not_verified` alarm would
stay until the next change (and a critical alert with it), or the check would be lost. Here one
task per service asks the servers again, per provider with its own backoff (doubling up to
RECHECK_MAX), until the change verifies or a newer change replaces it. It journals only what
changes: a first verdict after a reload, and the moment a provider clears.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from failover.engine.context import Context
from failover.logs import fields
from failover.model import Trigger
from failover.provider_sync import ProviderSync, SyncState
from failover.runtime import ServiceRuntime
from failover.submission import Confirmation
from failover.timefmt import rfc3339

log = logging.getLogger("failover.engine")

RECHECK_FIRST = 5.0  # seconds before the first re-check (less when verify.timeout is shorter)
RECHECK_MAX = 60.0  # the backoff between re-checks stops doubling here


class Rechecker:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._tasks: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}

    def ensure(self, rt: ServiceRuntime) -> None:
        """Make sure the service's owed re-checks run (a new one is scheduled from now)."""
        running = self._tasks.get(rt.name)
        if running is not None and not running[0].done():
            running[1].set()
            return
        poke = asyncio.Event()
        task = asyncio.create_task(self._guarded(rt, poke), name=f"recheck {rt.name}")
        self._tasks[rt.name] = (task, poke)

    async def stop(self) -> None:
        tasks = [task for task, _ in self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _first_delay(self, provider: str) -> float:
        config = self.ctx.config.providers.get(provider)
        timeout = config.verify.timeout if config is not None else RECHECK_FIRST
        return min(RECHECK_FIRST, timeout)

    async def _guarded(self, rt: ServiceRuntime, poke: asyncio.Event) -> None:
        """A bug here must not die silently: the alarm would then never clear."""
        try:
            await self._run(rt, poke)
        except Exception:
            log.exception("%s: re-checking its verification failed", rt.name)

    async def _run(self, rt: ServiceRuntime, poke: asyncio.Event) -> None:
        while self.ctx.services.get(rt.name) is rt:
            owed = rt.rechecks_owed()
            if not owed:
                return
            now = self.ctx.clock()
            for provider, sync in owed.items():
                if sync.next_check is None:
                    sync.next_check = now + (0.0 if _first(sync) else self._first_delay(provider))
            wake = min(s.next_check or now for s in owed.values())
            poke.clear()
            if wake > now:
                try:
                    async with asyncio.timeout(wake - now):
                        await poke.wait()
                    continue  # something new is owed: schedule it first
                except TimeoutError:
                    pass
            now = self.ctx.clock()
            due = {p: s for p, s in rt.rechecks_owed().items() if (s.next_check or 0.0) <= now}
            await self._check(rt, due)

    async def _check(self, rt: ServiceRuntime, due: dict[str, ProviderSync]) -> None:
        queues = {p: self.ctx.queues.get(p) for p in due}
        asked = {p: q for p, q in queues.items() if q is not None}
        for provider in set(due) - set(asked):  # removed by a reload: nothing left to check
            due[provider].recheck = False
        results = await asyncio.gather(
            *(
                q.recheck(due[p].changes, due[p].confirmation, full=_first(due[p]))
                for p, q in asked.items()
            )
        )
        verdicts = {p: (due[p], c) for p, c in zip(asked, results, strict=True)}
        async with self.ctx.lock:
            now = self.ctx.clock()
            first = {p for p, (sync, _) in verdicts.items() if _first(sync)}
            lagged = {p: sync.lagging_since for p, (sync, _) in verdicts.items()}
            cleared = rt.rechecked(verdicts, now)
            for provider, (sync, _) in verdicts.items():
                sync.checks += 1
                delay = self._first_delay(provider) * 2**sync.checks
                sync.next_check = now + min(RECHECK_MAX, delay)
            told = sorted(first | set(cleared))
            if told:
                self._journal(rt, {p: verdicts[p] for p in told}, lagged, now)
        if told:
            await self.ctx.journal.sync()

    def _journal(
        self,
        rt: ServiceRuntime,
        verdicts: dict[str, tuple[ProviderSync, Confirmation]],
        lagged: dict[str, float | None],
        now: float,
    ) -> None:
        failed = {p: c for p, (_, c) in verdicts.items() if not c.in_sync or c.verified is False}
        body: list[dict[str, Any]] = []
        for provider, (_, confirmation) in verdicts.items():
            since = lagged.get(provider)
            extra = {"lagging_since": rfc3339(since)} if since else {}
            body.append({"provider": provider, **confirmation.as_json(), **extra})
        target = next(iter(verdicts.values()))[0].target
        if failed:
            reason = "; ".join(f"{p}: {c.verify_reason}" for p, c in failed.items())
            log.error(
                "%s: change to %s NOT verified: %s",
                rt.name,
                target,
                reason,
                extra=fields(rt.name, target),
            )
        else:
            lag = [f"{p} (lagging since {rfc3339(s)})" for p, s in lagged.items() if s]
            reason = "served by every authoritative server" + (
                f" after re-checks: {', '.join(lag)}" if lag else " (re-checked)"
            )
            log.warning(
                "%s: change to %s verified: %s", rt.name, target, reason, extra=fields(rt.name)
            )
        self.ctx.journal.enqueue(
            rt.name,
            "verify",
            Trigger.AUTO,
            reason,
            now,
            to=target,
            result="failed" if failed else "ok",
            providers=body,
        )


def _first(sync: ProviderSync) -> bool:
    """No verdict yet on this change (a reload interrupted its first check)."""
    return sync.state in (SyncState.ACCEPTED, SyncState.IN_SYNC) and sync.confirmation is None
