"""Fixtures of the coordination tests: one real 3-member etcd cluster for the session, revived
before each test (a test may kill members)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.coord.etcd_cluster import EtcdCluster

TTL = 3  # seconds: the bench's short setting; etcd grants at least 2
TIMEOUT = 0.6  # lease_ttl/5, the longest the config allows


@pytest.fixture(scope="session")
def etcd_cluster() -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(3).start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster(etcd_cluster: EtcdCluster) -> EtcdCluster:
    etcd_cluster.revive()
    return etcd_cluster


async def eventually(
    predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition"
) -> Any:
    """Poll until `predicate()` is truthy; the bound is generous (a busy machine), never a
    measurement."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
