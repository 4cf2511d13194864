"""The single actor: each cycle takes a snapshot, asks the core, hands the plan to the writers.

Decisions and operator commands run under one lock, so decision state has one writer. DNS
writes go through one queue per provider (`apply.py`) and run as per-service tasks outside the
lock (`switcher.py`): a hung provider delays only the services it serves, never the decision
loop. Records are read back in the background (`reader.py`), never under the lock. Probe
results only update health and wake the actor (`inputs.py`); they never act.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import replace
from typing import Any

from failover import heap, views, views_ops
from failover import intents as intents_codec
from failover import reload as live_reload
from failover.apply import ProviderQueue
from failover.config.provider_types import call_budget
from failover.config.types import Config
from failover.coord.base import Coordinator
from failover.engine.commands import Commands
from failover.engine.context import CommandError, Context
from failover.engine.decider import Decider
from failover.engine.drain import Drains
from failover.engine.inputs import HealthInputs
from failover.engine.leadership import CoordinationChanges
from failover.engine.reader import RecordReader
from failover.engine.recovery import Recovery
from failover.engine.sweeps import TICK, Sweep, Sweeps, Turns, chosen
from failover.engine.switcher import Switcher
from failover.engine.switchover import Switchovers
from failover.engine.vantage import Vantage
from failover.journal import Journal
from failover.logs import fields
from failover.metrics import LiveView, Metrics
from failover.model import ProbeResult, Trigger
from failover.probes.scheduler import ProbeJob
from failover.providers.base import Provider
from failover.runtime import ServiceRuntime
from failover.slicing import Slicer, Steps, run_sliced, run_whole
from failover.store import Store

log = logging.getLogger("failover.engine")

STALL_SLACK = 30.0  # beyond the longest legitimate cycle, before the loop counts as stuck
STALLED = 3.0  # seconds without a turn of the loop beyond TICK: probe results were judged late
UNREAD_FRESH = 0.5  # seconds a count of the providers still being read stands


class Engine:
    def __init__(
        self,
        config: Config,
        store: Store,
        providers: Mapping[str, Provider],
        coord: Coordinator,
        metrics: Metrics,
        *,
        dry_run: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        queues = {
            name: ProviderQueue(
                name, provider, config.providers[name], metrics, fence=coord.token_valid
            )
            for name, provider in providers.items()
        }
        journal = Journal(store, config.instance.name)
        self.ctx = Context(
            config, store, providers, coord, metrics, journal, queues, dry_run, clock
        )
        saved = coord.load_intents()
        self.ctx.services = {
            name: ServiceRuntime.fresh(svc, intents_codec.decode_state(saved.get(name), svc))
            for name, svc in config.services.items()
        }
        self.inputs = HealthInputs(self.ctx)
        self.reader = RecordReader(self.ctx)
        self.burst = heap.BurstHold()  # no collection while a mass failover is in flight
        self.switcher = Switcher(self.ctx, self.burst)
        self.recovery = Recovery(self.ctx)
        self.vantage = Vantage(self.ctx, self.inputs)
        self._publisher: asyncio.Task[None] | None = None
        coord.on_change = CoordinationChanges(self.ctx, self.reader)
        self.decider = Decider(
            self.ctx, self.inputs, self.vantage, self.switcher, lambda: self.started_at
        )
        self.commands = Commands(
            self.ctx, self.reader, self.switcher, self._decide_synced, self.vantage
        )
        self.drains = Drains(self.ctx, self.commands)  # drain / undrain, maintenance windows
        self.switchovers = Switchovers(self.ctx, self.reader, self.switcher, self.vantage)
        self.started_at = clock()
        # the probe process's state for `status` (pid, restarts), set by the daemon when the
        # probes run in one (`instance.probe_process`)
        self.probe_process: Callable[[], dict[str, Any]] | None = None
        self.ready = False
        self.last_cycle_at: float | None = None
        self.sweeps = Sweeps()  # which services each cycle decides
        self._unread: tuple[float, dict[str, int]] | None = None  # (when, unread_providers)
        self._beat = time.monotonic()  # the loop's last sign of progress (see `alive`)
        self._stopping = asyncio.Event()
        metrics.attach_live(self.live_view)

    # The collaborators (daemon, drills, admin API) read these; the parts share `ctx`.
    @property
    def config(self) -> Config:
        return self.ctx.config

    @property
    def providers(self) -> Mapping[str, Provider]:
        return self.ctx.providers

    @property
    def queues(self) -> dict[str, ProviderQueue]:
        return self.ctx.queues

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def coord(self) -> Coordinator:
        return self.ctx.coord

    @property
    def metrics(self) -> Metrics:
        return self.ctx.metrics

    @property
    def journal(self) -> Journal:
        return self.ctx.journal

    @property
    def clock(self) -> Callable[[], float]:
        return self.ctx.clock

    @property
    def lock(self) -> asyncio.Lock:
        return self.ctx.lock

    @property
    def dry_run(self) -> bool:
        return self.ctx.dry_run

    @property
    def services(self) -> dict[str, ServiceRuntime]:
        return self.ctx.services

    @property
    def isolated(self) -> bool:
        return self.inputs.isolated

    @property
    def single_round(self) -> bool:
        return self.inputs.single_round

    @single_round.setter
    def single_round(self, value: bool) -> None:
        self.inputs.single_round = value

    def on_probe_result(self, job: ProbeJob, result: ProbeResult, finished_at: float) -> None:
        self.inputs.on_probe_result(job, result, finished_at)

    def wake(self) -> None:
        self.ctx.wake()

    def unread_providers(self) -> dict[str, int]:
        """The providers still being read at start-up (see `RecordReader.unread`), counted at
        most every `UNREAD_FRESH` seconds: `/readyz` asks while not ready, a poller as often as
        it likes, and at 10,000 services each count walks every service."""
        now = time.monotonic()
        if self._unread is None or now - self._unread[0] >= UNREAD_FRESH:
            self._unread = (now, self.reader.unread(self.ctx.services.values()))
        return self._unread[1]

    def runtime(self, service: str) -> ServiceRuntime:
        return self.ctx.runtime(service)

    # ------------------------------------------------------------------ loop

    async def start(self, *, wait_for_reads: bool = False) -> None:
        """Start reading the published answer back, provider by provider. No service is
        decided before its own records are read, so a restart flips nothing, and a slow
        provider delays only its own services. `run --once` waits for every read. Changes a
        crash left without an outcome are reconciled once their records are read back."""
        self.recovery.load(await asyncio.to_thread(self.ctx.store.history))
        self.reader.start(self.ctx.services.values(), self.ctx.clock())
        if wait_for_reads:
            await self.reader.wait_all()

    async def run(self) -> None:
        self._beat = time.monotonic()
        if self.vantage.coordinated and self._publisher is None:
            self._publisher = asyncio.create_task(self.vantage.publish_forever(), name="views")
        try:
            while not self._stopping.is_set():
                try:
                    async with asyncio.timeout(TICK):
                        await self.ctx.woken.wait()
                except TimeoutError:
                    pass
                self.ctx.woken.clear()
                if self._stopping.is_set():
                    break
                gap = time.monotonic() - self._beat
                self._beat = time.monotonic()
                if gap > TICK + STALLED:
                    now = self.ctx.clock()
                    self.inputs.resumed(now, f"the decision loop stalled for {gap:.1f}s")
                    self.ctx.wake()  # every service holds until its targets re-report
                await self.cycle()
        finally:
            self.burst.release()  # nothing ends a hold once the cycles stop

    def alive(self) -> bool:
        """The loop made progress lately: a cycle began or ended within `stall_limit`. The
        systemd watchdog pings only while this holds, so a stuck loop gets restarted."""
        return time.monotonic() - self._beat <= self.stall_limit()

    def stall_limit(self) -> float:
        """The longest legitimate cycle (a provider read: its timeout plus retry deadline),
        plus slack: a slow provider must not get the daemon restarted during an outage."""
        providers = self.ctx.config.providers.values()
        longest = max(map(call_budget, providers), default=0.0)
        return TICK + longest + STALL_SLACK

    async def stop(self, timeout: float = 30.0) -> list[str]:
        """Stop deciding; let in-flight changes be accepted or fail for at most `timeout`
        seconds, then abandon the rest (journalled: the provider may still apply them, and the
        next start reads the published records back). Saves the state. Returns the services
        whose change was abandoned."""
        self._stopping.set()
        self.burst.close()  # first: whatever fails below, the collector runs again
        self.ctx.wake()
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
        await self.reader.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with contextlib.suppress(TimeoutError):  # a cycle in progress may start changes
            async with asyncio.timeout_at(deadline), self.ctx.lock:
                pass
        inflight = {n: rt.inflight for n, rt in self.ctx.services.items() if rt.inflight}
        if inflight:
            log.info(
                "waiting up to %gs for %d in-flight DNS changes before stopping",
                timeout,
                len(inflight),
            )
            await asyncio.wait(inflight.values(), timeout=max(0.0, deadline - loop.time()))
        abandoned = [
            (n, self.ctx.services[n].pending, t) for n, t in inflight.items() if not t.done()
        ]
        for _, _, task in abandoned:
            task.cancel()
        await asyncio.gather(*(t for _, _, t in abandoned), return_exceptions=True)
        for name, target, _ in abandoned:
            reason = (
                f"shutdown: the change to {target} was not accepted by every provider within "
                f"{timeout:g}s and was abandoned; a provider may still apply it, and the next "
                "start reads the published records back before deciding"
            )
            log.error("%s: %s", name, reason, extra=fields(name, target))
            await self.ctx.journal.write(
                name, "abandoned", Trigger.AUTO, reason, self.ctx.clock(), to=target, result="error"
            )
        confirming = [rt.confirming for rt in self.ctx.services.values() if rt.confirming]
        for task in confirming:
            task.cancel()
        await asyncio.gather(*confirming, return_exceptions=True)
        await self.switcher.rechecker.stop()
        await self.switchovers.stop()
        for queue in self.ctx.queues.values():
            await queue.aclose()
        await self.ctx.save_intents()
        return [name for name, _, _ in abandoned]

    @contextlib.asynccontextmanager
    async def quiesced(
        self, affected: Callable[[ServiceRuntime], bool], timeout: float
    ) -> AsyncIterator[None]:
        """Hold the lock once no `affected` service has a DNS change in flight, so a reload
        swaps providers and services between changes. CommandError (503) after `timeout`."""
        lock = self.ctx.lock
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    await lock.acquire()
            except TimeoutError:
                message = f"the engine stayed busy for {timeout:g}s"
                raise CommandError("busy", message, 503) from None
            busy = {
                n: rt.inflight
                for n, rt in self.ctx.services.items()
                if rt.inflight and affected(rt)
            }
            if not busy:
                break
            lock.release()
            if loop.time() >= deadline:
                names = ", ".join(sorted(busy))
                raise CommandError(
                    "busy",
                    f"DNS changes of {names} still in flight after {timeout:g}s; "
                    "try again once they finish",
                    503,
                )
            await asyncio.wait(busy.values(), timeout=max(0.0, deadline - loop.time()))
        try:
            yield
        finally:
            lock.release()

    async def reconfigure(
        self, config: Config, providers: Mapping[str, Provider], closing: Collection[str]
    ) -> None:
        """Swap in a validated config; the caller holds the lock (`quiesced`). Unchanged
        services keep their runtime, unchanged targets their probe history (`reload.py`).
        `closing` names the providers replaced or removed: their queues close here, and
        verification still waiting on them is checked again through the new provider (or
        abandoned, journalled, when the provider, the service or its records are gone)."""
        ctx = self.ctx
        assert ctx.lock.locked(), "reconfigure needs the lock: use quiesced()"
        now = ctx.clock()
        recheck: list[ServiceRuntime] = []
        for name, rt in ctx.services.items():
            touched = {r.provider for r in rt.config.records} & set(closing)
            task = rt.confirming
            if task is None or task.done() or not (touched or name not in config.services):
                continue
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            svc = config.services.get(name)
            same = svc is not None and svc.records == rt.config.records
            if same and rt.verification_interrupted(touched & set(providers)):
                log.info("%s: a reload interrupted verification; checking again", name)
                recheck.append(rt)
                continue
            rt.verification_abandoned()
            reason = "verification abandoned: a reload replaced " + (
                ", ".join(sorted(touched)) if touched else "the service"
            )
            await ctx.journal.write(name, "verify", Trigger.AUTO, reason, now, result="abandoned")
        ctx.services = live_reload.merge_services(ctx.services, config, closing, now)
        for rt in recheck:
            self.switcher.rechecker.ensure(rt)
        old = ctx.queues
        ctx.queues = {
            name: old[name]
            if name in old and name not in closing
            else ProviderQueue(
                name, provider, config.providers[name], ctx.metrics, fence=ctx.coord.token_valid
            )
            for name, provider in providers.items()
        }
        ctx.providers, ctx.config = providers, config
        for name in closing:
            if name in old:
                await old[name].aclose()
        await ctx.save_intents()
        self.ready = all(rt.current is not None for rt in ctx.services.values())
        ctx.wake()

    async def cycle(self) -> None:
        """Decide the services something woke (`ctx.wake_service`), every TICK also those
        whose decision may have changed on time alone (cooldown, grace, retries: they no
        longer `stays_quiet`), and every service after `ctx.wake` or at least every
        FULL_SWEEP_EVERY seconds (engine/sweeps.py)."""
        async with self.ctx.lock:
            ctx = self.ctx
            now = ctx.clock()
            isolated, fault = self.inputs.isolated, self.inputs.local_fault
            self.inputs.update_isolation(now)
            self.inputs.update_local_fault(now)
            sweep = self.sweeps.next(
                now,
                full=ctx.sweep
                or isolated != self.inputs.isolated
                or fault != self.inputs.local_fault,
            )
            dirty, ctx.dirty, ctx.urgent = ctx.dirty, set(), set()
            self.sweeps.began(sweep, now)
            runtimes = chosen(
                sweep, ctx.services, dirty, now, skip_quiet=not self.vantage.coordinated
            )
            if sweep is Sweep.WOKEN:  # e.g. a retry's read-back
                self.reader.start(self.reader.due(runtimes, now), now)
            else:
                ctx.sweep = False
                self.reader.start(self.reader.due(ctx.services.values(), now), now)
            slicer, began, turns = Slicer(), time.monotonic(), Turns(runtimes)
            while (rt := turns.next()) is not None:
                if rt.busy:
                    continue
                try:
                    await self.recovery.reconcile(rt, now)
                    await self.drains.tick(rt, now)
                    await self.decider.decide(rt, now)
                    self.switchovers.tick(rt, now)
                except Exception as exc:  # one service's bug must not stop the others
                    log.exception("cycle of service %s failed", rt.name)
                    rt.internal_error(f"internal error: {type(exc).__name__}: {exc}")
                # A mass failover decides hundreds of services per cycle: without a pause
                # every await of an apply or a verification in flight waits for the whole
                # cycle, and a 50 ms UPDATE took 400 ms. Later decisions see the time now.
                if await slicer.pause():
                    now = max(now, ctx.clock())
                    turns.put_ahead(ctx.take_urgent())
            self.last_cycle_at = now
            self._beat = time.monotonic()
            if sweep is not Sweep.WOKEN or not self.ready:  # ready: every service read once
                self.ready = all(rt.current is not None for rt in ctx.services.values())
            self.sweeps.ended(sweep, time.monotonic() - began)
        self.burst.update(len(self.switcher.in_flight), time.monotonic())
        # What this cycle journalled, in one group commit, waited for outside the lock: the
        # changes finishing meanwhile record their outcome instead of queueing behind a fsync.
        await self.ctx.journal.sync()

    async def _decide_synced(self, rt: ServiceRuntime, now: float) -> None:
        """A command's decision, committed before the command answers (a cycle commits once
        for every service it decided)."""
        await self.decider.decide(rt, now)
        await self.ctx.journal.sync()

    # ---------------------------------------------------------------- commands and views

    async def promote(
        self, service: str, target: str, reason: str, actor: str, *, force: bool, dry_run: bool
    ) -> dict[str, Any]:
        return await self.commands.promote(
            service, target, reason, actor, force=force, dry_run=dry_run
        )

    async def simple_command(self, service: str | None, verb: str, actor: str) -> dict[str, Any]:
        return await self.commands.simple(service, verb, actor)

    async def drill_switch(self, rt: ServiceRuntime, target: str, reason: str) -> dict[str, Any]:
        return await self.commands.drill_switch(rt, target, reason)

    def canary_failing(self, name: str) -> bool:
        return self.inputs.canary_failing(name)

    def status(self) -> dict[str, Any]:
        ctx = self.ctx
        body = views.status(
            ctx.config,
            ctx.coord,
            ctx.services,
            isolated=self.inputs.isolated,
            local_fault=self.inputs.local_fault,
            canary_failing=self.inputs.canary_failing,
            dry_run=ctx.dry_run,
            started_at=self.started_at,
            votes=self.vantage.votes,
            decided=self.vantage.health,
            decided_fallback=self.vantage.fallback,
            journal=ctx.journal.health(),
        )
        body["probe_process"] = self.probe_process() if self.probe_process is not None else None
        return views_ops.with_ops(body, ctx.services, ctx.clock())

    def live_view(self) -> LiveView:
        return run_whole(self._live_view_steps())

    async def live_view_sliced(self) -> LiveView:
        """`live_view` built a slice at a time (the scrape's: 0.4 s of work at 10,000)."""
        return await run_sliced(self._live_view_steps())

    def _live_view_steps(self) -> Steps[LiveView]:
        ctx = self.ctx
        view = yield from views.live_view_steps(
            ctx.config,
            ctx.coord,
            ctx.services,
            self.inputs.isolated,
            ctx.journal.health(),
            self.vantage.votes,
            local_fault=bool(self.inputs.local_fault),
        )
        return replace(view, drained=views_ops.drained_view(ctx.services, ctx.clock()))
