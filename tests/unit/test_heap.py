"""`heap.settle`: the long-lived start-up objects leave the garbage collector's full passes."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from failover import heap


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session keeps the collector's normal view


def test_settle_freezes_what_survives_and_collects_cycles_first() -> None:
    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    gone = weakref.ref(a)
    del a, b
    gc.unfreeze()
    assert heap.settle() >= 0.0
    assert gc.get_freeze_count() > 1000  # modules, classes, the configuration...
    assert gone() is None  # the cycle was collected, not frozen
    heap.settle()  # after a reload: unfreezes, collects, freezes again
    assert gc.get_freeze_count() > 1000
