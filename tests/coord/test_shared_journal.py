"""The history shared in etcd: every instance's entries, in time order, bounded, never lost to a
short etcd outage, and kept apart from the coordinator's keys."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from failover.config.types import EtcdConfig
from failover.coord.etcd_client import EtcdError
from failover.coord.shared_journal import SharedJournal, journal_dir, merge
from tests.coord.conftest import TIMEOUT, TTL, eventually
from tests.coord.etcd_cluster import EtcdCluster

MakeShared = Callable[..., SharedJournal]


@pytest.fixture
async def make(cluster: EtcdCluster) -> AsyncIterator[MakeShared]:
    prefix = f"/test-{uuid.uuid4().hex[:8]}"
    made: list[SharedJournal] = []

    def build(instance: str, **kwargs: Any) -> SharedJournal:
        config = EtcdConfig(tuple(cluster.endpoints), prefix=prefix, lease_ttl=TTL, timeout=TIMEOUT)
        shared = SharedJournal(config, instance, **kwargs)
        made.append(shared)
        return shared

    yield build
    for shared in made:
        await shared.aclose()


def entry(instance: str, n: int, ts: float, service: str = "shop") -> dict[str, Any]:
    return {"instance": instance, "ts": ts, "kind": "switch", "service": service, "n": n}


async def test_entries_of_every_instance_are_read_back_in_time_order(
    make: MakeShared, cluster: EtcdCluster
) -> None:
    a, b = make("fo-a"), make("fo-b")
    await a.start()
    await b.start()
    now = time.time()
    a.publish(entry("fo-a", 1, now))
    b.publish(entry("fo-b", 2, now + 1))
    a.publish(entry("fo-a", 3, now + 2, service="www"))
    await eventually(lambda: a.waiting == 0 and b.waiting == 0, what="the copies")
    seen = await b.read()
    assert [e["n"] for e in seen] == [1, 2, 3]
    assert [e["n"] for e in await a.read("shop")] == [1, 2]
    assert a.problem is None and a.dropped == 0
    prefix = a.dir.removesuffix(".journal/")
    assert a.dir == journal_dir(prefix)
    # beside the coordinator's keys, which it reads whole on every change: never among them
    inside = cluster.etcdctl("get", "--prefix", prefix + "/", "--keys-only")
    assert inside.returncode == 0 and inside.stdout.strip() == ""


async def test_only_the_newest_entries_are_kept(make: MakeShared) -> None:
    shared = make("fo-a", retain=10)
    await shared.start()
    now = time.time()
    for n in range(30):
        shared.publish(entry("fo-a", n, now + n))
    await eventually(lambda: shared.waiting == 0, what="the copies")
    await shared.trim()
    assert [e["n"] for e in await shared.read()] == list(range(20, 30))


async def test_entries_wait_while_etcd_does_not_answer(
    make: MakeShared, cluster: EtcdCluster
) -> None:
    shared = make("fo-a")
    await shared.start()
    for index in range(3):
        cluster.kill(index)
    shared.publish(entry("fo-a", 1, time.time()))
    await eventually(lambda: shared.problem is not None, what="the failure to be seen")
    assert shared.waiting == 1
    with pytest.raises(EtcdError):
        await shared.read()
    cluster.revive()
    await eventually(lambda: shared.waiting == 0, timeout=40, what="the entry to be sent")
    assert [e["n"] for e in await shared.read()] == [1]
    assert shared.problem is None


def test_merge_shows_each_entry_once() -> None:
    mine = [entry("fo-b", 1, 10.0), entry("fo-b", 3, 30.0)]
    shared = [entry("fo-a", 2, 20.0), entry("fo-b", 3, 30.0), entry("fo-a", 4, 40.0)]
    assert [e["n"] for e in merge(mine, shared)] == [1, 2, 3, 4]
    assert [e["n"] for e in merge(mine, shared, limit=2)] == [3, 4]
