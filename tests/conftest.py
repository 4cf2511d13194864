"""Peers several test folders share: a fresh BIND per test, and a one-member etcd."""

from __future__ import annotations

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
