"""`heap.settle`: the long-lived start-up objects leave the garbage collector's full passes."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from failover import heap


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session keeps the collector's normal view


def test_settle_freezes_without_walking_the_heap() -> None:
    class Node:
        other: object = None

    gc.disable()  # no young collection may free the cycle before settle() runs
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        kept = weakref.ref(a)
        del a, b
        gc.unfreeze()
        assert heap.settle() >= 0.0
        assert gc.get_freeze_count() > 1000  # modules, classes, the configuration...
        assert kept() is not None  # frozen with the rest, not collected (see heap.settle)
        heap.settle()  # after a reload: what is new joins the frozen heap
        assert gc.get_freeze_count() > 1000
    finally:
        gc.enable()
    gc.unfreeze()
    gc.collect()
    assert kept() is None  # an ordinary cycle, once the collector walks it


def test_tune_collects_less_often_and_paused_collects_nothing() -> None:
    before = gc.get_threshold()
    try:
        heap.tune()
        young, middle, full = gc.get_threshold()
        assert young >= heap.YOUNG_THRESHOLD and full >= heap.FULL_EVERY
        assert middle <= heap.MIDDLE_EVERY  # short middle-generation walks
        with heap.paused():
            assert not gc.isenabled()
        assert gc.isenabled()
    finally:
        gc.set_threshold(*before)


async def test_freeze_when_waits_for_ready() -> None:
    gc.unfreeze()
    ready = asyncio.Event()
    task = asyncio.create_task(heap.freeze_when(ready.is_set, poll=0.01))
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() == 0 and not task.done()
    ready.set()
    await asyncio.wait_for(task, timeout=30)
    assert gc.get_freeze_count() > 1000


@pytest.fixture
def collecting() -> None:
    """The collector runs and nothing holds it (conftest's `own_heap` restores that after
    each test, whatever the test held)."""
    assert gc.isenabled() and heap._holders == 0


def test_a_burst_holds_collections_and_freezes_what_it_left(collecting: None) -> None:
    hold = heap.BurstHold()
    hold.update(heap.BURST_CHANGES - 1, 0.0)  # the odd switch: collected as usual
    assert gc.isenabled() and hold.holds == 0
    hold.update(heap.BURST_CHANGES, 1.0)
    assert not gc.isenabled() and hold.since == 1.0 and hold.holds == 1
    survivor = [0]  # made during the burst, alive after it
    assert any(o is survivor for o in gc.get_objects())  # a collector pass would walk it
    hold.update(heap.BURST_CHANGES * 10, 2.0)  # still going: still held
    assert not gc.isenabled()
    hold.update(0, 3.0)  # the last change ended
    assert gc.isenabled() and hold.since is None
    assert not any(o is survivor for o in gc.get_objects())  # frozen: no pass walks it
    hold.release()  # idempotent
    assert gc.isenabled()


def test_a_burst_that_lasts_is_frozen_and_not_held_again_until_it_ebbs(collecting: None) -> None:
    """A burst that does not end (a provider hung with thousands of changes in flight) is held
    BURST_HOLD_MAX seconds, then collected as usual: the cyclic garbage a hold leaves behind
    is that of BURST_HOLD_MAX, not of the whole outage."""
    hold = heap.BurstHold()
    hold.update(heap.BURST_CHANGES, 10.0)
    hold.update(heap.BURST_CHANGES, 10.0 + heap.BURST_HOLD_MAX)
    assert gc.isenabled() and hold.since is None
    hold.update(heap.BURST_CHANGES * 2, 11.0 + heap.BURST_HOLD_MAX)
    assert gc.isenabled() and hold.holds == 1  # still the same burst
    hold.update(heap.BURST_CHANGES - 1, 12.0 + heap.BURST_HOLD_MAX)  # it ebbs ...
    hold.update(heap.BURST_CHANGES, 13.0 + heap.BURST_HOLD_MAX)  # ... a new one is held
    assert not gc.isenabled() and hold.holds == 2
    hold.release()
    assert gc.isenabled()


def test_a_hold_and_paused_overlap_and_the_collector_runs_after_both(collecting: None) -> None:
    """`paused()` runs in a worker thread while a hold begins or ends on the loop: whichever
    ends last turns the collector back on, never the first."""
    hold = heap.BurstHold()
    with heap.paused():
        hold.update(heap.BURST_CHANGES, 0.0)  # a burst begins during a reload's parse
        assert hold.since == 0.0
    assert not gc.isenabled()  # the hold still holds
    hold.update(0, 1.0)
    assert gc.isenabled()
    hold.update(heap.BURST_CHANGES, 2.0)
    with heap.paused():
        hold.update(0, 3.0)  # the burst ends during the parse
        assert not gc.isenabled()  # the parse still holds
    assert gc.isenabled()


def test_a_closed_hold_takes_no_new_burst(collecting: None) -> None:
    """The engine stops: a cycle that ends afterwards must not begin a hold nobody ends."""
    hold = heap.BurstHold()
    hold.update(heap.BURST_CHANGES, 0.0)
    hold.close()
    assert gc.isenabled()
    hold.update(heap.BURST_CHANGES, 1.0)
    assert gc.isenabled() and hold.holds == 1
