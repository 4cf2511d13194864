"""Which services a decision cycle decides: all of them (a full sweep), those a timer may
concern (a timer sweep), or only those something woke. Pure bookkeeping: `now` is given."""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from failover.runtime import ServiceRuntime

TICK = 1.0  # seconds between cycles when nothing wakes the engine (timers: cooldown, grace)
# Timer sweeps at most every 4x the time they held the engine lock: at 10,000 services a sweep
# holds it ~0.9 s (its 5 ms slices let probes and I/O run in between), and spacing them by
# their CPU time alone kept the lock taken 90% of the time, so ended switches and
# verifications waited seconds to be recorded. Timers (cooldown, grace) are seen that late.
SWEEP_SHARE = 4
# Timer sweeps decide only the services whose decision may change on time (`stays_quiet`):
# at 10,000 steady services the sweeps were most of the daemon's CPU, and during a mass
# failover they took the loop from the services that had work. A full sweep still runs at
# least every FULL_SWEEP_EVERY seconds (and at most ~1/FULL_SWEEP_SHARE of the time): it
# refreshes the reasons `status` shows (a DOWN target's failure count) and bounds the cost
# of any wake-up a change forgot.
FULL_SWEEP_EVERY = 10.0
FULL_SWEEP_SHARE = 10


class Sweep(StrEnum):
    FULL = "full"  # every service
    TIMERS = "timers"  # the services woken, and those whose decision stands no longer
    WOKEN = "woken"  # only the services woken (`ctx.wake_service`)


@dataclass
class Sweeps:
    last_at: float | None = None  # the last sweep, full or timers
    last_full_at: float = float("-inf")
    cost: float = 0.0  # seconds the last timer sweep held the lock: the next waits 4x that
    full_cost: float = 0.0  # the same for the last full sweep

    def next(self, now: float, *, full: bool) -> Sweep:
        """The cycle's kind at `now`; `full` when something concerns every service (a wake,
        isolation, a local fault)."""
        if (
            full
            or self.last_at is None
            or now - self.last_full_at >= max(FULL_SWEEP_EVERY, FULL_SWEEP_SHARE * self.full_cost)
        ):
            return Sweep.FULL
        if now - self.last_at >= max(TICK, SWEEP_SHARE * self.cost):
            return Sweep.TIMERS
        return Sweep.WOKEN

    def began(self, sweep: Sweep, now: float) -> None:
        if sweep is not Sweep.WOKEN:
            self.last_at = now
        if sweep is Sweep.FULL:
            self.last_full_at = now

    def ended(self, sweep: Sweep, seconds: float) -> None:
        """A timer sweep is paced by its own cost: after a dear full sweep the next cheap one
        still comes at the next TICK, so a cooldown's end is not seen seconds late."""
        if sweep is Sweep.TIMERS:
            self.cost = seconds
        elif sweep is Sweep.FULL:
            self.full_cost = seconds


def chosen(
    sweep: Sweep,
    services: Mapping[str, ServiceRuntime],
    woken: Iterable[str],
    now: float,
    *,
    skip_quiet: bool = True,
) -> Collection[ServiceRuntime]:
    """The services the cycle decides, in a stable order. Without `skip_quiet` (several
    instances: the other instances' views age out on their own, unseen by any decision's
    `until`) a timer sweep decides every service, as a full one."""
    if sweep is Sweep.FULL or (sweep is Sweep.TIMERS and not skip_quiet):
        return services.values()
    if sweep is Sweep.TIMERS:
        names = set(woken)
        return [rt for rt in services.values() if not rt.stays_quiet(now) or rt.name in names]
    return [services[n] for n in sorted(woken) if n in services]


class Turns:
    """The services of one cycle in order, with those put ahead meanwhile (their target's
    health changed) decided next: a cycle of thousands of services (a full sweep, the
    switches of a mass failover ending) took two seconds, and a primary found DOWN during it
    waited that long to be switched away from."""

    def __init__(self, runtimes: Iterable[ServiceRuntime]) -> None:
        self._queue: deque[tuple[ServiceRuntime, bool]] = deque((rt, False) for rt in runtimes)
        self._ahead: set[str] = set()

    def next(self) -> ServiceRuntime | None:
        while self._queue:
            rt, ahead = self._queue.popleft()
            if ahead or rt.name not in self._ahead:  # else decided already, ahead of its turn
                return rt
        return None

    def put_ahead(self, runtimes: list[ServiceRuntime]) -> None:
        self._queue.extendleft((rt, True) for rt in reversed(runtimes))
        self._ahead.update(rt.name for rt in runtimes)
