"""Peers several test folders share: a fresh BIND per test, and a one-member etcd."""

from __future__ import annotations

import gc
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover import heap
from tests.coord.etcd_cluster import EtcdCluster, running_cluster
from tests.providers.bind import BindServer


def _take_back_interrupts() -> None:
    """A shell without job control starts a command run in the background (`./scripts/test &`)
    with SIGINT and SIGQUIT ignored, and an ignored signal stays ignored in every child: the
    CLI never saw the SIGINT a test sends it (as an operator's Ctrl-C) and hung. The suite puts
    the defaults back, so every process it starts gets them whatever started the suite."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)


_take_back_interrupts()


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[BindServer]:
    """A named of its own (modules that share one across tests define a wider `bind`)."""
    server = BindServer(tmp_path / "bind").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def etcd_single() -> Iterator[EtcdCluster]:
    with running_cluster(1) as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def own_heap() -> Iterator[None]:
    """A daemon run in this process tunes and freezes the garbage collector (failover.heap) as
    it would its own process. Each test gets the collector back as it found it, and what such
    a test left behind is collected at its own teardown: an unclosed transport it leaked then
    fails it, not whichever later test the collector happened to run in."""
    thresholds, frozen, enabled = gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()
    yield
    if heap._holders:  # a burst hold an engine left behind (failover.heap.BurstHold)
        heap._holders = 0
    if gc.isenabled() != enabled:
        (gc.enable if enabled else gc.disable)()
    if gc.get_threshold() != thresholds or gc.get_freeze_count() != frozen:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc.collect()
