"""The JSON-gateway client against the real cluster: encodings, transactions, leases, watch,
and rotation past a dead member and a member that accepts but never answers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from failover.coord.etcd_client import EtcdClient, EtcdUnavailable, b64
from tests.coord.etcd_cluster import EtcdCluster
from tests.support import free_port


@pytest.fixture
async def client(cluster: EtcdCluster) -> AsyncIterator[EtcdClient]:
    c = EtcdClient(cluster.endpoints, timeout=0.6)
    await c.open()
    yield c
    await c.aclose()


@contextlib.asynccontextmanager
async def hung_endpoint() -> AsyncIterator[str]:
    """Accepts connections, reads, never answers (a member behind a blackholing firewall)."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(swallow, "127.0.0.1", free_port())
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


def key() -> str:
    return f"/client-test-{uuid.uuid4().hex[:8]}"


async def test_put_range_delete_with_any_bytes(client: EtcdClient) -> None:
    base = key()
    await client.put(f"{base}/a", "é\n{}")
    await client.put(f"{base}/b", b"\x00\xff")
    kvs, revision = await client.range(f"{base}/", prefix=True)
    assert [(kv.key, kv.value) for kv in kvs] == [
        (f"{base}/a", "é\n{}".encode()),
        (f"{base}/b", b"\x00\xff"),
    ]
    assert revision >= kvs[1].mod_revision > kvs[0].create_revision > 0
    assert await client.delete(f"{base}/", prefix=True) == 2
    assert (await client.range(f"{base}/", prefix=True))[0] == []


async def test_a_create_only_transaction(client: EtcdClient) -> None:
    k = b64(key())
    compare = [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}]
    put = [{"request_put": {"key": k, "value": b64("first")}}]
    assert (await client.txn(compare, put))[0] is True
    ok, responses = await client.txn(compare, put, [{"request_range": {"key": k}}])
    assert ok is False  # etcd omits `succeeded` on failure
    assert responses[0]["response_range"]["kvs"][0]["value"] == b64("first")


async def test_lease_grant_keepalive_revoke(client: EtcdClient) -> None:
    lease, ttl = await client.lease_grant(2)
    assert lease > 0 and ttl >= 2
    k = key()
    await client.put(k, "x", lease=lease)
    assert (await client.range(k))[0][0].lease == lease
    assert await client.lease_keepalive(lease) >= 2
    await client.lease_revoke(lease)
    assert await client.lease_keepalive(lease) == 0  # etcd no longer knows it
    assert (await client.range(k))[0] == []
    await client.lease_revoke(lease)  # already gone: not an error


async def test_watch_sees_puts_and_deletes(client: EtcdClient) -> None:
    base = key()
    batches: list[list[dict[str, object]]] = []
    created = asyncio.Event()

    async def watch() -> None:
        async for events in client.watch(f"{base}/", prefix=True):
            batches.append(events)
            created.set()

    task = asyncio.create_task(watch())
    await asyncio.wait_for(created.wait(), 10)
    await client.put(f"{base}/x", "1")
    await client.delete(f"{base}/x")
    for _ in range(200):
        if sum(len(b) for b in batches) >= 2:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    events = [e for batch in batches for e in batch]
    assert [e.get("type", "PUT") for e in events] == ["PUT", "DELETE"]


async def test_dead_and_hung_endpoints_are_skipped(cluster: EtcdCluster) -> None:
    async with hung_endpoint() as hung:
        closed = f"http://127.0.0.1:{free_port()}"
        client = EtcdClient([closed, hung, *cluster.endpoints], timeout=0.3)
        await client.open()
        try:
            await client.put(key(), "x")
            assert client.endpoint == cluster.endpoints[0]  # and it stays there
            assert client.rotations == 2
            await client.range(key())
            assert client.rotations == 2
        finally:
            await client.aclose()


async def test_no_endpoint_answering_names_each_problem() -> None:
    async with hung_endpoint() as hung:
        closed = f"http://127.0.0.1:{free_port()}"
        client = EtcdClient([closed, hung], timeout=0.3)
        await client.open()
        try:
            with pytest.raises(EtcdUnavailable) as info:
                await client.range("/x")
        finally:
            await client.aclose()
    assert str(info.value) == (
        f"no etcd endpoint answered ({closed}: connection refused; {hung}: no answer within 300ms)"
    )
