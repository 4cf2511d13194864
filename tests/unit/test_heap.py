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
