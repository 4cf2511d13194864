"""What the engine's parts share: the config and providers in force, the runtimes, one lock.

Why one object: a reload swaps the config, the providers and their queues in one step; every
part (reader, switcher, commands) reads them from here, so none holds a stale copy. The lock
gives decision state a single writer; the parts take it only around state changes, never while
waiting on a provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from failover import intents as intents_codec
from failover.apply import ProviderQueue
from failover.config.types import Config
from failover.coord.base import Coordinator
from failover.journal import Journal
from failover.metrics import Metrics
from failover.providers.base import Provider
from failover.runtime import ServiceRuntime
from failover.slicing import Slicer
from failover.store import ServiceBodies, Store

T = TypeVar("T")
FULL_SCAN_EVERY = 1.0  # seconds between snapshots that look at every service


class CommandError(Exception):
    """An operator command that cannot be carried out; `status` is the HTTP status to return."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.extra = extra


@dataclass(eq=False)
class Context:
    config: Config
    store: Store
    providers: Mapping[str, Provider]
    coord: Coordinator
    metrics: Metrics
    journal: Journal
    queues: dict[str, ProviderQueue]
    dry_run: bool = False
    clock: Callable[[], float] = time.time
    services: dict[str, ServiceRuntime] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    health_changed: asyncio.Event = field(default_factory=asyncio.Event)  # publish the view
    # What the next cycle decides: every service (`sweep`), or only those a probe result
    # changed (`dirty`). With 10,000 services a full cycle costs ~1 s; a probe round that
    # turns a few hundred targets DOWN then waits for one sweep instead of hundreds.
    sweep: bool = True
    dirty: set[str] = field(default_factory=set)
    urgent: set[str] = field(default_factory=set)  # of `dirty`: decided ahead, mid-cycle
    # internal: the records waiting for the lock (`locked`) and the encoded intents' cache
    _waves: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = field(
        default_factory=list, init=False, repr=False
    )
    _wave_runner: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _states: dict[str, object] = field(default_factory=dict, init=False, repr=False)
    _bodies: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)
    _touched: set[str] = field(default_factory=set, init=False, repr=False)
    _touched_all: bool = field(default=True, init=False, repr=False)
    _full_scan_at: float = field(default=float("-inf"), init=False, repr=False)

    async def locked(self, record: Callable[[], T]) -> T:
        """Run the synchronous `record` under the lock, in one turn with every other caller
        waiting meanwhile. A mass failover ends hundreds of changes at once: taking the lock
        for each cost a turn of the event loop per change, and the next decision cycle queued
        behind all of them (300 ms at 1,000 services). A caller cancelled before its turn
        skips its `record`, as it would skip the body of `async with lock`."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waves.append((record, done))
        if self._wave_runner is None or self._wave_runner.done():
            self._wave_runner = asyncio.create_task(self._run_waves(), name="engine-records")
        return await done

    async def _run_waves(self) -> None:
        # The lock is held across the slices: a wave of 4,000 ended switches (journal entries,
        # metrics, logs) took a second at 10,000 services, and a loop stalled that long makes
        # probes fail for a reason on this host. Other tasks run between slices;
        # the lock is let go between waves, so a decision cycle waiting for it goes next.
        slicer = Slicer()
        while self._waves:
            async with self.lock:
                wave, self._waves = self._waves, []
                for record, done in wave:
                    if done.cancelled():
                        continue
                    try:
                        done.set_result(record())
                    except Exception as exc:
                        done.set_exception(exc)
                    await slicer.pause()

    def wake(self) -> None:
        """Ask the actor for a cycle of every service soon (a finished change or read, a
        command, a reload, isolation): whatever changed may concern any of them."""
        self.sweep = True
        self.woken.set()

    def wake_service(self, name: str, *, urgent: bool = False) -> None:
        """Ask the actor to decide this service soon; `urgent` (its target's health
        changed): in the cycle under way if there is one, ahead of the services left."""
        self.dirty.add(name)
        if urgent:
            self.urgent.add(name)
        self.woken.set()

    def take_urgent(self) -> list[ServiceRuntime]:
        """The services woken as urgent since the cycle began, now decided by it."""
        names, self.urgent = self.urgent, set()
        self.dirty -= names
        return [self.services[n] for n in sorted(names) if n in self.services]

    def runtime(self, service: str) -> ServiceRuntime:
        runtime = self.services.get(service)
        if runtime is None:
            known = ", ".join(sorted(self.services)) or "none"
            raise CommandError("unknown_service", f"no service {service!r} (known: {known})", 404)
        return runtime

    def save_intents_soon(self, service: str | None = None) -> None:
        """Mark the intents for the next group commit; `journal.sync()` waits for it. Name the
        `service` whose state changed when there is one: the snapshot then looks at it alone
        (see `_intents_snapshot`)."""
        if service is None:
            self._touched_all = True
        else:
            self._touched.add(service)
        self.journal.mark_state(self._intents_snapshot, self.coord.save_intents)

    async def save_intents(self) -> None:
        self.save_intents_soon()
        await self.journal.sync()

    def _intents_snapshot(self) -> dict[str, Any]:
        """Every service's intents, each encoded again only when its (immutable) state changed.
        A mass failover saves the state dozens of times a second: walking 10,000 services each
        time was 6% of the daemon's CPU. Only the services named since the last snapshot are
        looked at, and every service once a second (`FULL_SCAN_EVERY`) or when a caller named
        none (a reload, a command), so a change nobody named is saved all the same."""
        now = time.monotonic()
        full = self._touched_all or now - self._full_scan_at >= FULL_SCAN_EVERY
        names = self.services.keys() if full else self._touched
        self._touched, self._touched_all = set(), False
        states, bodies = self._states, self._bodies  # the state each body was encoded from
        if full:
            self._full_scan_at = now
            for gone in [n for n in states if n not in self.services]:
                del states[gone], bodies[gone]
        changed: set[str] = set()
        for name in names:
            rt = self.services.get(name)
            if rt is None:
                if states.pop(name, None) is not None:
                    del bodies[name]
            elif states.get(name) is not rt.state:
                states[name], bodies[name] = rt.state, intents_codec.encode_state(rt.state)
                changed.add(name)
        snapshot = ServiceBodies(bodies)  # a copy: the write runs in a thread meanwhile
        # what may differ from the snapshot before: the store then looks at these alone; a
        # full scan (every second) names none, so nothing stays stale past it
        snapshot.changed = None if full else frozenset(changed)
        return snapshot
