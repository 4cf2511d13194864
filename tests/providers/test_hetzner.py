"""The hetzner provider (hcloud SDK) against the local fake Cloud API: contract, calls, faults."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from failover.config.types import HetznerProviderConfig, RetryConfig, Secret
from failover.model import Change, RecordKey, RecordSet, RecordType
from failover.providers.base import ProviderError
from failover.providers.hetzner import HetznerProvider
from failover.providers.registry import factory
from tests.providers.contract import CHECKS, Check, key
from tests.providers.fake_hetzner import FakeHetzner

TOKEN = "hz-7Qk2Xy9LmN4pR8sT1vW3zA6bC0dE5fG"
ZONE, OTHER, SECONDARY = "example.test", "other.test", "sec.test"
FAST = RetryConfig(attempts=3, initial=0.01, max_delay=0.05, deadline=10.0)


class Provider(HetznerProvider):
    errors: list[str]


def make(fake: FakeHetzner, *, token: str | None = TOKEN, **overrides: Any) -> Provider:
    options: dict[str, Any] = {"timeout": 2.0, "retry": FAST, **overrides}
    config = HetznerProviderConfig(
        "hz", api_endpoint=fake.url, token=Secret(token) if token else None, **options
    )
    p = Provider(config, [ZONE, OTHER, SECONDARY, "missing.test"], environ={})
    p.errors = []
    p.on_error = p.errors.append
    p.poll_initial = 0.01
    return p


@pytest.fixture
async def fake() -> AsyncIterator[FakeHetzner]:
    f = FakeHetzner(TOKEN, running_polls=2, updating_polls=1)
    f.add_zone(ZONE)
    f.add_zone(OTHER)
    f.add_zone(SECONDARY, mode="secondary")
    await f.start()
    try:
        yield f
    finally:
        await f.close()


@pytest.fixture
async def provider(fake: FakeHetzner) -> AsyncIterator[Provider]:
    p = make(fake)
    await p.start()
    try:
        yield p
    finally:
        await p.aclose()


def a(p: HetznerProvider, label: str, zone: str = ZONE) -> RecordKey:
    return key(p, zone, label, RecordType.A)


# -- contract and wire format ---------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_contract(fake: FakeHetzner, check: Check) -> None:
    p = make(fake)
    await p.start()
    try:
        await check(p, ZONE, "contract")
    finally:
        await p.aclose()
    assert p.errors == []
    assert all(seen.authenticated for seen in fake.seen)
    assert all(a.status == "success" for a in fake.actions.values())


async def test_one_rrset_per_name_and_type_relative_names_absolute_cname(
    provider: Provider, fake: FakeHetzner
) -> None:
    apex = RecordKey("hz", ZONE, ZONE, RecordType.AAAA)
    cname = key(provider, ZONE, "alias", RecordType.CNAME)
    receipt = await provider.apply(
        [
            Change(a(provider, "www"), 60, None, ("192.0.2.2", "192.0.2.1")),
            Change(cname, 300, None, ("Target.Example.NET.",)),
            Change(apex, 120, None, ("2001:db8::1",)),
        ]
    )
    await provider.wait_in_sync(receipt, 5)
    assert fake.rrset(ZONE, "www", "A") == (60, ["192.0.2.1", "192.0.2.2"])
    assert fake.rrset(ZONE, "alias", "CNAME") == (300, ["target.example.net."])
    assert fake.rrset(ZONE, "@", "AAAA") == (120, ["2001:db8::1"])
    created = [s.body["name"] for s in fake.calls("POST", "/rrsets") if s.path.endswith("rrsets")]
    assert sorted(created) == ["@", "alias", "www"]
    got = await provider.read([cname, apex])
    assert got[cname] == RecordSet(cname.name, RecordType.CNAME, 300, ("target.example.net",))


async def test_a_change_sets_records_and_a_new_ttl_changes_the_ttl(
    provider: Provider, fake: FakeHetzner
) -> None:
    fake.put(ZONE, "shop", "A", ["192.0.2.1"], ttl=300)
    k = a(provider, "shop")
    await provider.apply([Change(k, 300, ("192.0.2.1",), ("192.0.2.2",))])
    assert [s.path.rsplit("/", 1)[-1] for s in fake.calls("POST")] == ["set_records"]
    assert fake.rrset(ZONE, "shop", "A") == (300, ["192.0.2.2"])
    # a planned switchover lowers the TTL through an ordinary change: same values, new TTL
    await provider.apply([Change(k, 60, ("192.0.2.2",), ("192.0.2.2",))])
    assert [s.path.rsplit("/", 1)[-1] for s in fake.calls("POST")] == ["set_records", "change_ttl"]
    assert fake.calls("POST", "change_ttl")[0].body == {"ttl": 60}
    assert (await provider.read([k]))[k] == RecordSet(k.name, RecordType.A, 60, ("192.0.2.2",))
    # both at once: two actions, both awaited
    await provider.apply([Change(k, 30, ("192.0.2.2",), ("192.0.2.3",))])
    assert fake.rrset(ZONE, "shop", "A") == (30, ["192.0.2.3"])


async def test_actions_are_awaited_until_success(provider: Provider, fake: FakeHetzner) -> None:
    fake.running_polls = 3
    await provider.apply([Change(a(provider, "slow"), 60, None, ("192.0.2.5",))])
    (action,) = fake.actions.values()
    assert action.status == "success"
    assert len(fake.calls("GET", f"/actions/{action.id}")) == 3


async def test_an_error_action_is_a_failed_change_with_its_message(
    provider: Provider, fake: FakeHetzner
) -> None:
    fake.put(ZONE, "shop", "A", ["192.0.2.1"], ttl=60)
    fake.fail_next_action("record could not be published")
    with pytest.raises(ProviderError) as raised:
        await provider.apply([Change(a(provider, "shop"), 60, None, ("192.0.2.9",))])
    assert raised.value.kind == "action" and not raised.value.retryable
    assert "record could not be published" in str(raised.value)
    assert "shop/A" in str(raised.value)
    assert fake.rrset(ZONE, "shop", "A") == (60, ["192.0.2.1"])
    assert provider.errors == ["action"]


async def test_a_secondary_zone_is_a_configuration_error_naming_it(
    provider: Provider, fake: FakeHetzner
) -> None:
    with pytest.raises(ProviderError) as raised:
        await provider.apply([Change(a(provider, "www", SECONDARY), 60, None, ("192.0.2.1",))])
    assert raised.value.kind == "config" and SECONDARY in str(raised.value)
    assert "primary" in str(raised.value)
    assert not fake.calls("POST")


async def test_incorrect_zone_mode_from_the_api_is_a_configuration_error(
    provider: Provider, fake: FakeHetzner
) -> None:
    """The zone turned secondary after it was looked up: the API's 422 says so."""
    await provider.read([a(provider, "www")])
    fake.zones[ZONE].mode = "secondary"
    with pytest.raises(ProviderError) as raised:
        await provider.apply([Change(a(provider, "www"), 60, None, ("192.0.2.1",))])
    assert raised.value.kind == "config" and not raised.value.retryable
    assert ZONE in str(raised.value) and "incorrect_zone_mode" in str(raised.value)
    assert len(fake.calls("POST")) == 1  # not retried
    assert provider.errors == ["config"]


async def test_unknown_zone_is_a_clear_error(provider: Provider) -> None:
    with pytest.raises(ProviderError) as raised:
        await provider.read([a(provider, "www", "missing.test")])
    assert raised.value.kind == "not_found" and "no zone missing.test" in str(raised.value)


async def test_a_zone_created_again_is_found_again(provider: Provider, fake: FakeHetzner) -> None:
    """Its id changed: the cached one answers 404 once, then the zone is looked up by name."""
    await provider.read([a(provider, "www")])
    del fake.zones[ZONE]
    fake.add_zone(ZONE)
    with pytest.raises(ProviderError) as raised:
        await provider.read([a(provider, "www")])
    assert raised.value.kind == "not_found"
    await provider.apply([Change(a(provider, "www"), 60, None, ("192.0.2.1",))])
    assert fake.rrset(ZONE, "www", "A") == (60, ["192.0.2.1"])


async def test_429_and_5xx_are_retried_by_our_policy_and_counted(
    provider: Provider, fake: FakeHetzner
) -> None:
    fake.inject("POST", "/rrsets", status=429, code="rate_limit_exceeded", message="limit")
    fake.inject("GET", "/actions/", status=503, code="unavailable", message="down")
    fake.inject("GET", "/rrsets", status=502, code="bad_gateway", message="gw")
    await provider.apply([Change(a(provider, "www"), 60, None, ("192.0.2.1",))])
    assert fake.rrset(ZONE, "www", "A") == (60, ["192.0.2.1"])
    assert sorted(provider.errors) == ["server", "server", "throttling"]
    # one request per attempt: the SDK's own retries are off
    assert len(fake.calls("POST", "/rrsets")) == 2


async def test_a_proxy_error_without_json_is_retried(provider: Provider, fake: FakeHetzner) -> None:
    fake.inject("GET", "/zones/", status=502, raw=True)
    assert await provider.read([a(provider, "none")]) == {a(provider, "none"): None}
    assert provider.errors == ["server"]


async def test_retries_give_up_after_the_policy(provider: Provider, fake: FakeHetzner) -> None:
    fake.inject("GET", "/zones/", status=500, times=10)
    with pytest.raises(ProviderError) as raised:
        await provider.read([a(provider, "www")])
    assert raised.value.kind == "server" and raised.value.counted
    assert provider.errors == ["server"] * 3


@pytest.mark.parametrize("token", [None, "wrong-token-123"])
async def test_auth_errors_are_not_retried_and_never_show_the_token(
    fake: FakeHetzner, token: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    if token is None:
        p = make(fake, token=None)
        with pytest.raises(ProviderError) as raised:
            await p.start()
        assert "HCLOUD_TOKEN" in str(raised.value) and raised.value.kind == "auth"
        return
    p = make(fake, token=token)
    await p.start()
    try:
        with pytest.raises(ProviderError) as raised:
            await p.read([a(p, "www")])
        assert raised.value.kind == "auth" and not raised.value.retryable
        assert len(fake.seen) == 1
        for text in (str(raised.value), caplog.text, repr(p), repr(p.config)):
            assert token not in text
    finally:
        await p.aclose()


async def test_the_token_never_leaks(fake: FakeHetzner, caplog: pytest.LogCaptureFixture) -> None:
    """Even an API error that echoes the token back is redacted."""
    caplog.set_level(logging.DEBUG)
    p = make(fake)
    await p.start()
    try:
        fake.inject("GET", "/zones/", status=400, code="invalid_input", message=f"bad {TOKEN}")
        with pytest.raises(ProviderError) as raised:
            await p.read([a(p, "www")])
        for text in (str(raised.value), caplog.text, repr(p), repr(p.config), str(p.config)):
            assert TOKEN not in text
        assert "***" in str(raised.value)
    finally:
        await p.aclose()


async def test_token_comes_from_the_environment(fake: FakeHetzner) -> None:
    config = HetznerProviderConfig("hz", api_endpoint=fake.url, retry=FAST)
    p = HetznerProvider(config, [ZONE], environ={"HCLOUD_TOKEN": TOKEN})
    await p.start()
    try:
        assert await p.read([a(p, "www")]) == {a(p, "www"): None}
        assert all(s.authenticated for s in fake.seen)
    finally:
        await p.aclose()


async def test_many_keys_of_a_zone_are_read_in_one_paged_listing(
    provider: Provider, fake: FakeHetzner
) -> None:
    for n in range(60):
        fake.put(ZONE, f"h{n}", "A", [f"192.0.2.{n + 1}"], ttl=60)
    keys = [a(provider, f"h{n}") for n in range(60)] + [a(provider, "absent")]
    got = await provider.read(keys)
    assert got[keys[7]] == RecordSet(keys[7].name, RecordType.A, 60, ("192.0.2.8",))
    assert got[keys[-1]] is None
    listed = fake.calls("GET", f"/zones/{fake.zones[ZONE].id}/rrsets")
    assert [s.query.get("page") for s in listed] == ["1", "2"]


async def test_a_mass_change_reads_the_zone_in_one_listing_first(
    provider: Provider, fake: FakeHetzner
) -> None:
    for n in range(20):
        fake.put(ZONE, f"s{n}", "A", ["192.0.2.1"], ttl=60)
    keys = [a(provider, f"s{n}") for n in range(20)]
    await provider.apply([Change(k, 60, ("192.0.2.1",), ("192.0.2.2",)) for k in keys])
    reads = fake.calls("GET", "/rrsets")
    assert len(reads) == 1 and "name" not in reads[0].query  # not one read per RRSet
    assert [s.path.rsplit("/", 1)[-1] for s in fake.calls("POST")] == ["set_records"] * 20
    assert all(fake.rrset(ZONE, f"s{n}", "A") == (60, ["192.0.2.2"]) for n in range(20))


async def test_a_hung_api_is_cut_by_the_timeout_and_the_loop_keeps_running(
    fake: FakeHetzner,
) -> None:
    p = make(fake, timeout=0.3, retry=RetryConfig(attempts=1, initial=0.01, deadline=5))
    await p.start()
    try:
        fake.inject("GET", "/zones/", hang=True)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        with pytest.raises(ProviderError) as raised:
            await p.read([a(p, "www")])
        ticker.cancel()
        assert raised.value.kind == "timeout"
        assert time.monotonic() - started < 2.0
        assert ticks > 5  # the event loop ran while the SDK call hung in its thread
    finally:
        await p.aclose()


async def test_a_hung_zone_does_not_delay_the_others(fake: FakeHetzner) -> None:
    p = make(fake, timeout=3.0, retry=RetryConfig(attempts=1, initial=0.01, deadline=5))
    await p.start()
    try:
        fake.inject("GET", f"/zones/{OTHER}", hang=True)
        hung = asyncio.create_task(p.read([a(p, "www", OTHER)]))
        started = time.monotonic()
        await p.apply([Change(a(p, "www"), 60, None, ("192.0.2.1",))])
        assert time.monotonic() - started < 1.5  # did not wait for the hung read's 3 s timeout
        with pytest.raises(ProviderError):
            await hung
    finally:
        await p.aclose()


async def test_wait_in_sync_polls_until_the_zone_is_ok(
    provider: Provider, fake: FakeHetzner
) -> None:
    fake.updating_polls = 3
    receipt = await provider.apply([Change(a(provider, "www"), 60, None, ("192.0.2.1",))])
    before = len(fake.calls("GET", f"/zones/{ZONE}"))
    await provider.wait_in_sync(receipt, 5)
    zone_reads = [s for s in fake.calls("GET", f"/zones/{ZONE}") if s.path == f"/zones/{ZONE}"]
    assert len(fake.calls("GET", f"/zones/{ZONE}")) - before == 3
    assert zone_reads and fake.zones[ZONE].updating_left == 0


async def test_wait_in_sync_times_out_naming_the_zone(
    provider: Provider, fake: FakeHetzner
) -> None:
    fake.updating_polls = 10_000
    receipt = await provider.apply([Change(a(provider, "www"), 60, None, ("192.0.2.1",))])
    with pytest.raises(ProviderError) as raised:
        await provider.wait_in_sync(receipt, 0.2)
    assert raised.value.kind == "timeout" and ZONE in str(raised.value)


async def test_a_lost_create_answer_is_not_a_failure(provider: Provider, fake: FakeHetzner) -> None:
    """The create went through but its answer was lost: the retry finds the RRSet exists and
    sets it instead."""
    fake.inject("POST", "/rrsets", status=503, code="unavailable", after=True)
    await provider.apply([Change(a(provider, "www"), 60, None, ("192.0.2.2",))])
    assert fake.rrset(ZONE, "www", "A") == (60, ["192.0.2.2"])
    commands = [s.path.rsplit("/", 1)[-1] for s in fake.calls("POST")]
    assert commands == ["rrsets", "rrsets", "set_records", "change_ttl"]
    assert provider.errors == ["server"]


async def test_invalid_values_are_refused_before_any_call(
    provider: Provider, fake: FakeHetzner
) -> None:
    with pytest.raises(ProviderError) as raised:
        await provider.apply([Change(a(provider, "www"), 60, None, ("not-an-ip",))])
    assert raised.value.kind == "invalid"
    assert not fake.seen


def test_registered() -> None:
    from failover.providers.hetzner import create

    assert factory("hetzner") is create


async def test_the_fake_speaks_what_the_official_sdk_parses(fake: FakeHetzner) -> None:
    """The fake is checked against hcloud itself: its error objects, pages and actions."""
    from hcloud import APIException, Client
    from hcloud.zones import ZoneRecord, ZoneRRSet

    def session() -> list[object]:
        client = Client(TOKEN, api_endpoint=fake.url, poll_interval=0.01)
        client._client._retry_max_retries = 0
        seen: list[object] = []
        zone = client.zones.get(ZONE)
        seen.append((zone.name, zone.mode, zone.status))
        created = client.zones.create_rrset(
            zone, name="www", type="A", ttl=60, records=[ZoneRecord("192.0.2.1")]
        )
        created.action.wait_until_finished()  # the SDK's own polling of /actions/{id}
        seen.append((created.rrset.id, created.action.status))
        rrset = ZoneRRSet(name="www", type="A", zone=zone)
        client.zones.set_rrset_records(rrset, [ZoneRecord("192.0.2.2")]).wait_until_finished()
        client.zones.change_rrset_ttl(rrset, 30).wait_until_finished()
        got = client.zones.get_rrset(zone, "www", "A")
        seen.append((got.ttl, [r.value for r in got.records]))
        for call in (
            lambda: Client("bad", api_endpoint=fake.url).zones.get(ZONE),
            lambda: client.zones.get("nowhere.test"),
            lambda: client.zones.create_rrset(
                client.zones.get(SECONDARY), name="x", type="A", records=[ZoneRecord("192.0.2.1")]
            ),
            lambda: client.zones.create_rrset(zone, name="www", type="A", records=[]),
        ):
            try:
                call()
            except APIException as exc:
                seen.append(exc.code)
        return seen

    fake.inject("GET", "/zones/nowhere.test", status=429, code="rate_limit_exceeded")
    assert await asyncio.to_thread(session) == [
        (ZONE, "primary", "ok"),
        ("www/A", "success"),
        (30, ["192.0.2.2"]),
        "unauthorized",
        "rate_limit_exceeded",
        "incorrect_zone_mode",
        "invalid_input",
    ]
