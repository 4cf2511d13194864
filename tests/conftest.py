"""Peers several test folders share: a fresh BIND per test, and a one-member etcd."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.coord.etcd_cluster import EtcdCluster, running_cluster
from tests.providers.bind import BindServer


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
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    yield
    if gc.get_threshold() != thresholds or gc.get_freeze_count() != frozen:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc.collect()
