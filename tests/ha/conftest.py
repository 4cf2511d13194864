"""Fixtures of the several-instances tests: one real 3-member etcd cluster for the session
(revived before each test: a test may kill members), a fresh BIND per test (its log and serial
count the DNS writes of that test alone) and a lab of daemons on a prefix of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.coord.etcd_cluster import EtcdCluster, running_cluster
from tests.ha.lab import NAMES, HaLab
from tests.providers.bind import BindServer


@pytest.fixture(scope="session")
def ha_etcd() -> Iterator[EtcdCluster]:
    with running_cluster(3) as cluster:
        yield cluster


@pytest.fixture
def etcd(ha_etcd: EtcdCluster) -> EtcdCluster:
    ha_etcd.revive()
    return ha_etcd


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[BindServer]:
    server = BindServer(tmp_path / "bind", writers=NAMES).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def lab(etcd: EtcdCluster, bind: BindServer, tmp_path: Path) -> Iterator[HaLab]:
    """Three instances, not started."""
    with HaLab(etcd, bind, root=tmp_path) as made:
        yield made
