"""Route 53 against the local REST/XML stub: the contract with PENDING changes, retries of
Throttling/PriorRequestNotComplete/5xx, no retry of InvalidChangeBatch, GetChange polling,
hung endpoints cut without blocking the loop, batching limits, zone lookup, secrets."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from failover.config.types import RetryConfig, Route53ProviderConfig, Secret
from failover.model import Change, RecordKey, RecordSet, RecordType
from failover.providers.base import ProviderError, Receipt
from failover.providers.route53 import MAX_BATCH_CHARS, MAX_BATCH_RECORDS, Route53Provider
from tests.providers.contract import CHECKS, Check, key
from tests.providers.route53_stub import (
    HUNG,
    PRIOR,
    THROTTLING,
    UNAVAILABLE,
    Fault,
    Route53Stub,
    isolate_aws_env,
)

ZONE, ZONE_ID = "example.test", "ZSTUBEXAMPLE"
OTHER, OTHER_ID = "other.test", "ZSTUBOTHER"
FAST = RetryConfig(attempts=4, initial=0.01, max_delay=0.05, deadline=10.0)
KEY_ID, SECRET_KEY, TOKEN = "AKIDROUTE53TEST", "s3cr3t-access-key-value", "t0ken-session-value"

Make = Callable[..., Awaitable[Route53Provider]]


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_aws_env(monkeypatch)


@pytest.fixture
async def stub() -> AsyncIterator[Route53Stub]:
    s = Route53Stub()
    await s.start()
    s.add_zone(ZONE, zone_id=ZONE_ID)
    s.add_zone(OTHER, zone_id=OTHER_ID)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def make(stub: Route53Stub) -> AsyncIterator[Make]:
    """Started providers on the stub with fast polls; `errors` collects on_error kinds."""
    made: list[Route53Provider] = []

    async def factory(**overrides: Any) -> Route53Provider:
        config = Route53ProviderConfig(
            "r53",
            endpoint_url=stub.url,
            access_key_id=Secret(KEY_ID),
            secret_access_key=Secret(SECRET_KEY),
            timeout=2.0,
            retry=FAST,
        )
        provider = Route53Provider(replace(config, **overrides), [ZONE, OTHER])
        provider.poll_initial, provider.poll_max = 0.02, 0.05
        provider.errors = []  # type: ignore[attr-defined]
        provider.on_error = provider.errors.append  # type: ignore[attr-defined]
        await provider.start()
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        await provider.aclose()


def a(p: Route53Provider, label: str, zone: str = ZONE) -> RecordKey:
    return key(p, zone, label, RecordType.A)


def upsert(k: RecordKey, *values: str, ttl: int = 60) -> Change:
    return Change(k, ttl, None, values)


# -- contract, PENDING -> INSYNC ------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_contract_with_pending_changes(stub: Route53Stub, make: Make, check: Check) -> None:
    stub.pending_polls = 2
    await check(await make(), ZONE, "contract")
    assert stub.count("GetChange") >= 3 * stub.count("ChangeResourceRecordSets")


async def test_wait_polls_until_insync_then_times_out_when_never(
    stub: Route53Stub, make: Make
) -> None:
    p = await make()
    stub.pending_polls = 3
    receipt = await p.apply([upsert(a(p, "www"), "192.0.2.1")])
    assert len(receipt.change_ids) == 1 and receipt.change_ids[0].startswith("C")
    await p.wait_in_sync(receipt, 10)
    assert stub.count("GetChange") == 4

    stub.pending_polls = 10_000
    receipt = await p.apply([upsert(a(p, "www"), "192.0.2.2")])
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        await p.wait_in_sync(receipt, 0.3)
    assert 0.25 < time.monotonic() - started < 2
    assert info.value.kind == "timeout" and info.value.counted
    assert p.errors == ["timeout"]  # type: ignore[attr-defined]

    capped = await make(change_timeout=0.2)  # the config deadline caps a longer argument
    started = time.monotonic()
    with pytest.raises(ProviderError):
        await capped.wait_in_sync(receipt, 30)
    assert time.monotonic() - started < 2


async def test_later_changes_of_a_zone_are_polled_after_the_earlier_one(
    stub: Route53Stub, make: Make
) -> None:
    """Route 53 keeps a change PENDING for a while and applies a zone's changes in turn:
    polling every pending batch of a mass failover took the account's rate from its writes."""
    p = await make(requests_per_second=1000)  # the pacing would hide the count
    p.poll_initial, p.poll_max = 0.02, 0.4
    stub.pending_for = 0.6
    alone = await p.apply([upsert(a(p, "alone"), "192.0.2.1")])
    await p.wait_in_sync(alone, 10)
    one = stub.count("GetChange")  # what one change pending 0.6 s costs
    receipts = [await p.apply([upsert(a(p, f"w{i}"), "192.0.2.2")]) for i in range(4)]
    await asyncio.gather(*(p.wait_in_sync(r, 10) for r in receipts))
    later = stub.count("GetChange") - one
    # the first as many as alone; each later one at once, every poll_max, once woken (17
    # measured; polled like the first, the four cost 4 x 8 = 32)
    assert one >= 5 and later <= one + 3 * 4, (one, later)
    assert p._unsynced == {}


async def test_a_stuck_earlier_change_delays_a_later_one_by_poll_max_at_most(
    stub: Route53Stub, make: Make
) -> None:
    p = await make()
    p.poll_initial, p.poll_max = 0.02, 0.3
    stub.pending_polls = 10_000
    stuck = await p.apply([upsert(a(p, "stuck"), "192.0.2.1")])
    stub.pending_polls, stub.pending_for = 0, 0.2
    later = await p.apply([upsert(a(p, "later"), "192.0.2.2")])
    waiting = asyncio.create_task(p.wait_in_sync(stuck, 30))
    await asyncio.sleep(0.05)  # the stuck change is being polled, first in line
    started = time.monotonic()
    await p.wait_in_sync(later, 10)
    assert time.monotonic() - started < 2.0  # its own INSYNC at the next poll_max, not 30 s
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert p._unsynced == {}


async def test_unknown_change_is_not_found(make: Make) -> None:
    p = await make()
    with pytest.raises(ProviderError) as info:
        await p.wait_in_sync(Receipt("r53", ("CNOSUCHCHANGE",)), 5)
    assert info.value.kind == "not_found" and not info.value.retryable
    assert p.errors == ["not_found"]  # type: ignore[attr-defined]


# -- retries --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (THROTTLING, "throttling"),
        (PRIOR, "prior_request_not_complete"),
        (UNAVAILABLE, "server"),
        (Fault(500, "InternalFailure", "internal error"), "server"),
        (Fault(429, "TooManyRequests", "slow down"), "throttling"),
    ],
)
async def test_retryable_errors_are_retried_and_counted(
    stub: Route53Stub, make: Make, fault: Fault, kind: str
) -> None:
    p = await make()
    stub.fail("ChangeResourceRecordSets", fault, fault)
    stub.fail("ListResourceRecordSets", fault)
    www = a(p, "www")
    await p.wait_in_sync(await p.apply([upsert(www, "192.0.2.1")]), 5)
    assert stub.count("ChangeResourceRecordSets") == 3  # botocore itself did not retry
    assert (await p.read([www]))[www] == RecordSet(www.name, RecordType.A, 60, ("192.0.2.1",))
    assert stub.count("ListResourceRecordSets") == 2
    assert p.errors == [kind] * 3  # type: ignore[attr-defined]


async def test_retries_stop_at_the_policy_limit(stub: Route53Stub, make: Make) -> None:
    p = await make(retry=replace(FAST, attempts=3))
    stub.fail("ChangeResourceRecordSets", *[THROTTLING] * 5)
    with pytest.raises(ProviderError) as info:
        await p.apply([upsert(a(p, "www"), "192.0.2.1")])
    assert info.value.kind == "throttling" and info.value.retryable and info.value.counted
    assert "Throttling: Rate exceeded" in str(info.value)
    assert stub.count("ChangeResourceRecordSets") == 3
    assert p.errors == ["throttling"] * 3  # type: ignore[attr-defined]


async def test_a_write_turn_serves_the_first_attempt_and_a_retry_pays_its_own(
    stub: Route53Stub, make: Make
) -> None:
    p = await make()
    await p.read([a(p, "warm")])  # the zone lookup and one listing: 2 tokens
    stub.fail("ChangeResourceRecordSets", THROTTLING)
    async with p.write_turn(ZONE):  # what the apply queue does before it makes up a batch
        assert p._pacer.taken == 3
        await p.apply([upsert(a(p, "www"), "192.0.2.1")])
    assert stub.count("ChangeResourceRecordSets") == 2
    assert (p._pacer.taken, p._pacer.refunded) == (4, 0)  # the turn, then the retry's token


async def test_requests_are_paced_to_the_account_limit(stub: Route53Stub, make: Make) -> None:
    """Route 53 allows 5 requests per second per account: a burst of calls (a mass failover's
    lookups) waits in the provider's token bucket instead of drawing Throttling errors."""
    p = await make(requests_per_second=5)
    await p.read([a(p, "warm")])  # the zone lookup, out of the way
    await asyncio.sleep(1.0)  # the bucket is full again
    stub.arrivals.clear()
    keys = [a(p, f"k{i}") for i in range(15)]
    await asyncio.gather(*(p.read([k]) for k in keys))
    arrivals = stub.arrivals
    assert len(arrivals) == 15
    # 5 at once (the burst), then one per 0.2 s: never more than 5 + 5 within one second
    assert all(sum(1 for t in arrivals if s <= t < s + 1.0) <= 10 for s in arrivals)
    assert arrivals[-1] - arrivals[0] >= 1.5
    assert p.errors == []  # type: ignore[attr-defined]


async def test_invalid_change_batch_is_not_retried_and_nothing_applies(
    stub: Route53Stub, make: Make
) -> None:
    p = await make()
    await p.apply([upsert(a(p, "www"), "192.0.2.1")])
    batch = [
        upsert(a(p, "first"), "192.0.2.5"),
        Change(key(p, ZONE, "www", RecordType.CNAME), 60, None, ("elsewhere.example.net",)),
    ]
    with pytest.raises(ProviderError) as info:
        await p.apply(batch)
    assert info.value.kind == "invalid" and not info.value.retryable
    assert "conflicts with other records" in str(info.value)
    assert stub.count("ChangeResourceRecordSets") == 2
    assert p.errors == ["invalid"]  # type: ignore[attr-defined]
    first = a(p, "first")
    assert (await p.read([first]))[first] is None  # the batch was atomic


@pytest.mark.parametrize(
    "change",
    [
        lambda p: upsert(RecordKey("someone-else", ZONE, f"x.{ZONE}", RecordType.A), "192.0.2.1"),
        lambda p: upsert(RecordKey("r53", ZONE, "x.example.net", RecordType.A), "192.0.2.1"),
        lambda p: upsert(a(p, "x"), "not-an-ip"),
        lambda p: upsert(a(p, "x")),
        lambda p: upsert(a(p, "x"), "192.0.2.1", ttl=-1),
        lambda p: Change(RecordKey("r53", ZONE, ZONE, RecordType.CNAME), 60, None, ("a.test",)),
        lambda p: Change(key(p, ZONE, "x", RecordType.CNAME), 60, None, ("a.test", "b.test")),
        lambda p: upsert(
            key(p, ZONE, "x", RecordType.AAAA), *(f"2001:db8::{i:x}" for i in range(501))
        ),
    ],
    ids=["provider", "outside", "value", "empty", "ttl", "apex-cname", "two-cnames", "too-big"],
)
async def test_invalid_changes_fail_before_any_call(
    stub: Route53Stub, make: Make, change: Callable[[Route53Provider], Change]
) -> None:
    p = await make()
    with pytest.raises(ProviderError) as info:
        await p.apply([upsert(a(p, "ok"), "192.0.2.1"), change(p)])
    assert info.value.kind == "invalid" and not info.value.retryable
    assert stub.count("ChangeResourceRecordSets") == 0


async def test_connection_refused_is_retryable(make: Make) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: refused
        p = await make(endpoint_url=url, retry=replace(FAST, attempts=2))
        with pytest.raises(ProviderError) as info:
            await p.read([a(p, "www")])
    assert info.value.kind == "connection" and info.value.retryable
    assert p.errors == ["connection", "connection"]  # type: ignore[attr-defined]


# -- timeouts and isolation -----------------------------------------------------------------------


async def test_hung_endpoint_is_cut_by_the_timeout_without_blocking_the_loop(
    stub: Route53Stub, make: Make
) -> None:
    p = await make(timeout=0.5, retry=replace(FAST, attempts=2))
    await p.read([a(p, "warm")])  # zone lookup done: only the record listing will hang
    stub.fail("ListResourceRecordSets", HUNG, HUNG)
    loop = asyncio.get_running_loop()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.05)

    task = asyncio.create_task(ticker())
    started = loop.time()
    with pytest.raises(ProviderError) as info:
        await p.read([a(p, "www")])
    elapsed = loop.time() - started
    task.cancel()
    assert info.value.kind == "timeout" and info.value.retryable
    assert "no answer within 0.5s" in str(info.value)
    assert 0.9 < elapsed < 3.0  # two attempts of 0.5 s and a short backoff
    assert p.errors == ["timeout", "timeout"]  # type: ignore[attr-defined]
    # The loop kept turning: ~20 ticks in the ~1 s the call took. A call that held the loop would
    # leave at most one tick per attempt; the count (not the largest gap) tolerates one stall of
    # the shared CI machine, such as a full collection of the test process's heap.
    assert len(ticks) >= 10, ticks


async def test_a_hung_zone_does_not_delay_the_others(stub: Route53Stub, make: Make) -> None:
    p = await make(timeout=4.0, retry=replace(FAST, attempts=1))
    await p.read([a(p, "warm"), a(p, "warm", OTHER)])
    stub.hung_zones.add(ZONE_ID)
    started = time.monotonic()
    apply = asyncio.create_task(
        p.apply([upsert(a(p, "www"), "192.0.2.1"), upsert(a(p, "www", OTHER), "192.0.2.2")])
    )
    await asyncio.wait_for(stub.changed.wait(), 5)
    assert time.monotonic() - started < 2.0  # the other zone did not wait for the 4 s timeout
    with pytest.raises(ProviderError) as info:
        await apply
    assert info.value.kind == "timeout" and info.value.counted
    assert f"{ZONE}:" in str(info.value) and f"(done: {OTHER})" in str(info.value)
    www = a(p, "www", OTHER)
    assert (await p.read([www]))[www] is not None


async def test_aclose_does_not_wait_for_a_hung_call(stub: Route53Stub, make: Make) -> None:
    p = await make(timeout=5.0, retry=replace(FAST, attempts=1))
    stub.fail("ListHostedZonesByName", HUNG)
    read = asyncio.create_task(p.read([a(p, "www")]))
    await asyncio.wait_for(stub.called.wait(), 5)
    read.cancel()
    started = time.monotonic()
    await p.aclose()
    assert time.monotonic() - started < 2.5  # far from the 5 s timeout it would otherwise wait
    with pytest.raises(asyncio.CancelledError):
        await read


# -- batching -------------------------------------------------------------------------------------


async def test_mass_change_is_split_only_at_route53_limits(stub: Route53Stub, make: Make) -> None:
    p = await make()
    many = [upsert(a(p, f"svc{i}"), f"192.0.2.{i % 250 + 1}") for i in range(700)]
    other = [upsert(a(p, f"svc{i}", OTHER), "198.51.100.1") for i in range(3)]
    receipt = await p.apply([*many, *other])
    sizes = sorted(len(b) for b in stub.batches)
    assert sizes == [3, 200, 500]  # UPSERT counts twice: 500 single-value sets per request
    assert len(receipt.change_ids) == 3
    await p.wait_in_sync(receipt, 5)

    stub.batches.clear()
    long_name = ".".join(["x" * 60] * 3) + ".example.net"  # ~196 characters per value
    cnames = [
        Change(key(p, ZONE, f"alias{i}", RecordType.CNAME), 60, None, (long_name,))
        for i in range(150)
    ]
    await p.apply(cnames)
    assert len(stub.batches) == 2
    for batch in stub.batches:
        values = [r["Value"] for c in batch for r in c["ResourceRecordSet"]["ResourceRecords"]]
        assert 2 * sum(map(len, values)) <= MAX_BATCH_CHARS
        assert 2 * len(values) <= MAX_BATCH_RECORDS
        assert all(v.endswith(".") for v in values)  # CNAME targets are absolute

    keys = [c.key for c in many]
    calls = stub.count("ListResourceRecordSets")
    got = await p.read(keys)
    assert all(got[c.key] == RecordSet(c.key.name, RecordType.A, 60, c.after) for c in many)
    # the zone is listed (3 pages of 300) instead of 700 single lookups
    assert stub.count("ListResourceRecordSets") - calls <= 4


# -- reading --------------------------------------------------------------------------------------


async def test_routing_policy_records_are_ignored_and_aliases_refused(
    stub: Route53Stub, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    p = await make()
    for ident in ("blue", "green"):
        stub.put(
            ZONE_ID,
            {
                "Name": f"weighted.{ZONE}.",
                "Type": "A",
                "SetIdentifier": ident,
                "TTL": 60,
                "ResourceRecords": [{"Value": "192.0.2.7"}],
            },
        )
    stub.put(
        ZONE_ID,
        {
            "Name": f"alias.{ZONE}.",
            "Type": "A",
            "AliasTarget": {"HostedZoneId": "Z2FDTNDATAQYW2", "DNSName": "d111.cloudfront.net."},
        },
    )
    weighted = a(p, "weighted")
    with caplog.at_level(logging.WARNING):
        assert await p.read([weighted]) == {weighted: None}
        assert await p.read([weighted]) == {weighted: None}
    warnings = [r for r in caplog.records if "SetIdentifier" in r.getMessage()]
    assert len(warnings) == 1  # said once, not at every resync
    with pytest.raises(ProviderError) as info:
        await p.read([a(p, "alias")])
    assert info.value.kind == "unsupported" and "alias" in str(info.value)


async def test_few_keys_in_a_big_zone_are_looked_up_one_by_one(
    stub: Route53Stub, make: Make
) -> None:
    p = await make()
    await p.apply([upsert(a(p, f"svc{i}"), "192.0.2.1") for i in range(700)])
    p = await make()  # a fresh provider learns the zone's size (3 pages) at lookup
    before = stub.count("ListResourceRecordSets")
    k = key(p, ZONE, "svc3", RecordType.A)
    nope = key(p, ZONE, "svc3", RecordType.AAAA)
    assert await p.read([k, nope]) == {
        k: RecordSet(k.name, RecordType.A, 60, ("192.0.2.1",)),
        nope: None,
    }
    assert stub.count("ListResourceRecordSets") - before == 2


# -- hosted zones ---------------------------------------------------------------------------------


async def test_zone_lookup_prefers_public_and_is_cached(stub: Route53Stub, make: Make) -> None:
    stub.zones.clear()
    private = stub.add_zone(ZONE, private=True)
    public = stub.add_zone(ZONE)
    stub.add_zone(f"sub.{ZONE}")  # listed after ours by name: not a match
    p = await make()
    await p.apply([upsert(a(p, "www"), "192.0.2.1")])
    await p.read([a(p, "www"), a(p, "other")])
    assert stub.count("ListHostedZonesByName") == 1
    assert stub.zones[public].rrsets and not stub.zones[private].rrsets


async def test_zone_lookup_failures(
    stub: Route53Stub, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    stub.zones.clear()
    p = await make()
    with pytest.raises(ProviderError) as info:
        await p.read([a(p, "www")])
    assert info.value.kind == "not_found" and ZONE in str(info.value)

    stub.add_zone(ZONE, private=True)
    with caplog.at_level(logging.WARNING):
        assert await p.read([a(p, "www")]) == {a(p, "www"): None}
    assert "private hosted zone" in caplog.text

    stub.zones.clear()
    stub.add_zone(ZONE, zone_id="ZONE1")
    stub.add_zone(ZONE, zone_id="ZONE2")
    q = await make()
    with pytest.raises(ProviderError) as info:
        await q.read([a(q, "www")])
    assert info.value.kind == "config" and "hosted_zone_ids" in str(info.value)

    chosen = await make(hosted_zone_ids={ZONE: "ZONE2"})
    await chosen.apply([upsert(a(chosen, "www"), "192.0.2.1")])
    assert stub.zones["ZONE2"].rrsets and not stub.zones["ZONE1"].rrsets

    wrong = await make(hosted_zone_ids={ZONE: OTHER_ID})
    stub.add_zone(OTHER, zone_id=OTHER_ID)
    with pytest.raises(ProviderError) as info:
        await wrong.read([a(wrong, "www")])
    assert info.value.kind == "config" and f"is {OTHER}, not {ZONE}" in str(info.value)


# -- credentials ----------------------------------------------------------------------------------


async def test_secrets_never_leak_into_errors_or_logs(
    stub: Route53Stub, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    p = await make(session_token=Secret(TOKEN))
    stub.fail(
        "ListHostedZonesByName",
        Fault(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid: {key_id} {token}",
        ),
    )
    with pytest.raises(ProviderError) as info:
        await p.read([a(p, "www")])
    assert stub.key_ids == {KEY_ID}  # the configured key really signed the request
    assert info.value.kind == "auth" and not info.value.retryable
    assert "InvalidClientTokenId" in str(info.value) and "***" in str(info.value)
    shown = " ".join([str(info.value), repr(info.value), repr(p.config), caplog.text])
    for secret in (KEY_ID, SECRET_KEY, TOKEN):
        assert secret not in shown


async def test_default_credential_chain_and_unknown_profile(
    stub: Route53Stub, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    p = await make(access_key_id=None, secret_access_key=None)
    await p.read([a(p, "www")])
    assert stub.key_ids == {"AKIDFROMENV"}

    with pytest.raises(ProviderError) as info:
        await make(access_key_id=None, secret_access_key=None, profile="nope")
    assert info.value.kind == "config" and "nope" in str(info.value)
