"""The ovh provider through the real python-ovh client against the local fake OVH API."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import ovh
import ovh.client
import ovh.config
import pytest

from failover.config.types import OvhProviderConfig, RetryConfig, Secret, VerifyConfig
from failover.model import Change, RecordKey, RecordSet, RecordType
from failover.providers.base import ProviderError
from failover.providers.ovh import OvhProvider
from failover.providers.ovh_client import RateLimiter, make_client
from tests.providers.contract import CHECKS, Check, apply_and_sync, check_create_and_read_back
from tests.providers.fake_ovh import (
    APP_KEY,
    APP_SECRET,
    CLIENT_ID,
    CLIENT_SECRET,
    CONSUMER_KEY,
    FakeOvh,
    signature,
)

ZONE = "example.test"
OTHER = "other.test"
FAST_RETRY = RetryConfig(attempts=3, initial=0.01, max_delay=0.05, deadline=10.0)


@pytest.fixture(autouse=True)
def isolated_ovh_conventions(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OVH_* variable, ovh.conf or oauthlib switch of the developer's leaks in or out."""
    for name in list(os.environ):
        if name.startswith("OVH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "")
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT")  # restored to "absent" afterwards
    monkeypatch.setattr(ovh.config, "CONFIG_PATH", [])
    yield


def make_config(url: str, **overrides: Any) -> OvhProviderConfig:
    base = OvhProviderConfig(
        name="ovh",
        endpoint=url,
        application_key=Secret(APP_KEY),
        application_secret=Secret(APP_SECRET),
        consumer_key=Secret(CONSUMER_KEY),
        timeout=2.0,
        retry=FAST_RETRY,
        verify=VerifyConfig(enabled=False),
        rate_limit=1000.0,
    )
    return replace(base, **overrides)


async def started(config: OvhProviderConfig, errors: list[str] | None = None) -> OvhProvider:
    provider = OvhProvider(config, [ZONE, OTHER])
    provider.status_poll_interval = 0.02
    if errors is not None:
        provider.on_error = errors.append
    await provider.start()
    return provider


@pytest.fixture
async def fake() -> AsyncIterator[FakeOvh]:
    server = FakeOvh()
    server.add_zone(ZONE)
    server.add_zone(OTHER)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def errors() -> list[str]:
    return []


@pytest.fixture
async def provider(fake: FakeOvh, errors: list[str]) -> AsyncIterator[OvhProvider]:
    p = await started(make_config(fake.url), errors)
    try:
        yield p
    finally:
        await p.aclose()


def a_key(label: str, zone: str = ZONE, rtype: RecordType = RecordType.A) -> RecordKey:
    return RecordKey("ovh", zone, f"{label}.{zone}" if label else zone, rtype)


# -- the fake itself --------------------------------------------------------------------------


def test_fake_signature_matches_the_published_test_vector() -> None:
    got = signature(
        "fake application secret",
        "fake consumer key",
        "METHOD",
        "https://eu.api.ovh.com/1.0/unit/test",
        "",
        "1404395931",
    )
    assert got == "$1$16ae5ba8c63841b1951575be905867991d5f49dc"


async def test_fake_checks_signature_keys_and_clock_skew() -> None:
    server = FakeOvh(skew=1000)  # python-ovh compensates through /auth/time
    server.add_zone(ZONE)
    await server.start()
    try:
        good = make_client(make_config(server.url))
        assert await asyncio.to_thread(good.get, f"/domain/zone/{ZONE}/record") == []
        bad = make_client(make_config(server.url, application_secret=Secret("wrong")))
        with pytest.raises(ovh.exceptions.BadParametersError) as info:
            await asyncio.to_thread(bad.get, f"/domain/zone/{ZONE}/record")
        assert info.value.response.json() == {
            "errorCode": "INVALID_SIGNATURE",
            "httpCode": "400 Bad Request",
            "message": "Invalid signature",
        }
        assert info.value.query_id.startswith("FAKE.ws-1.")
        stranger = make_client(make_config(server.url, consumer_key=Secret("unknown")))
        with pytest.raises(ovh.exceptions.NotCredential):
            await asyncio.to_thread(stranger.get, f"/domain/zone/{ZONE}/record")
        unsynced = make_client(make_config(server.url))
        unsynced._time_delta = 0  # as if /auth/time had not been asked: 1000 s off
        with pytest.raises(ovh.exceptions.BadParametersError, match="Query out of time"):
            await asyncio.to_thread(unsynced.get, f"/domain/zone/{ZONE}/record")
    finally:
        await server.close()


# -- the contract and OVH specifics ------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_contract(provider: OvhProvider, fake: FakeOvh, check: Check) -> None:
    await check(provider, ZONE, "contract")
    assert fake.live(ZONE) == fake.stored(ZONE)  # every apply ended with a refresh


async def test_one_refresh_per_zone_and_nothing_live_before_it(
    provider: OvhProvider, fake: FakeOvh
) -> None:
    changes = [Change(a_key(f"svc{i}"), 60, None, (f"192.0.2.{i}",)) for i in range(1, 6)]
    changes += [Change(a_key(f"svc{i}", OTHER), 60, None, ("198.51.100.1",)) for i in range(3)]
    receipt = await provider.apply(changes)
    assert sorted(receipt.change_ids) == [ZONE, OTHER]
    assert fake.count("POST", f"/domain/zone/{ZONE}/refresh$") == 1
    assert fake.count("POST", f"/domain/zone/{OTHER}/refresh$") == 1
    assert fake.live(ZONE)[("svc3", "A")] == ["192.0.2.3"]
    assert len(fake.live(OTHER)) == 3


async def test_refresh_failure_fails_the_change_until_refreshed(
    provider: OvhProvider, fake: FakeOvh, errors: list[str]
) -> None:
    fake.add_record(ZONE, "shop", "A", "192.0.2.10", 60)
    message = "This call has not been granted"
    fake.fault("POST", "/refresh$", 403, code="NOT_GRANTED_CALL", message=message, times=None)
    shop = a_key("shop")
    with pytest.raises(ProviderError) as info:
        await provider.apply([Change(shop, 60, ("192.0.2.10",), ("198.51.100.20",))])
    exc = info.value
    assert exc.kind == "refresh" and not exc.retryable and exc.counted
    assert "NOT live" in str(exc) and message in str(exc) and "FAKE.ws-1." in str(exc)
    assert errors == ["auth"]  # one attempt, 403 is not retried
    assert fake.stored(ZONE)[("shop", "A")] == ["198.51.100.20"]
    assert fake.live(ZONE)[("shop", "A")] == ["192.0.2.10"]  # the old answer is still served

    fake.faults.clear()  # the operator grants the refresh: the next read publishes first
    assert (await provider.read([shop]))[shop] == RecordSet(
        shop.name, RecordType.A, 60, ("198.51.100.20",)
    )
    assert fake.live(ZONE)[("shop", "A")] == ["198.51.100.20"]


async def test_identical_duplicates_are_reduced_to_the_exact_set(
    provider: OvhProvider, fake: FakeOvh
) -> None:
    ids = [fake.add_record(ZONE, "dup", "A", "192.0.2.1", 60) for _ in range(3)]
    fake.add_record(ZONE, "dup", "A", "192.0.2.2", 60)
    dup = a_key("dup")
    assert (await provider.read([dup]))[dup] == RecordSet(
        dup.name, RecordType.A, 60, ("192.0.2.1", "192.0.2.2")
    )
    fake.fault("DELETE", f"/record/{ids[2]}$", 404, message="gone already")  # tolerated
    await apply_and_sync(provider, Change(dup, 60, ("192.0.2.1", "192.0.2.2"), ("192.0.2.1",)))
    assert fake.live(ZONE)[("dup", "A")] == ["192.0.2.1", "192.0.2.1"]  # the 404'd one stayed
    await apply_and_sync(provider, Change(dup, 60, ("192.0.2.1",), ("192.0.2.1",)))
    assert fake.live(ZONE)[("dup", "A")] == ["192.0.2.1"]
    assert fake.count("PUT", "/record/") == 0  # a kept value is never rewritten
    deletes = [p for m, p in fake.calls if m == "DELETE"]
    assert len(deletes) == len(set(deletes)) + 1  # distinct ids; only the 404'd one twice


async def test_existing_ids_are_reused_before_creating(
    provider: OvhProvider, fake: FakeOvh
) -> None:
    first = fake.add_record(ZONE, "www", "A", "192.0.2.1", 60)
    www = a_key("www")
    await apply_and_sync(provider, Change(www, 30, None, ("203.0.113.1", "203.0.113.2")))
    assert fake.count("PUT", f"/record/{first}$") == 1
    assert fake.count("POST", "/record$") == 1
    assert fake.count("DELETE", "/record/") == 0
    assert fake.live(ZONE)[("www", "A")] == ["203.0.113.1", "203.0.113.2"]


async def test_a_record_deleted_under_us_is_created_instead(
    provider: OvhProvider, fake: FakeOvh, errors: list[str]
) -> None:
    old = fake.add_record(ZONE, "www", "A", "192.0.2.1", 60)
    fake.fault("PUT", f"/record/{old}$", 404, message=f"The requested object (id = {old}) ...")
    www = a_key("www")
    await apply_and_sync(provider, Change(www, 60, ("192.0.2.1",), ("203.0.113.9",)))
    assert fake.count("POST", "/record$") == 1 and errors == ["not_found"]
    assert "203.0.113.9" in fake.live(ZONE)[("www", "A")]
    # The injected 404 left the "vanished" record in place: the next apply converges.
    await apply_and_sync(provider, Change(www, 60, ("203.0.113.9",), ("203.0.113.9",)))
    assert fake.live(ZONE)[("www", "A")] == ["203.0.113.9"]


async def test_unknown_zone_is_not_found_and_not_retried(
    provider: OvhProvider, fake: FakeOvh, errors: list[str]
) -> None:
    del fake.staged[OTHER]
    with pytest.raises(ProviderError) as info:
        await provider.read([a_key("www", OTHER)])
    assert info.value.kind == "not_found" and not info.value.retryable
    assert "This service does not exist" in str(info.value) and errors == ["not_found"]


async def test_ttl_zero_is_the_zone_default_and_ttl_is_the_minimum(
    provider: OvhProvider, fake: FakeOvh
) -> None:
    fake.add_record(ZONE, "zero", "A", "192.0.2.1", 0)
    fake.add_record(ZONE, "mixed", "AAAA", "2001:db8::1", 300)
    fake.add_record(ZONE, "mixed", "AAAA", "2001:db8::2", 120)
    zero, mixed = a_key("zero"), a_key("mixed", rtype=RecordType.AAAA)
    got = await provider.read([zero, mixed])
    assert got[zero] == RecordSet(zero.name, RecordType.A, fake.default_ttl, ("192.0.2.1",))
    assert got[mixed] == RecordSet(mixed.name, RecordType.AAAA, 120, ("2001:db8::1", "2001:db8::2"))


async def test_cname_targets_and_apex(provider: OvhProvider, fake: FakeOvh) -> None:
    alias = a_key("alias", rtype=RecordType.CNAME)
    await apply_and_sync(provider, Change(alias, 60, None, ("Target.Example.NET.",)))
    (raw,) = [r for r in fake.staged[ZONE].values() if r["subDomain"] == "alias"]
    assert raw["target"] == "target.example.net."  # absolute: written with the trailing dot
    assert (await provider.read([alias]))[alias] == RecordSet(
        alias.name, RecordType.CNAME, 60, ("target.example.net",)
    )
    fake.add_record(ZONE, "rel", "CNAME", "www", 60)  # made by hand: relative to the zone
    rel = a_key("rel", rtype=RecordType.CNAME)
    assert (await provider.read([rel]))[rel] == RecordSet(
        rel.name, RecordType.CNAME, 60, (f"www.{ZONE}",)
    )
    apex = a_key("")
    await apply_and_sync(provider, Change(apex, 60, None, ("192.0.2.80",)))
    assert fake.live(ZONE)[("", "A")] == ["192.0.2.80"]
    bad = [
        Change(a_key("", rtype=RecordType.CNAME), 60, None, ("x.example.net",)),
        Change(alias, 60, None, ("a.example.net", "b.example.net")),
        Change(a_key("x"), 60, None, ("not-an-ip",)),
        Change(
            RecordKey("ovh", ZONE, "www.elsewhere.test", RecordType.A), 60, None, ("192.0.2.1",)
        ),
        Change(RecordKey("other", ZONE, f"x.{ZONE}", RecordType.A), 60, None, ("192.0.2.1",)),
    ]
    calls = len(fake.calls)
    for change in bad:
        with pytest.raises(ProviderError) as info:
            await provider.apply([Change(a_key("fine"), 60, None, ("192.0.2.9",)), change])
        assert info.value.kind == "invalid" and not info.value.retryable
    assert len(fake.calls) == calls  # refused before any call


async def test_like_filters_are_matched_exactly() -> None:
    server = FakeOvh(loose_filters=True)
    server.add_record(ZONE, "shop", "A", "192.0.2.1", 60)
    server.add_record(ZONE, "eshop", "A", "192.0.2.99", 60)
    server.add_record(ZONE, "shop.eu", "A", "192.0.2.98", 60)
    await server.start()
    provider = await started(make_config(server.url))
    try:
        shop = a_key("shop")
        assert (await provider.read([shop]))[shop] == RecordSet(
            shop.name, RecordType.A, 60, ("192.0.2.1",)
        )
        await apply_and_sync(provider, Change(shop, 60, ("192.0.2.1",), ("198.51.100.1",)))
        live = server.live(ZONE)
        assert live[("shop", "A")] == ["198.51.100.1"]
        assert live[("eshop", "A")] == ["192.0.2.99"] and live[("shop.eu", "A")] == ["192.0.2.98"]
    finally:
        await provider.aclose()
        await server.close()


# -- faults, retries, timeouts -----------------------------------------------------------------


async def test_throttling_and_server_errors_are_retried(
    provider: OvhProvider, fake: FakeOvh, errors: list[str]
) -> None:
    fake.fault("GET", "/record$", 429, times=2, message="Too many requests")
    fake.fault("POST", "/record$", 500, times=1)
    fake.fault("POST", "/refresh$", 503, times=1, message="Service unavailable")
    shop = a_key("shop")
    await apply_and_sync(provider, Change(shop, 60, None, ("192.0.2.10",)))
    assert fake.live(ZONE)[("shop", "A")] == ["192.0.2.10"]
    assert errors == ["throttling", "throttling", "server", "server"]
    assert fake.count("POST", "/refresh$") == 2


async def test_validation_errors_are_not_retried(
    provider: OvhProvider, fake: FakeOvh, errors: list[str]
) -> None:
    fake.fault("POST", "/record$", 400, times=None, message="Invalid target")
    with pytest.raises(ProviderError) as info:
        await provider.apply([Change(a_key("shop"), 60, None, ("192.0.2.10",))])
    assert info.value.kind == "invalid" and not info.value.retryable
    assert "Invalid target" in str(info.value) and "FAKE.ws-1." in str(info.value)
    assert fake.count("POST", "/record$") == 1 and errors == ["invalid"]
    assert fake.count("POST", "/refresh$") == 1  # the attempted write may be stored: publish


async def test_wrong_secret_fails_once_and_never_shows_a_secret(
    fake: FakeOvh, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-application-secret-value"
    errors: list[str] = []
    provider = await started(make_config(fake.url, application_secret=Secret(wrong)), errors)
    try:
        with pytest.raises(ProviderError) as info:
            await provider.read([a_key("shop")])
        with pytest.raises(ProviderError):
            await provider.apply([Change(a_key("shop"), 60, None, ("192.0.2.1",))])
    finally:
        await provider.aclose()
    exc = info.value
    assert exc.kind == "auth" and not exc.retryable
    assert "INVALID_SIGNATURE" in str(exc) and "FAKE.ws-1." in str(exc)
    assert fake.count("GET", "/record") == 2 and errors == ["auth", "auth"]  # none retried
    for text in (str(exc), repr(exc), caplog.text, repr(provider.config)):
        for secret in (wrong, CONSUMER_KEY, APP_SECRET):
            assert secret not in text


async def test_a_hanging_endpoint_is_cut_by_the_timeout_without_blocking_the_loop(
    fake: FakeOvh,
) -> None:
    errors: list[str] = []
    retry = RetryConfig(attempts=2, initial=0.01, max_delay=0.01, deadline=10.0)
    provider = await started(make_config(fake.url, timeout=0.4, retry=retry), errors)
    fake.hang("GET", "/record$", 30, times=None)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    task = asyncio.create_task(ticker())
    start = time.monotonic()
    try:
        with pytest.raises(ProviderError) as info:
            await provider.read([a_key("shop")])
    finally:
        elapsed = time.monotonic() - start
        task.cancel()
        await provider.aclose()
    assert info.value.kind == "timeout" and info.value.retryable
    assert errors == ["timeout", "timeout"]
    assert 0.7 <= elapsed < 3.0
    assert ticks >= elapsed / 0.05 * 0.5  # the loop kept ticking all along


async def test_a_slow_zone_does_not_delay_the_others(provider: OvhProvider, fake: FakeOvh) -> None:
    fake.hang("POST", f"/domain/zone/{ZONE}/refresh$", 1.5)
    changes = [
        Change(a_key("slow"), 60, None, ("192.0.2.1",)),
        Change(a_key("fast", OTHER), 60, None, ("192.0.2.2",)),
    ]
    task = asyncio.create_task(provider.apply(changes))
    start = time.monotonic()
    while ("fast", "A") not in fake.live(OTHER):
        assert time.monotonic() - start < 1.0, "the other zone waited for the slow one"
        await asyncio.sleep(0.01)
    assert not task.done()
    await task
    assert fake.live(ZONE)[("slow", "A")] == ["192.0.2.1"]


async def test_a_cancelled_apply_still_refreshes_what_it_stored(
    provider: OvhProvider, fake: FakeOvh
) -> None:
    fake.hang("POST", "/record$", 0.3)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):  # the engine's deadline cuts the wait
            await provider.apply([Change(a_key("shop"), 60, None, ("192.0.2.10",))])
    deadline = time.monotonic() + 3
    while fake.live(ZONE).get(("shop", "A")) != ["192.0.2.10"]:
        assert time.monotonic() < deadline, "the zone batch was abandoned half-way"
        await asyncio.sleep(0.02)


async def test_wait_in_sync_polls_the_deployment_status() -> None:
    server = FakeOvh(deploy_delay=0.3)
    server.add_zone(ZONE)
    await server.start()
    provider = await started(make_config(server.url))
    try:
        change = Change(a_key("shop"), 60, None, ("192.0.2.10",))
        receipt = await provider.apply([change])
        start = time.monotonic()
        await provider.wait_in_sync(receipt, 5)
        assert time.monotonic() - start >= 0.2
        receipt = await provider.apply([change])
        with pytest.raises(ProviderError) as info:
            await provider.wait_in_sync(receipt, 0.05)
        assert info.value.kind == "timeout"
        server.status_route = False  # no status route: the refresh is all we can know
        receipt = await provider.apply([change])
        await provider.wait_in_sync(receipt, 0.05)
    finally:
        await provider.aclose()
        await server.close()


async def test_rate_limiter_spaces_requests() -> None:
    limiter = RateLimiter(20.0)
    start = time.monotonic()
    for _ in range(30):  # a burst of 20, then 10 more at 20/s
        await limiter.acquire()
    assert 0.4 <= time.monotonic() - start < 2.0


# -- credentials and endpoints -----------------------------------------------------------------


async def test_oauth2_client_credentials(fake: FakeOvh, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = make_config(
        fake.url,
        application_key=None,
        application_secret=None,
        consumer_key=None,
        client_id=Secret(CLIENT_ID),
        client_secret=Secret(CLIENT_SECRET),
    )
    provider = await started(config)
    try:
        await check_oauth(provider, fake)
    finally:
        await provider.aclose()
    assert os.environ.get("OAUTHLIB_INSECURE_TRANSPORT") == "1"  # loopback http only
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    for secret in (CLIENT_SECRET, basic, *fake.tokens):
        assert secret not in caplog.text  # requests-oauthlib logs these at DEBUG

    fake.hang("POST", "^/auth/oauth2/token$", 30)  # python-ovh alone would wait forever
    hung = replace(config, timeout=0.3, retry=replace(FAST_RETRY, attempts=1))
    provider = await started(hung)
    start = time.monotonic()
    try:
        with pytest.raises(ProviderError) as info:
            await provider.read([a_key("shop")])
    finally:
        await provider.aclose()
    assert info.value.kind == "timeout" and time.monotonic() - start < 2

    wrong = replace(config, client_secret=Secret("not-the-client-secret"))
    provider = await started(wrong)
    try:
        with pytest.raises(ProviderError) as info:
            await provider.read([a_key("shop")])
    finally:
        await provider.aclose()
    assert info.value.kind == "auth" and not info.value.retryable
    assert "not-the-client-secret" not in str(info.value)


async def check_oauth(provider: OvhProvider, fake: FakeOvh) -> None:
    await check_create_and_read_back(provider, ZONE, "oauth")
    assert fake.count("POST", "^/auth/oauth2/token$") == 1  # one token for every call
    assert fake.count("GET", "/auth/time") == 0  # no signature, so no clock to sync


def test_oauth2_over_plain_http_is_refused_off_loopback() -> None:
    config = make_config(
        "http://ovh-proxy.example.test/1.0",
        application_key=None,
        application_secret=None,
        consumer_key=None,
        client_id=Secret(CLIENT_ID),
        client_secret=Secret(CLIENT_SECRET),
    )
    with pytest.raises(ProviderError) as info:
        make_client(config)
    assert info.value.kind == "config" and "https" in str(info.value)
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


def test_endpoint_urls_leave_python_ovh_tables_untouched() -> None:
    endpoints, token_urls = ovh.client.ENDPOINTS, ovh.client.OAUTH2_TOKEN_URLS
    before = dict(endpoints)
    client = make_client(make_config("http://127.0.0.1:9/1.0"))
    assert client._endpoint == "http://127.0.0.1:9/1.0"
    assert ovh.client.ENDPOINTS is endpoints and endpoints == before
    assert ovh.client.OAUTH2_TOKEN_URLS is token_urls
    named = make_client(make_config("ovh-ca"))
    assert named._endpoint == "https://ca.api.ovh.com/1.0"
    assert named._timeout == (2.0, 2.0)


async def test_ovh_env_conventions(fake: FakeOvh, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = make_config(fake.url, application_key=None, application_secret=None, consumer_key=None)
    with pytest.raises(ProviderError) as info:
        make_client(bare)
    assert info.value.kind == "config" and "Missing authentication" in str(info.value)

    monkeypatch.setenv("OVH_APPLICATION_KEY", APP_KEY)
    monkeypatch.setenv("OVH_APPLICATION_SECRET", APP_SECRET)
    monkeypatch.setenv("OVH_CONSUMER_KEY", CONSUMER_KEY)
    provider = await started(bare)
    try:
        assert await provider.read([a_key("shop")]) == {a_key("shop"): None}
    finally:
        await provider.aclose()

    monkeypatch.setenv("OVH_CLIENT_ID", CLIENT_ID)  # a stray OAuth2 id next to app keys
    with pytest.raises(ProviderError) as info:
        make_client(make_config(fake.url))
    assert info.value.kind == "config"
    assert APP_SECRET not in str(info.value) and CLIENT_ID not in str(info.value)
