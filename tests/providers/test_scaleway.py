"""The scaleway provider against the local fake API: contract, paging, batching and faults."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from failover.config.types import RetryConfig, ScalewayProviderConfig, Secret
from failover.model import Change, RecordKey, RecordSet, RecordType
from failover.providers.base import ProviderError
from failover.providers.registry import factory
from failover.providers.scaleway import (
    ScalewayProvider,
    describe_error,
    parse_retry_after,
)
from failover.providers.scaleway import (
    create as scaleway_create,
)
from tests.providers.contract import CHECKS, Check, key
from tests.providers.fake_scaleway import API, FakeScaleway
from tests.support import free_port

TOKEN = "3f1c2a7e-9b4d-4c21-8e0f-5a6b7c8d9e0f"
READ_ONLY = "0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d"
ZONE, OTHER = "example.test", "other.test"
FAST = RetryConfig(attempts=3, initial=0.01, max_delay=0.05, deadline=10.0)


class Provider(ScalewayProvider):
    """Records the error kinds counted through on_error."""

    errors: list[str]


def make(fake: FakeScaleway, *, token: str | None = TOKEN, **overrides: Any) -> Provider:
    options: dict[str, Any] = {"timeout": 2.0, "retry": FAST, "page_size": 7, **overrides}
    config = ScalewayProviderConfig(
        "scw", api_url=fake.url, secret_key=Secret(token) if token else None, **options
    )
    # missing.test: a record's zone that the key cannot see (the provider is told it)
    p = Provider(config, [ZONE, OTHER, "missing.test"], environ={})
    p.errors = []
    p.on_error = p.errors.append
    p.poll_interval = 0.01
    return p


@pytest.fixture
async def fake() -> AsyncIterator[FakeScaleway]:
    f = FakeScaleway({TOKEN: "write", READ_ONLY: "read"}, pending_polls=1)
    f.add_zone(ZONE)
    f.add_zone(OTHER)
    await f.start()
    try:
        yield f
    finally:
        await f.close()


@pytest.fixture
async def provider(fake: FakeScaleway) -> AsyncIterator[Provider]:
    p = make(fake)
    await p.start()
    try:
        yield p
    finally:
        await p.aclose()


def a(p: ScalewayProvider, label: str, zone: str = ZONE) -> RecordKey:
    return key(p, zone, label, RecordType.A)


# -- contract and wire format ---------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_contract(fake: FakeScaleway, check: Check) -> None:
    p = make(fake, page_size=1)  # every RRset of two values takes two pages
    await p.start()
    try:
        await check(p, ZONE, "contract")
    finally:
        await p.aclose()
    assert p.errors == []
    assert all(seen.authenticated for seen in fake.seen)
    for seen in fake.calls("PATCH"):
        assert {kind for change in seen.body["changes"] for kind in change} == {"set"}
    if check.__name__ == "check_create_and_read_back":
        assert any(s.query.get("page") == "2" for s in fake.calls("GET", "/records"))


async def test_payload_is_one_set_per_rrset_and_cname_is_absolute(
    provider: Provider, fake: FakeScaleway
) -> None:
    cname = key(provider, ZONE, "alias", RecordType.CNAME)
    apex = RecordKey("scw", ZONE, ZONE, RecordType.AAAA)
    await provider.apply(
        [
            Change(a(provider, "www"), 60, None, ("192.0.2.2", "192.0.2.1")),
            Change(cname, 300, None, ("Target.Example.NET.",)),
            Change(apex, 120, None, ("2001:DB8::1",)),
        ]
    )
    (patch,) = fake.calls("PATCH")
    assert patch.path == f"/dns-zones/{ZONE}/records"
    assert patch.body == {
        "changes": [
            {
                "set": {
                    "id_fields": {"name": "", "type": "AAAA"},
                    "records": [{"name": "", "type": "AAAA", "data": "2001:db8::1", "ttl": 120}],
                }
            },
            {
                "set": {
                    "id_fields": {"name": "alias", "type": "CNAME"},
                    "records": [
                        {
                            "name": "alias",
                            "type": "CNAME",
                            "data": "target.example.net.",
                            "ttl": 300,
                        }
                    ],
                }
            },
            {
                "set": {
                    "id_fields": {"name": "www", "type": "A"},
                    "records": [
                        {"name": "www", "type": "A", "data": "192.0.2.1", "ttl": 60},
                        {"name": "www", "type": "A", "data": "192.0.2.2", "ttl": 60},
                    ],
                }
            },
        ],
        "return_all_records": False,
        "disallow_new_zone_creation": True,
    }
    assert fake.rrset(ZONE, "alias", "CNAME") == (300, ["target.example.net."])
    assert (await provider.read([cname]))[cname] == RecordSet(
        cname.name, RecordType.CNAME, 300, ("target.example.net",)
    )


async def test_mass_change_is_one_patch_per_zone(provider: Provider, fake: FakeScaleway) -> None:
    changes = [
        Change(a(provider, f"svc{i}", zone), 30, None, (f"192.0.2.{i % 250 + 1}",))
        for zone in (ZONE, OTHER)
        for i in range(150)
    ]
    receipt = await provider.apply(changes)
    assert sorted(receipt.change_ids) == sorted([OTHER, ZONE])
    assert len(fake.calls("PATCH")) == 2
    assert fake.rrset(OTHER, "svc149", "A") == (30, ["192.0.2.150"])
    await provider.wait_in_sync(receipt, 5)


async def test_reads_follow_pages_until_total_count(provider: Provider, fake: FakeScaleway) -> None:
    for i in range(1, 31):
        fake.put(ZONE, "big", "A", f"192.0.2.{i}", ttl=90)
        fake.put(ZONE, f"noise{i}", "A", f"198.51.100.{i}")
    fake.put(ZONE, "", "A", "203.0.113.1")  # apex among 61 A records
    fake.put(ZONE, "big", "TXT", "not ours")
    big, apex = a(provider, "big"), RecordKey("scw", ZONE, ZONE, RecordType.A)
    got = await provider.read([big, apex])
    assert got[big] == RecordSet(
        big.name, RecordType.A, 90, tuple(sorted(f"192.0.2.{i}" for i in range(1, 31)))
    )
    assert got[apex] == RecordSet(ZONE, RecordType.A, 300, ("203.0.113.1",))
    big_pages = [s for s in fake.calls("GET", "/records") if s.query.get("name") == "big"]
    assert [s.query["page"] for s in big_pages] == ["1", "2", "3", "4", "5"]  # 30 / 7
    assert all(s.query["page_size"] == "7" and s.query["type"] == "A" for s in big_pages)
    apex_pages = [s for s in fake.calls("GET", "/records") if "name" not in s.query]
    assert len(apex_pages) == math.ceil(61 / 7)


async def test_reads_survive_a_server_serving_smaller_pages(
    provider: Provider, fake: FakeScaleway
) -> None:
    fake.page_cap = 3
    for i in range(1, 11):
        fake.put(ZONE, "big", "A", f"192.0.2.{i}")
    got = (await provider.read([a(provider, "big")]))[a(provider, "big")]
    assert got is not None and len(got.values) == 10
    assert len(fake.calls("GET", "/records")) == 4


async def test_several_types_of_a_name_share_one_listing(
    provider: Provider, fake: FakeScaleway
) -> None:
    fake.put(ZONE, "dual", "A", "192.0.2.1")
    fake.put(ZONE, "dual", "AAAA", "2001:db8::1")
    keys = [key(provider, ZONE, "dual", t) for t in RecordType]
    got = await provider.read(keys)
    assert [v.values if v else None for v in got.values()] == [
        ("192.0.2.1",),
        ("2001:db8::1",),
        None,
    ]
    (listing,) = fake.calls("GET", "/records")
    assert "type" not in listing.query


# -- validation -----------------------------------------------------------------------------------


async def test_invalid_values_are_refused_before_any_call(
    provider: Provider, fake: FakeScaleway
) -> None:
    bad = [
        Change(a(provider, "x"), 60, None, ("not-an-ip",)),
        Change(a(provider, "x"), 60, None, ()),
        Change(a(provider, "x"), -1, None, ("192.0.2.1",)),
        Change(RecordKey("other", ZONE, f"x.{ZONE}", RecordType.A), 60, None, ("192.0.2.1",)),
        Change(RecordKey("scw", ZONE, "x.example.net", RecordType.A), 60, None, ("192.0.2.1",)),
    ]
    for change in bad:
        with pytest.raises(ProviderError) as info:
            await provider.apply([Change(a(provider, "ok"), 60, None, ("192.0.2.9",)), change])
        assert info.value.kind == "invalid"
    assert fake.seen == []


async def test_rejected_batch_is_atomic_and_not_retried(
    provider: Provider, fake: FakeScaleway
) -> None:
    # A CNAME beside an A record: only the server sees the other records of the name.
    fake.put(ZONE, "taken", "A", "192.0.2.9")
    cname = RecordKey("scw", ZONE, f"taken.{ZONE}", RecordType.CNAME)
    with pytest.raises(ProviderError) as info:
        await provider.apply(
            [
                Change(a(provider, "first"), 60, None, ("192.0.2.1",)),
                Change(cname, 60, None, ("elsewhere.example.net",)),
            ]
        )
    message = str(info.value)
    assert info.value.kind == "invalid" and not info.value.retryable
    assert "HTTP 400 invalid_arguments" in message
    assert "a CNAME cannot coexist with other records" in message
    assert len(fake.calls("PATCH")) == 1
    assert fake.rrset(ZONE, "first", "A") is None
    assert provider.errors == ["invalid"] and info.value.counted


async def test_fake_checks_payload_shape(fake: FakeScaleway) -> None:
    url = f"{fake.url}{API}/dns-zones/{ZONE}/records"
    good = {"name": "www", "type": "A", "data": "192.0.2.1", "ttl": 60}
    cases = {
        "lower-case type": {"set": {"id_fields": {"name": "www", "type": "a"}, "records": [good]}},
        "unknown kind": {"upsert": {"records": [good]}},
        "no id_fields": {"set": {"records": [good]}},
        "bad data": {"add": {"records": [{**good, "data": "999.1.1.1"}]}},
        "two kinds": {"add": {"records": [good]}, "clear": {}},
    }
    async with aiohttp.ClientSession(headers={"X-Auth-Token": TOKEN}) as session:
        for what, change in cases.items():
            async with session.patch(url, json={"changes": [change]}) as resp:
                body = await resp.json()
            assert resp.status == 400, what
            assert body["type"] == "invalid_arguments" and body["details"][0]["argument_name"]
        async with session.get(url, headers={"X-Auth-Token": ""}) as resp:
            assert resp.status == 401 and (await resp.json())["type"] == "denied_authentication"
    assert fake.zones[ZONE].records == []


# -- faults ---------------------------------------------------------------------------------------


async def test_429_waits_for_retry_after_then_succeeds(
    provider: Provider, fake: FakeScaleway
) -> None:
    fake.inject("PATCH", "/records", status=429, headers={"Retry-After": "1"}, body=_throttled())
    await provider.apply([Change(a(provider, "www"), 60, None, ("192.0.2.1",))])
    first, second = fake.calls("PATCH")
    assert second.at - first.at >= 0.95
    assert fake.rrset(ZONE, "www", "A") == (60, ["192.0.2.1"])
    assert provider.errors == ["throttling"]


async def test_retry_after_beyond_the_deadline_fails_at_once(
    provider: Provider, fake: FakeScaleway
) -> None:
    fake.inject("GET", "/records", status=429, headers={"Retry-After": "3600"}, body=_throttled())
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        await provider.read([a(provider, "www")])
    assert time.monotonic() - started < 1
    assert info.value.kind == "throttling" and not info.value.retryable
    assert "Retry-After 3600s" in str(info.value) and "rate limit exceeded" in str(info.value)
    assert len(fake.calls("GET")) == 1


async def test_5xx_is_retried_then_succeeds(provider: Provider, fake: FakeScaleway) -> None:
    fake.inject("GET", "/records", status=500, times=2)
    assert await provider.read([a(provider, "www")]) == {a(provider, "www"): None}
    assert provider.errors == ["server", "server"]


async def test_5xx_gives_up_after_the_policy(provider: Provider, fake: FakeScaleway) -> None:
    fake.inject("PATCH", "/records", status=503, times=10)
    with pytest.raises(ProviderError) as info:
        await provider.apply([Change(a(provider, "www"), 60, None, ("192.0.2.1",))])
    assert info.value.kind == "server" and info.value.counted
    assert len(fake.calls("PATCH")) == FAST.attempts
    assert provider.errors == ["server"] * FAST.attempts


@pytest.mark.parametrize(
    ("token", "method", "expected"),
    [
        ("wrong-" + TOKEN, "read", "authentication is denied"),
        (READ_ONLY, "apply", "write on dns_zone denied"),
    ],
)
async def test_auth_errors_are_not_retried_and_never_show_the_token(
    fake: FakeScaleway, caplog: pytest.LogCaptureFixture, token: str, method: str, expected: str
) -> None:
    caplog.set_level(logging.DEBUG)
    p = make(fake, token=token)
    await p.start()
    try:
        with pytest.raises(ProviderError) as info:
            if method == "read":
                await p.read([a(p, "www")])
            else:
                await p.apply([Change(a(p, "www"), 60, None, ("192.0.2.1",))])
    finally:
        await p.aclose()
    assert info.value.kind == "auth" and expected in str(info.value)
    assert len(fake.seen) == 1 and p.errors == ["auth"]
    for text in (str(info.value), caplog.text, repr(p.config), repr(vars(p))):
        assert token not in text


async def test_echoed_token_is_redacted(
    provider: Provider, fake: FakeScaleway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"message": f"proxy says: bad header X-Auth-Token: {TOKEN}", "type": "invalid_request"}
    fake.inject("GET", "/records", status=400, body=body)
    with pytest.raises(ProviderError) as info:
        await provider.read([a(provider, "www")])
    assert "X-Auth-Token: ***" in str(info.value)
    assert TOKEN not in str(info.value) and TOKEN not in caplog.text


async def test_secret_comes_from_the_environment(fake: FakeScaleway) -> None:
    config = ScalewayProviderConfig("scw", api_url=fake.url, retry=FAST)
    missing = ScalewayProvider(config, [ZONE], environ={})
    with pytest.raises(ProviderError) as info:
        await missing.start()
    assert "secret_key" in str(info.value) and "SCW_SECRET_KEY" in str(info.value)
    from_env = ScalewayProvider(config, [ZONE], environ={"SCW_SECRET_KEY": TOKEN})
    await from_env.start()
    try:
        assert await from_env.read([a(from_env, "www")]) == {a(from_env, "www"): None}
    finally:
        await from_env.aclose()
    assert fake.seen[-1].authenticated


async def test_unknown_zone_is_a_clear_error(provider: Provider, fake: FakeScaleway) -> None:
    lost = a(provider, "www", "missing.test")
    with pytest.raises(ProviderError) as info:
        await provider.read([lost])
    assert info.value.kind == "auth" and "missing.test" in str(info.value)
    with pytest.raises(ProviderError) as info:
        await provider.apply([Change(lost, 60, None, ("192.0.2.1",))])
    assert info.value.kind == "not_found" and "dns_zone missing.test" in str(info.value)
    assert "missing.test" not in fake.zones  # not created by the PATCH


async def test_connection_refused_is_retried(fake: FakeScaleway) -> None:
    p = make(fake)
    p._base = f"http://127.0.0.1:{free_port()}{API}"  # nothing listens there
    await p.start()
    try:
        with pytest.raises(ProviderError) as info:
            await p.read([a(p, "www")])
    finally:
        await p.aclose()
    assert info.value.kind == "connection" and info.value.retryable
    assert p.errors == ["connection"] * FAST.attempts


async def test_hung_api_is_cut_by_the_timeout_and_the_loop_keeps_running(
    fake: FakeScaleway,
) -> None:
    fake.inject("PATCH", "/records", hang=True, times=5)
    p = make(fake, timeout=0.3, retry=RetryConfig(attempts=2, initial=0.01, max_delay=0.01))
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)

    await p.start()
    task = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        with pytest.raises(ProviderError) as info:
            await p.apply([Change(a(p, "www"), 60, None, ("192.0.2.1",))])
    finally:
        task.cancel()
        await p.aclose()
    elapsed = time.monotonic() - started
    assert info.value.kind == "timeout" and "0.3s" in str(info.value)
    assert 0.55 < elapsed < 3.0
    assert p.errors == ["timeout", "timeout"]
    # ~30 ticks in the ~0.6 s the call took; a call that held the loop would leave one per attempt
    # (counted rather than timed: one stall of a shared CI machine must not fail this test)
    assert len(ticks) > 10, ticks


async def test_a_hung_zone_does_not_delay_the_others(fake: FakeScaleway) -> None:
    fake.inject("PATCH", f"/dns-zones/{ZONE}/", hang=True, times=5)
    p = make(fake, timeout=2.0, retry=RetryConfig(attempts=1))
    await p.start()
    started = time.monotonic()
    try:
        with pytest.raises(ProviderError) as info:
            await p.apply(
                [
                    Change(a(p, "www"), 60, None, ("192.0.2.1",)),
                    Change(a(p, "www", OTHER), 60, None, ("192.0.2.2",)),
                ]
            )
    finally:
        await p.aclose()
    assert fake.commits[OTHER] - started < 1.0  # did not wait for the hung zone's 2 s timeout
    assert f"1 of 2 zones failed: {ZONE}" in str(info.value)
    assert f"(applied: {OTHER})" in str(info.value), info.value
    assert info.value.kind == "timeout" and info.value.counted


# -- wait_in_sync ---------------------------------------------------------------------------------


async def test_wait_in_sync_polls_until_the_zone_is_active(
    provider: Provider, fake: FakeScaleway
) -> None:
    fake.pending_polls = 3
    fake.add_zone(f"sub.{ZONE}", ZONE)  # also matched by the dns_zone filter; must be skipped
    receipt = await provider.apply([Change(a(provider, "www"), 60, None, ("192.0.2.1",))])
    assert fake.zones[ZONE].status == "pending"
    await provider.wait_in_sync(receipt, 5)
    polls = fake.calls("GET", "/dns-zones")
    polls = [s for s in polls if s.path == "/dns-zones"]
    assert len(polls) == 4 and all(s.query["dns_zone"] == ZONE for s in polls)
    assert fake.zones[ZONE].status == "active"


async def test_wait_in_sync_times_out_naming_the_zone(
    provider: Provider, fake: FakeScaleway
) -> None:
    fake.pending_polls = 10**6
    receipt = await provider.apply([Change(a(provider, "www"), 60, None, ("192.0.2.1",))])
    with pytest.raises(ProviderError) as info:
        await provider.wait_in_sync(receipt, 0.3)
    assert info.value.kind == "timeout" and ZONE in str(info.value)


async def test_zone_in_error_fails_the_wait(provider: Provider, fake: FakeScaleway) -> None:
    receipt = await provider.apply([Change(a(provider, "www"), 60, None, ("192.0.2.1",))])
    fake.zones[ZONE].status = "error"
    with pytest.raises(ProviderError) as info:
        await provider.wait_in_sync(receipt, 5)
    assert info.value.kind == "zone_status"
    assert f"zone {ZONE} is error" in str(info.value) and "could not deploy" in str(info.value)


# -- small pieces ---------------------------------------------------------------------------------


def test_error_shapes_are_described() -> None:
    body = (
        '{"type": "invalid_arguments", "message": "invalid argument(s)", "details": ['
        '{"argument_name": "changes[0].set.records[0].data", "reason": "format",'
        ' "help_message": "not an IPv4"}]}'
    )
    assert describe_error(body) == (
        "invalid_arguments",
        "invalid argument(s): changes[0].set.records[0].data is wrongly formatted (not an IPv4)",
    )
    nf = '{"type": "not_found", "message": "resource is not found", "resource": "dns_zone", '
    nf += '"resource_id": "x.test"}'
    assert describe_error(nf) == ("not_found", "resource is not found: dns_zone x.test")
    assert describe_error("<html>bad gateway</html>") == (None, "<html>bad gateway</html>")


def test_retry_after_parsing() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < (parse_retry_after(later) or 0) <= 30
    assert parse_retry_after("-5") == 0.0


def test_registered() -> None:
    assert factory("scaleway") is scaleway_create


def _throttled() -> dict[str, str]:
    return {"message": "rate limit exceeded", "type": "too_many_requests"}
