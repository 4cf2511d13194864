"""Which services a cycle decides, and when every one of them is (engine/sweeps.py)."""

from __future__ import annotations

import dataclasses

from failover.core.decide import ServiceState
from failover.engine.sweeps import FULL_SWEEP_EVERY, Sweep, Sweeps, Turns, chosen
from failover.model import Phase
from failover.runtime import ServiceRuntime
from tests.unit.core.conftest import build_service


def test_the_first_cycle_decides_every_service_then_timers_every_tick() -> None:
    sweeps = Sweeps()
    assert sweeps.next(0.0, full=False) is Sweep.FULL
    sweeps.began(Sweep.FULL, 0.0)
    sweeps.ended(Sweep.FULL, 0.01)
    assert sweeps.next(0.5, full=False) is Sweep.WOKEN
    assert sweeps.next(0.5, full=True) is Sweep.FULL  # a wake concerns every service
    assert sweeps.next(1.0, full=False) is Sweep.TIMERS
    sweeps.began(Sweep.TIMERS, 1.0)
    sweeps.ended(Sweep.TIMERS, 0.5)  # a dear sweep: the next waits 4x its cost
    assert sweeps.next(2.5, full=False) is Sweep.WOKEN
    assert sweeps.next(3.0, full=False) is Sweep.TIMERS
    assert sweeps.next(FULL_SWEEP_EVERY, full=False) is Sweep.FULL


def test_a_timer_sweep_after_a_dear_full_one_still_comes_at_the_next_tick() -> None:
    sweeps = Sweeps()
    sweeps.began(Sweep.FULL, 0.0)
    sweeps.ended(Sweep.FULL, 0.9)  # 10,000 services
    assert sweeps.next(1.0, full=False) is Sweep.TIMERS


def test_a_dear_full_sweep_comes_at_most_a_tenth_of_the_time() -> None:
    sweeps = Sweeps()
    sweeps.began(Sweep.FULL, 0.0)
    sweeps.ended(Sweep.FULL, 2.0)  # e.g. 20,000 services
    sweeps.began(Sweep.TIMERS, 15.0)
    sweeps.ended(Sweep.TIMERS, 0.01)
    assert sweeps.next(19.9, full=False) is Sweep.TIMERS
    assert sweeps.next(20.0, full=False) is Sweep.FULL


def runtime(name: str, *, quiet_until: float) -> ServiceRuntime:
    rt = ServiceRuntime.fresh(build_service(name=name), ServiceState())
    rt.phase, rt.quiet_until, rt.quiet_state = Phase.STEADY, quiet_until, rt.state
    return rt


def test_a_timer_sweep_skips_what_stays_quiet_unless_woken() -> None:
    services = {
        "c": runtime("c", quiet_until=float("inf")),
        "a": runtime("a", quiet_until=5.0),
        "b": runtime("b", quiet_until=float("inf")),
        "d": runtime("d", quiet_until=float("inf")),
    }
    services["d"].state = dataclasses.replace(services["d"].state, blocked=True)  # moved
    assert [rt.name for rt in chosen(Sweep.TIMERS, services, {"b"}, 4.0)] == ["b", "d"]
    assert [rt.name for rt in chosen(Sweep.TIMERS, services, set(), 5.0)] == ["a", "d"]
    assert [rt.name for rt in chosen(Sweep.WOKEN, services, {"d", "b", "x"}, 5.0)] == ["b", "d"]
    assert list(chosen(Sweep.FULL, services, set(), 5.0)) == list(services.values())
    every = chosen(Sweep.TIMERS, services, set(), 4.0, skip_quiet=False)  # several instances
    assert list(every) == list(services.values())
    services["c"].phase = Phase.CONFIRMING  # a failed verification wakes it
    assert "c" not in [rt.name for rt in chosen(Sweep.TIMERS, services, set(), 4.0)]
    services["c"].phase = Phase.RETRYING
    assert "c" in [rt.name for rt in chosen(Sweep.TIMERS, services, set(), 4.0)]


def test_services_put_ahead_are_decided_next_and_once() -> None:
    a, b, c, d = (runtime(n, quiet_until=0.0) for n in "abcd")
    turns = Turns([a, b, c])
    assert turns.next() is a
    turns.put_ahead([c, d])  # their health changed while the cycle ran
    assert [turns.next(), turns.next(), turns.next(), turns.next()] == [c, d, b, None]
    turns = Turns([a])
    turns.put_ahead([a])
    turns.put_ahead([a])  # changed again after its early decision: decided again
    assert [turns.next(), turns.next(), turns.next()] == [a, a, None]
