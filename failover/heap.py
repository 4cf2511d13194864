"""The garbage collector's view of the daemon's long-lived objects.

The configuration, the service runtimes and the imported modules live as long as the process,
yet every full (generation 2) collection walks them again: at 1,000 services that was a
70-100 ms pause of the event loop every second or so during a mass failover, and every apply,
verification and probe in flight waited through it. After start-up (and after each reload)
they are moved to the permanent generation (`gc.freeze`), so full collections only walk what
was created since; once more when the engine is first ready (the records read back and the
start-up probe round are long-lived too), and young collections come less often. Objects
freed by reference counting are freed as before; only reference cycles that were frozen and
became garbage stay: measured, 20 objects at start-up and 10 per reload that replaced 1,000
services, against a full collection that stalled the loop 1.1-1.3 s at 10,000 services.
While a burst of changes is in flight (a mass failover) no collection runs at all, and what the
burst leaves alive is frozen at its end (`BurstHold`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 20_000
"""Allocations between two young collections (Python's default: 700). Each collection of the
older generations comes after a number of young ones, so at 10,000 services (a probe result,
a health record and a few dicts replaced thousands of times a second) full passes came every
few seconds and stalled the loop for up to a second each; a young pass over 20,000 objects
takes a few milliseconds."""

MIDDLE_EVERY = 2
"""Young collections between two middle-generation ones (Python's default: 10). A middle pass
walks every object that survived the young passes since the last one: after ten young passes
of 20,000 objects each, in a mass failover where most of them live on (decisions, journal
entries, plans), that was 200,000 objects and a 250 ms stall at 10,000 services. Every
object is walked once in the middle generation either way; two young passes keep each walk
short."""

FULL_EVERY = 500
"""Middle-generation collections between two full ones (Python's default: 10), as many young
passes apart as before `MIDDLE_EVERY` was lowered. A full pass walks every object created
since the last freeze: at 10,000 services up to a second."""


BURST_CHANGES = 50
"""Changes in flight (switches, retries and their verifications) from which collections are
held (`BurstHold`): a mass failover, not the odd switch."""

BURST_HOLD_MAX = 60.0
"""Seconds a hold lasts at most. A burst still going then has what lives frozen and is
collected as usual until its changes fall below `BURST_CHANGES`: the cyclic garbage a hold
leaves behind stays that of 60 s, however long a provider keeps thousands of changes hanging."""

_holders_lock = threading.Lock()
_holders = 0  # `paused()` blocks and burst holds in progress
_was_enabled = True  # the collector's state when the first of them began


def _hold() -> None:
    """One more reason not to collect. `paused()` runs in a worker thread (the configuration
    is parsed off the loop) while a burst hold may begin or end on the loop: one count, under
    a lock, decides when the collector runs again, so neither turns it on under the other."""
    global _holders, _was_enabled
    with _holders_lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1


def _unhold() -> None:
    global _holders
    with _holders_lock:
        _holders -= 1
        if _holders == 0 and _was_enabled:
            gc.enable()


class BurstHold:
    """No cyclic collection while a burst of changes is in flight; when it ends, what it left
    alive is frozen and collection resumes.

    Why: at 10,000 services the young and middle passes walked the decisions, plans, tasks and
    journal entries of the changes in flight, 35,000-145,000 objects a pass, 6-146 ms each:
    1-1.7 s of the loop over a mass failover, in stalls above `LOCAL_LAG_MIN` (100 ms), where a
    probe run in the daemon's loop that timed out would count as a local fault and hold
    automation. Nothing is walked while the hold lasts; at its end `gc.freeze` (constant time)
    moves the survivors out of the collector's way, so they are never walked either. Objects
    freed by reference counting are freed as before; what stays is the cyclic garbage the
    burst made: 105-665 objects per 10,000-service burst (measured), a few hundred kilobytes
    per mass incident.

    The switcher calls `update` as each change starts (the hold begins within the decision
    cycle that starts the burst) and the engine after each cycle (which ends it, at most a
    TICK after the last change)."""

    def __init__(self) -> None:
        self.since: float | None = None  # monotonic time the hold began; None: not holding
        self.holds = 0  # bursts held so far (the debug log and tests)
        self._spent = False  # the last hold hit BURST_HOLD_MAX: none until the burst ebbs
        self._closed = False

    def update(self, in_flight: int, now: float) -> None:
        """The changes in flight now (monotonic `now`): begin, keep or end the hold."""
        if self.since is None:
            self._spent = self._spent and in_flight >= BURST_CHANGES
            if in_flight >= BURST_CHANGES and not (self._spent or self._closed):
                _hold()
                self.since = now
                self.holds += 1
            return
        if in_flight == 0 or now - self.since >= BURST_HOLD_MAX:
            self._spent = in_flight > 0
            self.release(now)

    def release(self, now: float | None = None) -> None:
        """End the hold (the burst is over or lasts too long): freeze, then collect again."""
        if self.since is None:
            return
        held = (time.monotonic() if now is None else now) - self.since
        self.since = None
        gc.freeze()
        _unhold()
        log.debug("heap: burst of changes over after %.1f s; survivors frozen", held)

    def close(self) -> None:
        """The engine stops: end any hold, and take no new one (a cycle may still end)."""
        self._closed = True
        self.release()


def tune() -> None:
    """Collect young objects less often, the middle generation in shorter walks, everything
    rarely (see YOUNG_THRESHOLD, MIDDLE_EVERY and FULL_EVERY); idempotent."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(YOUNG_THRESHOLD, young), min(MIDDLE_EVERY, middle), max(FULL_EVERY, old))


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No collection while long-lived objects are built (parsing the configuration): every
    one would walk the growing heap again for nothing, and at 10,000 services a dozen full
    passes took 4 s of the start-up."""
    _hold()
    try:
        yield
    finally:
        _unhold()


def settle() -> float:
    """Freeze what lives now (after start-up, after a reload); returns the seconds it took.

    No collection first. It would find next to nothing (20 objects at start-up, 10 after a
    reload that replaced 1,000 services: the old configuration is freed by reference counting)
    but walk every object the daemon has, on the loop the probes and reads run on: 40-110 ms
    at 1,000 services, 1.1-1.3 s at 10,000, where a reload then raised a false local fault
    (`loop_lag`) that held automation ~4 s."""
    began = time.monotonic()
    tune()
    gc.freeze()
    took = time.monotonic() - began
    log.debug("heap settled: %d objects frozen in %.0f ms", gc.get_freeze_count(), took * 1000)
    return took


async def freeze_when(ready: Callable[[], bool], poll: float = 0.5) -> None:
    """Freeze once more when `ready` first holds: the records read back at start and the
    start-up probe round live as long as the rest, and at 10,000 services they are most of
    the heap a full pass would otherwise walk again and again. No collection first: at that
    size it stalls the loop for most of a second (a false local fault); the little cyclic
    garbage of the start-up waits for the next `settle()`."""
    while not ready():  # noqa: ASYNC110 (readiness is a computed property, not an event)
        await asyncio.sleep(poll)
    gc.freeze()
