"""The cloudflare provider (official SDK, async client) against the local fake API: contract,
batches and their chunking, proxied records, retries and faults, secrets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from failover.apply import verify_through_api
from failover.config.types import CloudflareProviderConfig, RetryConfig, Secret
from failover.model import Change, RecordKey, RecordSet, RecordType
from failover.providers.base import ProviderError
from failover.providers.cloudflare import CloudflareProvider
from failover.providers.cloudflare_batch import Existing, Wanted, plan_batches
from failover.providers.registry import factory
from failover.testkit.providers import (
    CHECKS,
    Check,
    check_interface,
    check_refuses_invalid_values,
    key,
)
from tests.providers.fake_cloudflare import FakeCloudflare

TOKEN = "cf-Tok3n-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
ZONE, OTHER = "example.test", "other.test"
FAST = RetryConfig(attempts=3, initial=0.01, max_delay=0.05, deadline=10.0)


class Provider(CloudflareProvider):
    errors: list[str]


def make(fake: FakeCloudflare, *, token: str | None = TOKEN, **overrides: Any) -> Provider:
    options: dict[str, Any] = {"timeout": 2.0, "retry": FAST, "page_size": 5, **overrides}
    config = CloudflareProviderConfig(
        "cf", base_url=fake.url, api_token=Secret(token) if token else None, **options
    )
    p = Provider(config, [ZONE, OTHER, "missing.test"], environ={})
    p.errors = []
    p.on_error = p.errors.append
    return p


@pytest.fixture
async def fake() -> AsyncIterator[FakeCloudflare]:
    f = FakeCloudflare(TOKEN)
    f.add_zone(ZONE)
    f.add_zone(OTHER)
    await f.start()
    try:
        yield f
    finally:
        await f.close()


@pytest.fixture
async def provider(fake: FakeCloudflare) -> AsyncIterator[Provider]:
    p = make(fake)
    await p.start()
    try:
        yield p
    finally:
        await p.aclose()


def a(p: CloudflareProvider, label: str, zone: str = ZONE) -> RecordKey:
    return key(p, zone, label, RecordType.A)


# -- contract: the kit every provider runs (failover.testkit.providers) -------------------------


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_contract(fake: FakeCloudflare, check: Check) -> None:
    p = make(fake, page_size=1)  # an RRset of two values takes two pages
    await p.start()
    try:
        await check(p, ZONE, "contract")
    finally:
        await p.aclose()
    assert p.errors == []
    assert all(seen.authenticated for seen in fake.seen)
    assert bool(fake.seen) is (check is not check_interface)  # the interface needs no call
    writes = [s for s in fake.seen if s.method != "GET"]
    assert all(s.path.endswith("/dns_records/batch") for s in writes)  # never one by one
    if check is check_refuses_invalid_values:
        assert writes == []  # refused before any call
    if check.__name__ == "check_create_and_read_back":
        assert any(s.query.get("page") == "2" for s in fake.calls("GET", "/dns_records"))


def test_the_registry_builds_it() -> None:
    assert factory("cloudflare").__module__ == "failover.providers.cloudflare"


# -- batches ---------------------------------------------------------------------------------------


async def test_a_failover_is_one_patch_of_the_content(
    provider: Provider, fake: FakeCloudflare
) -> None:
    shop = a(provider, "shop")
    await provider.apply([Change(shop, 60, None, ("192.0.2.1",))])
    (record_id,) = fake.zone(ZONE).records
    await provider.apply([Change(shop, 60, ("192.0.2.1",), ("198.51.100.1",))])
    batch = fake.calls("POST", "/batch")[-1].body
    assert batch["patches"] == [
        {
            "id": record_id,
            "name": f"shop.{ZONE}",
            "type": "A",
            "content": "198.51.100.1",
            "ttl": 60,
            "proxied": False,
        }
    ]
    assert not batch.get("deletes") and not batch.get("posts")
    assert fake.rrset(ZONE, f"shop.{ZONE}") == (60, ["198.51.100.1"])


async def test_an_rrset_is_reached_by_posts_patches_and_deletes(
    provider: Provider, fake: FakeCloudflare
) -> None:
    www = a(provider, "www")
    await provider.apply([Change(www, 60, None, ("192.0.2.1", "192.0.2.2", "192.0.2.3"))])
    await provider.apply([Change(www, 60, None, ("192.0.2.1",))])  # two removed: deletes
    body = fake.calls("POST", "/batch")[-1].body
    assert len(body["deletes"]) == 2 and not body.get("posts")
    await provider.apply([Change(www, 30, None, ("192.0.2.1", "192.0.2.8", "192.0.2.9"))])
    body = fake.calls("POST", "/batch")[-1].body
    assert len(body["posts"]) == 2 and [p["ttl"] for p in body["patches"]] == [30]
    assert fake.rrset(ZONE, f"www.{ZONE}") == (30, ["192.0.2.1", "192.0.2.8", "192.0.2.9"])


async def test_a_ttl_only_change_is_a_patch(provider: Provider, fake: FakeCloudflare) -> None:
    """The planned switchover lowers TTLs through a change of the TTL alone."""
    shop = a(provider, "shop")
    await provider.apply([Change(shop, 300, None, ("192.0.2.1", "192.0.2.2"))])
    await provider.apply([Change(shop, 30, ("192.0.2.1", "192.0.2.2"), ("192.0.2.1", "192.0.2.2"))])
    body = fake.calls("POST", "/batch")[-1].body
    assert sorted(p["ttl"] for p in body["patches"]) == [30, 30]
    assert (await provider.read([shop]))[shop] == RecordSet(
        shop.name, RecordType.A, 30, ("192.0.2.1", "192.0.2.2")
    )
    await provider.apply([Change(shop, 30, None, ("192.0.2.1", "192.0.2.2"))])
    assert len(fake.calls("POST", "/batch")) == 2  # nothing differs: no call at all


async def test_450_changes_with_a_limit_of_200_are_3_batch_calls(fake: FakeCloudflare) -> None:
    p = make(fake, batch_size=200, page_size=100)
    await p.start()
    try:
        changes = [
            Change(a(p, f"h{i}"), 60, None, (f"10.0.{i // 250}.{i % 250 + 1}",)) for i in range(450)
        ]
        await p.apply(changes)
        assert [len(c.body["posts"]) for c in fake.calls("POST", "/batch")] == [200, 200, 50]
        assert p.batches == 3
        flipped = [Change(c.key, 60, c.after, ("192.0.2.99",)) for c in changes]
        await p.apply(flipped)
        sizes = [len(c.body["patches"]) for c in fake.calls("POST", "/batch")[3:]]
        assert sizes == [200, 200, 50]
        assert all(fake.rrset(ZONE, c.key.name) == (60, ["192.0.2.99"]) for c in flipped)
    finally:
        await p.aclose()


async def test_the_plan_limit_is_the_fakes_too(fake: FakeCloudflare) -> None:
    """A batch over the plan's limit is refused whole (4xx, not retried)."""
    fake.batch_limit = 10
    p = make(fake, batch_size=50)
    await p.start()
    try:
        with pytest.raises(ProviderError) as info:
            await p.apply([Change(a(p, f"n{i}"), 60, None, ("192.0.2.1",)) for i in range(20)])
        assert "81063" in str(info.value) and "limit of 10" in str(info.value)
        assert info.value.kind == "invalid" and not info.value.retryable
        assert fake.zone(ZONE).records == {}  # all or nothing
        assert len(fake.calls("POST", "/batch")) == 1
    finally:
        await p.aclose()


def test_a_large_rrset_split_across_batches_is_never_empty() -> None:
    """Chunking: posts go first and deletes last, so every intermediate state answers."""
    old = [Existing(f"id{i}", f"192.0.2.{i}", 60, False) for i in range(1, 6)]
    wanted = Wanted(
        "big.example.test", RecordType.A, 60, tuple(f"198.51.100.{i}" for i in range(1, 9))
    )
    batches = plan_batches([wanted], {(wanted.name, RecordType.A): old}, 3)
    flat = [
        kind
        for b in batches
        for kind in ("posts",) * len(b.posts)
        + ("patches",) * len(b.patches)
        + ("deletes",) * len(b.deletes)
    ]
    assert len(flat) == 8 and all(len(b) <= 3 for b in batches)
    assert "deletes" not in flat  # five records change content, three more are posted
    small = Wanted("s.example.test", RecordType.A, 60, ("192.0.2.1",))
    other = Wanted("t.example.test", RecordType.A, 60, ("192.0.2.1", "192.0.2.2"))
    (one,) = plan_batches([small, other], {}, 3)  # both RRsets fit one batch
    assert len(one.posts) == 3
    two = plan_batches([small, other], {}, 2)  # t's two records stay together
    assert [[p["name"] for p in b.posts] for b in two] == [
        ["s.example.test"],
        ["t.example.test"] * 2,
    ]


# -- proxied records -------------------------------------------------------------------------------


async def test_a_proxied_record_is_refused_unless_listed(
    provider: Provider, fake: FakeCloudflare
) -> None:
    fake.put(ZONE, f"cdn.{ZONE}", "A", "192.0.2.1", proxied=True)
    cdn = a(provider, "cdn")
    with pytest.raises(ProviderError) as info:
        await provider.apply([Change(cdn, 60, ("192.0.2.1",), ("192.0.2.2",))])
    assert "proxied" in str(info.value) and "verify: api" in str(info.value)
    assert info.value.kind == "invalid" and not info.value.retryable
    assert fake.rrset(ZONE, f"cdn.{ZONE}") == (1, ["192.0.2.1"])  # not silently unproxied
    assert all(r["proxied"] for r in fake.zone(ZONE).records.values())
    assert fake.calls("POST", "/batch") == []


async def test_verify_api_opt_in_publishes_and_confirms_proxied_records(
    fake: FakeCloudflare,
) -> None:
    p = make(fake, proxied=frozenset({f"cdn.{ZONE}"}))
    await p.start()
    try:
        cdn, plain = a(p, "cdn"), a(p, "plain")
        changes = [Change(cdn, 60, None, ("192.0.2.5",)), Change(plain, 60, None, ("192.0.2.6",))]
        await p.apply(changes)
        posts = {b["name"]: b["proxied"] for b in fake.calls("POST", "/batch")[-1].body["posts"]}
        assert posts == {f"cdn.{ZONE}": True, f"plain.{ZONE}": False}
        result = await verify_through_api(p, changes, timeout=2.0, interval=0.05)
        assert result.ok and "verify: api" in result.reason
        wrong = [Change(cdn, 60, None, ("192.0.2.7",))]
        late = await verify_through_api(p, wrong, timeout=0.2, interval=0.05)
        assert not late.ok and "192.0.2.5" in late.reason
        # Cloudflare keeps a proxied record's TTL automatic (1); read() reports the TTL asked
        # for, so the engine finds nothing to correct, and a TTL-only change sends nothing
        assert fake.rrset(ZONE, cdn.name) == (1, ["192.0.2.5"])
        assert (await p.read([cdn]))[cdn] == RecordSet(cdn.name, RecordType.A, 60, ("192.0.2.5",))
        calls = len(fake.calls("POST", "/batch"))
        await p.apply([Change(cdn, 30, ("192.0.2.5",), ("192.0.2.5",))])
        assert len(fake.calls("POST", "/batch")) == calls
        assert (await p.read([cdn]))[cdn].ttl == 30  # type: ignore[union-attr]
    finally:
        await p.aclose()
    fresh = make(fake, proxied=True)  # a restart: the TTL asked is not known any more
    await fresh.start()
    try:
        assert (await fresh.read([cdn]))[cdn].ttl == 1  # type: ignore[union-attr]
    finally:
        await fresh.aclose()


# -- errors, retries, faults ---------------------------------------------------------------------


async def test_429_and_5xx_are_retried_and_counted(
    provider: Provider, fake: FakeCloudflare
) -> None:
    fake.throttle("POST", "/batch", retry_after=0)
    fake.inject("GET", "/dns_records", status=502, message="Bad gateway")
    await provider.apply([Change(a(provider, "shop"), 60, None, ("192.0.2.1",))])
    assert sorted(provider.errors) == ["server", "throttling"]
    assert fake.rrset(ZONE, f"shop.{ZONE}") == (60, ["192.0.2.1"])
    assert len(fake.calls("POST", "/batch")) == 2  # the SDK did not retry on its own


async def test_4xx_is_not_retried(provider: Provider, fake: FakeCloudflare) -> None:
    with pytest.raises(ProviderError) as info:
        await provider.apply([Change(a(provider, "shop"), 10, None, ("192.0.2.1",))])
    assert "9021" in str(info.value) and "Invalid TTL" in str(info.value)
    assert provider.errors == ["invalid"] and len(fake.calls("POST", "/batch")) == 1


async def test_one_zone_failing_names_it_and_the_zones_applied(
    provider: Provider, fake: FakeCloudflare
) -> None:
    fake.inject("POST", f"{fake.zone(ZONE).id}/dns_records/batch", status=400, code=1004,
                message="DNS Validation Error")  # fmt: skip
    with pytest.raises(ProviderError) as info:
        await provider.apply(
            [
                Change(a(provider, "www"), 60, None, ("192.0.2.1",)),
                Change(a(provider, "www", OTHER), 60, None, ("192.0.2.2",)),
            ]
        )
    message = str(info.value)
    assert message.startswith(f"cloudflare cf: 1 of 2 zones failed: {ZONE}: ")
    assert "DNS Validation Error" in message and message.endswith(f"(applied: {OTHER})")
    assert info.value.kind == "invalid" and not info.value.retryable
    assert fake.rrset(OTHER, f"www.{OTHER}") == (60, ["192.0.2.2"])
    assert fake.rrset(ZONE, f"www.{ZONE}") is None


async def test_a_zone_the_token_cannot_see(provider: Provider) -> None:
    with pytest.raises(ProviderError) as info:
        await provider.read([a(provider, "x", "missing.test")])
    assert info.value.kind == "not_found" and "missing.test" in str(info.value)


async def test_zone_ids_are_looked_up_once(provider: Provider, fake: FakeCloudflare) -> None:
    for i in range(3):
        await provider.read([a(provider, f"r{i}")])
    assert len(fake.calls("GET", "/zones")) - len(fake.calls("GET", "/dns_records")) == 1


async def test_a_hung_api_fails_on_the_call_timeout(fake: FakeCloudflare) -> None:
    fake.inject("GET", "/dns_records", hang=30.0, times=10)
    p = make(
        fake, timeout=0.3, retry=RetryConfig(attempts=2, initial=0.01, max_delay=0.01, deadline=5)
    )
    await p.start()
    try:
        async with asyncio.timeout(5):
            with pytest.raises(ProviderError) as info:
                await p.read([a(p, "shop")])
        assert info.value.kind == "timeout" and p.errors == ["timeout", "timeout"]
    finally:
        await p.aclose()


async def test_the_token_never_leaks(
    fake: FakeCloudflare, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = make(fake, token="wrong-" + TOKEN)
    await bad.start()
    try:
        with pytest.raises(ProviderError) as info:
            await bad.read([a(bad, "shop")])
        assert info.value.kind == "auth" and "403" in str(info.value)
    finally:
        await bad.aclose()
    assert TOKEN not in str(info.value) and TOKEN not in caplog.text
    assert TOKEN not in repr(bad) and TOKEN not in repr(bad.config)
    assert fake.seen and not any(s.authenticated for s in fake.seen)


async def test_no_token_is_a_clear_error(fake: FakeCloudflare) -> None:
    p = make(fake, token=None)
    with pytest.raises(ProviderError) as info:
        await p.start()
    assert "CLOUDFLARE_API_TOKEN" in str(info.value) and "api_token" in str(info.value)
    env = CloudflareProvider(p.config, [ZONE], environ={"CLOUDFLARE_API_TOKEN": TOKEN})
    await env.start()
    try:
        assert await env.read([a(env, "none")]) == {a(env, "none"): None}
    finally:
        await env.aclose()


async def test_a_lost_answer_is_retried_without_posting_twice(
    provider: Provider, fake: FakeCloudflare
) -> None:
    """The batch committed but its answer was a 502: the retry re-reads and sends nothing."""
    fake.inject("POST", "/batch", status=502, message="Bad gateway", commit=True)
    shop = a(provider, "shop")
    await provider.apply([Change(shop, 60, None, ("192.0.2.1", "192.0.2.2"))])
    assert fake.rrset(ZONE, shop.name) == (60, ["192.0.2.1", "192.0.2.2"])
    assert len(fake.calls("POST", "/batch")) == 1 and provider.errors == ["server"]


async def test_retry_after_is_waited(fake: FakeCloudflare) -> None:
    """Up to the policy's max_delay; the policy's own backoff would be 10 ms here."""
    fake.throttle("POST", "/batch", retry_after=1)
    p = make(fake, retry=RetryConfig(attempts=3, initial=0.01, max_delay=2.0, deadline=10.0))
    await p.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await p.apply([Change(a(p, "shop"), 60, None, ("192.0.2.1",))])
        assert loop.time() - started >= 0.9
        assert p.errors == ["throttling"]
    finally:
        await p.aclose()


async def test_a_zone_re_created_is_looked_up_again(
    provider: Provider, fake: FakeCloudflare
) -> None:
    shop = a(provider, "shop")
    await provider.read([shop])
    old = fake.zone(ZONE)
    del fake.zones[old.id]
    fake.add_zone(ZONE)
    with pytest.raises(ProviderError) as info:
        await provider.read([shop])
    assert info.value.kind == "not_found"
    assert await provider.read([shop]) == {shop: None}  # a new id, found by name


async def test_a_token_echoed_by_the_api_is_redacted(
    provider: Provider, fake: FakeCloudflare, caplog: pytest.LogCaptureFixture
) -> None:
    fake.inject("GET", "/dns_records", status=400, code=6003, message=f"bad header {TOKEN}")
    with pytest.raises(ProviderError) as info:
        await provider.read([a(provider, "shop")])
    assert "bad header ***" in str(info.value) and TOKEN not in str(info.value)
    assert TOKEN not in caplog.text


async def test_only_the_token_is_sent_whatever_the_environment_holds(
    fake: FakeCloudflare, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK picks up CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY by itself; an email would
    replace the token and a global key would travel with every request."""
    monkeypatch.setenv("CLOUDFLARE_EMAIL", "ops@example.test")
    monkeypatch.setenv("CLOUDFLARE_API_KEY", "global-key-0123456789")
    monkeypatch.setenv("CLOUDFLARE_API_USER_SERVICE_KEY", "v1.0-service-key")
    p = make(fake)
    await p.start()
    try:
        assert await p.read([a(p, "shop")]) == {a(p, "shop"): None}
    finally:
        await p.aclose()
    assert fake.seen and all(s.authenticated and not s.other_credentials for s in fake.seen)


async def test_a_record_deleted_behind_our_back_is_read_again(
    provider: Provider, fake: FakeCloudflare
) -> None:
    shop = a(provider, "shop")
    await provider.apply([Change(shop, 60, None, ("192.0.2.1",))])
    fake.inject("POST", "/batch", status=404, code=81044, message="Record does not exist.")
    await provider.apply([Change(shop, 60, ("192.0.2.1",), ("192.0.2.2",))])
    assert fake.rrset(ZONE, shop.name) == (60, ["192.0.2.2"])
    assert provider.errors == ["not_found"]
    reads = [s.query for s in fake.calls("GET", "/dns_records")]
    assert reads[-1] == {"name.exact": shop.name, "type": "A", "page": "1", "per_page": "5"}


async def test_a_failed_later_batch_says_what_went_through(fake: FakeCloudflare) -> None:
    fake.inject("POST", "/batch", status=400, code=1004, message="DNS Validation Error", after=1)
    p = make(fake, batch_size=4)
    await p.start()
    try:
        with pytest.raises(ProviderError) as info:
            await p.apply([Change(a(p, f"n{i}"), 60, None, ("192.0.2.1",)) for i in range(10)])
        assert "batch 2/3" in str(info.value) and "(1 of 3 batches applied)" in str(info.value)
        assert len(fake.zone(ZONE).records) == 4  # the first batch, whole
    finally:
        await p.aclose()
