"""Route 53 against moto's server mode (a real HTTP peer on loopback): the contract, Route 53's
request limits, pagination and record kinds the provider must refuse or ignore.

moto's gaps: changes are INSYNC at once, batches are not atomic, no throttling.
Those paths are covered by test_route53_faults.py against the XML stub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from failover.apply import STALE_LEADER, ProviderQueue, submit_plan
from failover.config.types import RetryConfig, Route53ProviderConfig, Secret, VerifyConfig
from failover.metrics import Metrics
from failover.model import Change, RecordSet, RecordType
from failover.providers.base import ProviderError
from failover.providers.route53 import Route53Provider
from tests.providers.contract import CHECKS, Check, key
from tests.providers.route53_stub import isolate_aws_env
from tests.support import free_port

ZONE = "example.test"


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_aws_env(monkeypatch)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url: str) -> Any:
    """A plain boto3 client on a freshly reset moto holding one public zone."""
    reset = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=5).close()
    client = boto3.client(
        "route53",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.zone_id = client.create_hosted_zone(Name=f"{ZONE}.", CallerReference="tests")[
        "HostedZone"
    ]["Id"]
    return client


@pytest.fixture
async def provider(moto_url: str, aws: Any) -> AsyncIterator[Route53Provider]:
    config = Route53ProviderConfig(
        "r53",
        endpoint_url=moto_url,
        access_key_id=Secret("test"),
        secret_access_key=Secret("test"),
        timeout=5.0,
        retry=RetryConfig(attempts=3, initial=0.01, max_delay=0.05, deadline=10.0),
    )
    p = Route53Provider(config, [ZONE])
    p.errors = []  # type: ignore[attr-defined]
    p.on_error = p.errors.append  # type: ignore[attr-defined]
    await p.start()
    try:
        yield p
    finally:
        await p.aclose()


def rrsets(aws: Any) -> dict[tuple[str, str], dict[str, Any]]:
    pages = aws.get_paginator("list_resource_record_sets").paginate(HostedZoneId=aws.zone_id)
    return {(r["Name"], r["Type"]): r for page in pages for r in page["ResourceRecordSets"]}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_contract(provider: Route53Provider, check: Check) -> None:
    await check(provider, ZONE, "contract")


async def test_what_moto_stores_is_plain_upserted_record_sets(
    provider: Route53Provider, aws: Any
) -> None:
    www = key(provider, ZONE, "www", RecordType.A)
    alias = key(provider, ZONE, "alias", RecordType.CNAME)
    await provider.apply(
        [
            Change(www, 30, None, ("192.0.2.2", "192.0.2.1")),
            Change(alias, 60, None, (f"www.{ZONE}",)),
        ]
    )
    stored = rrsets(aws)
    assert stored[(f"www.{ZONE}.", "A")]["TTL"] == 30
    assert sorted(r["Value"] for r in stored[(f"www.{ZONE}.", "A")]["ResourceRecords"]) == [
        "192.0.2.1",
        "192.0.2.2",
    ]
    assert stored[(f"alias.{ZONE}.", "CNAME")]["ResourceRecords"] == [{"Value": f"www.{ZONE}."}]


async def test_mass_failover_batches_fit_the_record_limit(
    provider: Route53Provider, aws: Any
) -> None:
    changes = [
        Change(key(provider, ZONE, f"svc{i:04d}", RecordType.A), 60, None, ("192.0.2.1",))
        for i in range(1200)
    ]
    one_batch = {
        "Changes": [
            {
                "Action": "UPSERT",
                "ResourceRecordSet": {
                    "Name": f"{c.key.name}.",
                    "Type": "A",
                    "TTL": 60,
                    "ResourceRecords": [{"Value": "192.0.2.1"}],
                },
            }
            for c in changes[:501]
        ]
    }
    with pytest.raises(ClientError, match="limit of 1000"):  # the limit is real in the peer
        aws.change_resource_record_sets(HostedZoneId=aws.zone_id, ChangeBatch=one_batch)

    receipt = await provider.apply(changes)
    assert len(receipt.change_ids) == 3  # 500 + 500 + 200 UPSERTs
    await provider.wait_in_sync(receipt, 10)
    moved = [Change(c.key, 60, c.after, ("198.51.100.9",)) for c in changes]
    await provider.apply(moved)
    got = await provider.read([c.key for c in changes])  # listed over several pages
    assert set(got.values()) == {
        RecordSet(c.key.name, RecordType.A, 60, ("198.51.100.9",)) for c in changes
    }
    assert provider.errors == []  # type: ignore[attr-defined]


async def test_routing_policy_and_alias_records(
    provider: Route53Provider, aws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    weighted = {
        "Name": f"weighted.{ZONE}.",
        "Type": "A",
        "SetIdentifier": "blue",
        "Weight": 10,
        "TTL": 60,
        "ResourceRecords": [{"Value": "192.0.2.7"}],
    }
    alias = {
        "Name": f"apex-alias.{ZONE}.",
        "Type": "A",
        "AliasTarget": {
            "HostedZoneId": "Z2FDTNDATAQYW2",
            "DNSName": "d111111abcdef8.cloudfront.net.",
            "EvaluateTargetHealth": False,
        },
    }
    aws.change_resource_record_sets(
        HostedZoneId=aws.zone_id,
        ChangeBatch={
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": r} for r in (weighted, alias)]
        },
    )
    k = key(provider, ZONE, "weighted", RecordType.A)
    with caplog.at_level(logging.WARNING):
        assert await provider.read([k]) == {k: None}
    assert "SetIdentifier" in caplog.text
    with pytest.raises(ProviderError) as info:
        await provider.read([key(provider, ZONE, "apex-alias", RecordType.A)])
    assert info.value.kind == "unsupported"


async def test_unknown_hosted_zone_id_is_not_found_and_not_retried(moto_url: str, aws: Any) -> None:
    config = Route53ProviderConfig(
        "r53",
        endpoint_url=moto_url,
        hosted_zone_ids={ZONE: "ZNOSUCHZONE"},
        retry=RetryConfig(attempts=5, initial=0.01, max_delay=0.05),
    )
    p = Route53Provider(config, [ZONE])  # credentials from the environment's default chain
    errors: list[str] = []
    p.on_error = errors.append
    await p.start()
    try:
        with pytest.raises(ProviderError) as info:
            await p.read([key(p, ZONE, "www", RecordType.A)])
    finally:
        await p.aclose()
    assert info.value.kind == "not_found" and not info.value.retryable
    assert "NoSuchHostedZone" in str(info.value)
    assert errors == ["not_found"]


@contextlib.asynccontextmanager
async def paced_queue(
    moto_url: str, fence: Callable[[int], bool] | None = None, **overrides: Any
) -> AsyncIterator[tuple[Route53Provider, ProviderQueue]]:
    """A started provider on moto (verification off: moto serves no DNS) behind the apply
    queue, which takes each write's turn before it makes up the batch."""
    config = Route53ProviderConfig(
        "r53",
        endpoint_url=moto_url,
        access_key_id=Secret("test"),
        secret_access_key=Secret("test"),
        verify=VerifyConfig(enabled=False),
        **overrides,
    )
    provider = Route53Provider(config, [ZONE])
    await provider.start()
    queue = ProviderQueue("r53", provider, config, Metrics(), fence=fence)
    try:
        yield provider, queue
    finally:
        await queue.aclose()
        await provider.aclose()


async def test_a_paced_write_carries_the_changes_decided_while_it_waited(
    moto_url: str, aws: Any
) -> None:
    # one request a second: a batch made up before its token came went alone, and what was
    # decided meanwhile needed one more ChangeResourceRecordSets (and one more GetChange)
    async with paced_queue(moto_url, timeout=5.0, requests_per_second=1) as (provider, queue):
        names = ("first", "second", "third")
        changes = [
            Change(key(provider, ZONE, n, RecordType.A), 60, None, ("192.0.2.1",)) for n in names
        ]
        await provider.read([changes[0].key])  # finds the zone: the bucket is empty after it
        (first,) = submit_plan({"r53": queue}, changes[:1])
        await asyncio.sleep(0.2)  # its write waits for the next token
        later = submit_plan({"r53": queue}, changes[1:])
        outcomes = await asyncio.gather(first.accepted, *(s.accepted for s in later))
        assert all(o.ok and o.batch_size == 3 for o in outcomes)
        assert queue.calls == 1
        pacer = provider._pacer
        assert pacer.taken - pacer.refunded == 3  # the zone, its listing, one write: one turn
        assert {name for name, _ in rrsets(aws)} >= {f"{n}.{ZONE}." for n in names}


async def test_a_paced_write_holds_what_one_request_carries(moto_url: str, aws: Any) -> None:
    async with paced_queue(moto_url, timeout=10.0, requests_per_second=100) as (provider, queue):
        # 38-character values: 32,000 characters (an UPSERT counting twice) hold 421
        value = ("2001:db8:1234:5678:9abc:def0:1234:5678",)
        changes = [
            Change(key(provider, ZONE, f"svc{i:04d}", RecordType.AAAA), 60, None, value)
            for i in range(500)
        ]
        subs = [queue.submit([c]) for c in changes]  # a service each, all in one cycle
        outcomes = [await s.accepted for s in subs]
        assert [o.batch_size for o in outcomes] == [421] * 421 + [79] * 79
        assert queue.calls == 2  # one request each: none split into a full and a partial one


async def test_a_write_turn_no_request_used_goes_back(moto_url: str, aws: Any) -> None:
    async with paced_queue(moto_url, lambda token: token == 7, timeout=5.0) as (provider, queue):
        stale = Change(key(provider, ZONE, "www", RecordType.A), 60, None, ("192.0.2.1",))
        (sub,) = submit_plan({"r53": queue}, [stale], token=6)  # refused by fencing
        assert (await sub.accepted).kind == STALE_LEADER
        pacer = provider._pacer
        assert (pacer.taken, pacer.refunded) == (1, 1)  # the turn went back to the bucket
        (sub,) = submit_plan({"r53": queue}, [stale], token=7)
        assert (await sub.accepted).ok
        # the zone, then the write on a turn of its own: the old one was not kept for it
        assert (pacer.taken - pacer.refunded, pacer.refunded) == (2, 1)
