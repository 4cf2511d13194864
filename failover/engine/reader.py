"""Reading the published records back: one path, at start-up and afterwards.

Each provider is read in its own background task (at most one in flight per provider), and its
answer is folded into each service under the lock only once it has arrived: a blackholed
provider never holds the decision lock, and never delays the services of other providers.
A service whose providers have not all answered stays in phase STARTING, where the core holds
(it never decides from missing data).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable

from failover.config.provider_types import call_budget
from failover.engine.context import Context
from failover.logs import fields
from failover.model import RecordKey, RecordSet
from failover.providers.base import ProviderError
from failover.runtime import ServiceRuntime

log = logging.getLogger("failover.engine")

Wanted = tuple[ServiceRuntime, RecordKey, int]  # a service, one of its keys, its generation
FOLD_PART = 500  # keys folded into their services per hold of the engine lock
COALESCE = 0.5  # share of resync_interval after which a read service joins a due re-read


class RecordReader:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._reads: dict[str, asyncio.Task[None]] = {}  # provider -> read in flight

    def due(self, runtimes: Iterable[ServiceRuntime], now: float) -> list[ServiceRuntime]:
        """Services to read: never read yet (after their backoff) or older than resync.

        When some are due for their periodic re-read, every other one read more than half a
        resync ago comes along (`COALESCE`). A change makes its service due at once (read
        back for the truth), so after a mass change the services are read in as many groups
        as sweeps saw changes end, and each group kept its own schedule: at 10,000 services
        in one zone, a zone transfer per group, resync after resync. Taken along, the groups
        merge within two resyncs, and no service is read more than twice per resync. A
        read-back alone takes nobody along: during a mass change each would re-read the
        others."""
        resync = self.ctx.config.instance.resync_interval
        idle = [rt for rt in runtimes if not rt.busy]
        due = [rt for rt in idle if rt.current is None and now >= rt.retry_at]
        known = [rt for rt in idle if rt.current is not None]
        periodic = any(resync <= now - rt.last_read < math.inf for rt in known)
        floor = resync * COALESCE if periodic else resync
        return due + [rt for rt in known if now - rt.last_read >= floor or now >= rt.read_back_at]

    @staticmethod
    def unread(runtimes: Iterable[ServiceRuntime]) -> dict[str, int]:
        """Providers whose first answer some service still waits for, with how many services
        wait: readiness and the systemd status line name them (a blackholed API)."""
        waiting: dict[str, int] = {}
        for rt in runtimes:
            if rt.current is not None:
                continue
            providers = rt.config.providers
            if rt.partial:  # some records were read: only the others' providers are awaited
                providers = tuple(
                    sorted({r.provider for r in rt.config.records if r.key not in rt.partial})
                )
            for provider in providers:
                waiting[provider] = waiting.get(provider, 0) + 1
        return waiting

    def start(self, due: Iterable[ServiceRuntime], now: float) -> list[asyncio.Task[None]]:
        """One background read per provider for the due services; returns the reads that
        cover them (new or already in flight), for a caller that needs to wait."""
        items: dict[str, list[Wanted]] = {}
        for rt in due:
            for record in rt.config.records:
                items.setdefault(record.provider, []).append(
                    (rt, record.key, rt.records_generation)
                )
        tasks = []
        for name, wanted in items.items():
            running = self._reads.get(name)
            if running is not None:
                tasks.append(running)
                continue
            for rt, _, _ in wanted:
                rt.reading(now)  # not due again while this read runs
            task = asyncio.create_task(self._read(name, wanted, now), name=f"read {name}")
            self._reads[name] = task
            task.add_done_callback(self._forget(name))
            tasks.append(task)
        return tasks

    def _forget(self, name: str) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._reads.pop(name, None)

        return forget

    async def read_now(self, rt: ServiceRuntime, timeout: float) -> None:
        """Read one service's providers and wait (without the lock) for at most `timeout`.
        A read found in flight may have begun before the records were forgotten (and be
        dropped): then read once more in the time left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for _ in range(2):
            tasks = self.start([rt], self.ctx.clock())
            if not tasks:
                return
            await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
            if rt.current is not None or any(not t.done() for t in tasks):
                return

    async def wait_all(self) -> None:
        """Wait for the reads in flight (`run --once` decides only on what was read)."""
        while self._reads:
            await asyncio.gather(*list(self._reads.values()), return_exceptions=True)

    async def stop(self) -> None:
        reads = list(self._reads.values())
        for read in reads:  # a read has nothing to finish
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)

    async def _read(self, name: str, wanted: list[Wanted], started: float) -> None:
        """Read one provider for the due services, in parts when the provider says a part
        costs no more than the whole (`read_chunk`: one query per key): at 10,000 services the
        first decisions waited for the last of 10,000 answers; now each part's services are
        decided (and published) while the next part is read."""
        size = getattr(self.ctx.providers.get(name), "read_chunk", 0) or len(wanted)
        for part in _parts(wanted, size):
            found = await self._call(name, sorted({key for _, key, _ in part}))
            # folded a piece at a time, the lock let go in between: a zone transfer answers
            # 10,000 keys at once, and folding them in one hold kept decisions (and the loop)
            # waiting ~0.5 s
            for piece in _parts(part, FOLD_PART):
                await self._fold(name, piece, found, started)

    async def _fold(
        self,
        name: str,
        wanted: list[Wanted],
        found: dict[RecordKey, RecordSet | None] | str,
        started: float,
    ) -> None:
        """Fold one provider's answer into each service. A failed read keeps the last values
        read (stale, flagged in status) so the other providers' records can still be acted on."""
        async with self.ctx.lock:
            now = self.ctx.clock()
            for rt, generation in {id(rt): (rt, g) for rt, _, g in wanted}.values():
                if self.ctx.services.get(rt.name) is not rt:
                    continue  # removed or replaced by a reload while this read ran
                if rt.busy or rt.changed_at >= started:
                    self.ctx.wake_service(rt.name)
                    continue  # a change made during this read is fresher than what it saw
                if rt.records_generation != generation:
                    self.ctx.wake_service(rt.name)
                    continue  # forgotten meanwhile: this instance leads now, or a reload
                    # moved the records; the answer may predate another leader's last write
                before = _seen(rt, name)
                if isinstance(found, str):
                    if rt.provider_errors.get(name) != found:
                        log.error("%s: %s", rt.name, found, extra=fields(rt.name))
                    rt.read_failed(name, found, now)
                else:
                    rt.records_read(name, found, now)
                # A read concerns the services it read, and only when it told something new:
                # the periodic re-read of 10,000 unchanged services woke a full sweep's worth
                # of decisions, at any moment (a mass failover included). Timers still get
                # every service decided by the sweeps.
                if _seen(rt, name) != before:
                    self.ctx.wake_service(rt.name)

    async def _call(
        self, name: str, keys: list[RecordKey]
    ) -> dict[RecordKey, RecordSet | None] | str:
        config = self.ctx.config.providers[name]
        provider = self.ctx.providers[name]
        try:
            async with asyncio.timeout(call_budget(config)):
                return await provider.read(keys)
        except (ProviderError, TimeoutError, OSError) as exc:
            kind = exc.kind if isinstance(exc, ProviderError) else "timeout"
            if not (isinstance(exc, ProviderError) and exc.counted):
                self.ctx.metrics.provider_errors.labels(name, kind).inc()
            return f"{name}: read failed: {exc or 'timeout'}"


def _seen(rt: ServiceRuntime, provider: str) -> tuple[object, ...]:
    """What a read of `provider` can change that a decision looks at."""
    current = rt.current
    values = None if current is None else tuple(current.get(r.key) for r in rt.config.records)
    sync = rt.sync.get(provider)
    state = (
        None
        if sync is None
        else (id(sync), sync.state, sync.lagging_since, sync.ignored, sync.served, sync.detail)
    )
    return (values, rt.read_error, rt.phase, rt.retry_at, rt.pending, state, len(rt.partial))


def _parts(wanted: list[Wanted], size: int) -> list[list[Wanted]]:
    """`wanted` cut into parts of about `size` keys, a service's keys never split (its
    records are folded in together)."""
    parts: list[list[Wanted]] = [[]]
    for item in wanted:
        last = parts[-1]
        if len(last) >= size and last[-1][0] is not item[0]:
            parts.append(last := [])
        last.append(item)
    return [part for part in parts if part]
