"""Fixtures of the coordination tests: one real 3-member etcd cluster for the session, revived
before each test (a test may kill members), and coordinators on a prefix of their own."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from failover.config.types import EtcdConfig, Secret
from failover.coord.etcd import EtcdCoordinator
from failover.store import Store
from tests.coord.etcd_cluster import EtcdCluster, running_cluster

TTL = 3  # seconds: the bench's short setting; etcd grants at least 2
TIMEOUT = 0.6  # lease_ttl/5, the longest the config allows


@pytest.fixture(scope="session")
def etcd_cluster() -> Iterator[EtcdCluster]:
    with running_cluster(3) as cluster:
        yield cluster


@pytest.fixture
def cluster(etcd_cluster: EtcdCluster) -> EtcdCluster:
    etcd_cluster.revive()
    return etcd_cluster


MakeCoordinator = Callable[..., EtcdCoordinator]


@pytest.fixture
async def make(cluster: EtcdCluster, tmp_path: Path) -> AsyncIterator[MakeCoordinator]:
    """`make(name, endpoints=…, username=…, password=…)`: a coordinator (not started) on this
    test's own prefix; every one made is closed at teardown."""
    prefix = f"/test-{uuid.uuid4().hex[:8]}"
    made: list[EtcdCoordinator] = []

    def build(
        name: str,
        *,
        endpoints: list[str] | None = None,
        store: Store | None = None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> EtcdCoordinator:
        config = EtcdConfig(
            tuple(endpoints or cluster.endpoints),
            prefix=prefix,
            lease_ttl=TTL,
            timeout=TIMEOUT,
            username=username,
            password=Secret(password) if password is not None else None,
        )
        coord = EtcdCoordinator(name, store or Store(tmp_path / name), config, **kwargs)
        made.append(coord)
        return coord

    yield build
    await asyncio.gather(*(c.aclose(revoke=False) for c in made), return_exceptions=True)


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
