"""The rfc2136 provider against a real BIND: contract, prerequisites, TSIG and rcode handling."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.config.types import Rfc2136ProviderConfig, Secret, TsigConfig
from failover.model import Change, RecordKey, RecordSet, RecordType
from failover.providers.base import ProviderError
from failover.providers.registry import create_provider
from failover.providers.rfc2136 import (
    TCP_LIMIT,
    UDP_LIMIT,
    Rfc2136Provider,
    build_update,
    split_changes,
)
from failover.store import Store
from tests.providers.bind import KEY_NAME, LIMITED_KEY, OTHER, ZONE, BindServer, rfc2136_provider
from tests.providers.contract import CHECKS, Check, key


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    server = BindServer(tmp_path_factory.mktemp("bind")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def provider(bind: BindServer) -> Rfc2136Provider:
    return rfc2136_provider(bind)


def a(p: Rfc2136Provider, label: str, zone: str = ZONE) -> RecordKey:
    return key(p, zone, label, RecordType.A)


async def create(p: Rfc2136Provider, k: RecordKey, *values: str, ttl: int = 60) -> None:
    await p.apply([Change(k, ttl, None, values)])


# -- contract and batching ------------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_contract(provider: Rfc2136Provider, check: Check) -> None:
    await provider.start()
    await check(provider, ZONE, "contract")
    await provider.aclose()
    assert provider.errors == []  # type: ignore[attr-defined]


def test_registry_builds_it(bind: BindServer, tmp_path: Path) -> None:
    config = Rfc2136ProviderConfig("bind", "127.0.0.1", port=bind.port)
    assert isinstance(create_provider(config, [ZONE], Store(tmp_path)), Rfc2136Provider)


async def test_one_message_per_zone_and_one_serial_bump(
    bind: BindServer, provider: Rfc2136Provider
) -> None:
    serials = bind.serial(ZONE), bind.serial(OTHER)
    changes = [Change(a(provider, f"batch{i}"), 60, None, (f"192.0.2.{i}",)) for i in range(5)]
    changes.append(Change(a(provider, "batch", OTHER), 60, None, ("192.0.2.99",)))
    receipt = await provider.apply(changes)
    assert receipt.change_ids == (ZONE, OTHER)
    await provider.wait_in_sync(receipt, 1)
    assert (bind.serial(ZONE), bind.serial(OTHER)) == (serials[0] + 1, serials[1] + 1)
    assert bind.values(f"batch3.{ZONE}") == ["192.0.2.3"]
    assert bind.values(f"batch.{OTHER}") == ["192.0.2.99"]


async def test_ttl_only_change_and_no_op(bind: BindServer, provider: Rfc2136Provider) -> None:
    k = a(provider, "ttl")
    await create(provider, k, "192.0.2.1", ttl=60)
    await provider.apply([Change(k, 20, ("192.0.2.1",), ("192.0.2.1",))])
    assert (await provider.read([k]))[k] == RecordSet(k.name, RecordType.A, 20, ("192.0.2.1",))
    serial = bind.serial()
    await provider.apply([Change(k, 20, ("192.0.2.1",), ("192.0.2.1",))])
    assert bind.serial() == serial  # BIND skips a no-op update


async def test_large_batch_is_split_below_64k(bind: BindServer, provider: Rfc2136Provider) -> None:
    sent: list[int] = []
    send = provider._send_update

    async def counting(address: str, zone: str, changes: list[Change]) -> None:
        sent.append(len(changes))
        await send(address, zone, changes)

    provider._send_update = counting  # type: ignore[method-assign]
    changes = [
        Change(a(provider, f"mass{i}"), 30, None, (f"10.{i // 250}.{i % 250}.1", "192.0.2.1"))
        for i in range(1200)
    ]
    serial = bind.serial()
    await provider.apply(changes)
    assert len(sent) >= 2 and sum(sent) == 1200
    assert bind.serial() == serial + len(sent)
    got = await provider.read([c.key for c in changes])
    assert all(got[c.key] is not None and got[c.key].values == c.after for c in changes)  # type: ignore[union-attr]


async def test_many_keys_are_read_pipelined_on_one_connection(bind: BindServer) -> None:
    """Start-up reads every record: more than one pipeline's worth of questions goes over
    TCP without a lone query per key, answers matched to their keys (absent ones included).
    (Without zone transfers: test_rfc2136_transfer.py reads the same in one AXFR.)"""
    provider = rfc2136_provider(bind, zone_transfer=False)
    changes = [
        Change(a(provider, f"pipe{i}"), 30, None, (f"10.9.{i // 250}.{i % 250}",))
        for i in range(600)
    ]
    await provider.apply(changes)
    alone: list[RecordKey] = []
    read_one = provider._read_one

    async def counting(address: str, k: RecordKey) -> RecordSet | None:
        alone.append(k)
        return await read_one(address, k)

    provider._read_one = counting  # type: ignore[method-assign]
    keys = [c.key for c in changes] + [a(provider, "pipe-absent")]
    got = await provider.read(keys)
    assert alone == []
    assert got[keys[-1]] is None
    assert [got[c.key].values for c in changes] == [c.after for c in changes]  # type: ignore[union-attr]
    assert all(got[c.key].ttl == 30 for c in changes)  # type: ignore[union-attr]


def test_split_changes_respects_the_limit() -> None:
    p = Rfc2136Provider(Rfc2136ProviderConfig("bind", "127.0.0.1"))
    changes = [Change(a(p, f"host-{i}"), 60, None, (f"192.0.2.{i % 250}",)) for i in range(1500)]
    for limit in (TCP_LIMIT, UDP_LIMIT):
        parts = split_changes(ZONE, changes, limit)
        assert len(parts) > 1 and [c for part in parts for c in part] == changes
        sizes = [len(build_update(ZONE, part).to_wire()) for part in parts]
        assert max(sizes) <= limit and min(sizes[:-1]) > limit * 0.6  # parts are well filled
    assert len(split_changes(ZONE, changes[:10], TCP_LIMIT)) == 1


async def test_read_ignores_a_cname_when_asked_for_a(provider: Rfc2136Provider) -> None:
    alias = key(provider, ZONE, "alias", RecordType.CNAME)
    await provider.apply([Change(alias, 60, None, (f"www.{ZONE}",))])
    as_a = a(provider, "alias")
    got = await provider.read([as_a, alias])
    assert got[as_a] is None
    assert got[alias] == RecordSet(alias.name, RecordType.CNAME, 60, (f"www.{ZONE}",))


# -- concurrent edits -----------------------------------------------------------------------------


async def test_hand_edit_since_read_is_a_conflict(
    bind: BindServer, provider: Rfc2136Provider
) -> None:
    edited, bystander = a(provider, "edited"), a(provider, "bystander")
    await create(provider, edited, "192.0.2.1")
    hand = bind.update()
    hand.replace("edited", 60, "A", "192.0.2.99")
    bind.send(hand)

    serial = bind.serial()
    with pytest.raises(ProviderError) as info:
        await provider.apply(
            [
                Change(edited, 60, ("192.0.2.1",), ("198.51.100.1",)),
                Change(bystander, 60, None, ("198.51.100.2",)),
            ]
        )
    err = info.value
    assert err.kind == "conflict" and not err.retryable
    assert "someone changed" in str(err) and "192.0.2.99" in str(err)
    assert provider.errors == ["conflict"]  # type: ignore[attr-defined]  # not retried
    assert bind.values(f"edited.{ZONE}") == ["192.0.2.99"]
    assert bind.values(f"bystander.{ZONE}") == []  # the zone's batch is all or nothing
    assert bind.serial() == serial


async def test_record_created_by_someone_else_is_a_conflict(
    bind: BindServer, provider: Rfc2136Provider
) -> None:
    hand = bind.update()
    hand.add("appeared", 60, "A", "192.0.2.50")
    bind.send(hand)
    with pytest.raises(ProviderError) as info:
        await create(provider, a(provider, "appeared"), "198.51.100.1")
    assert info.value.kind == "conflict"
    assert "appeared" in str(info.value) and "(absent)" in str(info.value)


async def test_already_applied_change_is_not_a_conflict(
    bind: BindServer, provider: Rfc2136Provider
) -> None:
    """A retry whose first attempt landed (its answer was lost) sees a failed prerequisite."""
    k = a(provider, "landed")
    await create(provider, k, "198.51.100.1")
    await provider.apply([Change(k, 60, None, ("198.51.100.1",))])
    await provider.apply([Change(k, 60, ("192.0.2.1",), ("198.51.100.1",))])
    assert bind.values(k.name) == ["198.51.100.1"]


async def test_cname_rule_breaks_are_conflicts_not_silent_no_ops(
    bind: BindServer, provider: Rfc2136Provider
) -> None:
    cname = key(provider, ZONE, "taken", RecordType.CNAME)
    await provider.apply([Change(cname, 60, None, (f"www.{ZONE}",))])
    with pytest.raises(ProviderError) as info:
        await create(provider, a(provider, "taken"), "192.0.2.1")
    assert info.value.kind == "conflict"

    await create(provider, a(provider, "has-a"), "192.0.2.1")
    with pytest.raises(ProviderError) as info:
        await provider.apply(
            [Change(key(provider, ZONE, "has-a", RecordType.CNAME), 60, None, (f"www.{ZONE}",))]
        )
    assert info.value.kind == "conflict"
    assert bind.values(f"has-a.{ZONE}") == ["192.0.2.1"]


# -- server refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("reading", [0, 1, 300], ids=["update", "read", "read-pipelined"])
async def test_wrong_secret_is_an_auth_error_without_the_secret(
    bind: BindServer, caplog: pytest.LogCaptureFixture, reading: int
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = base64.b64encode(os.urandom(32)).decode()
    p = rfc2136_provider(bind, tsig=TsigConfig(KEY_NAME, Secret(wrong)))
    with pytest.raises(ProviderError) as info:
        if reading:
            await p.read([a(p, f"www{i}") for i in range(reading)])
        else:
            await create(p, a(p, "never"), "192.0.2.1")
    err = info.value
    assert err.kind == "auth" and not err.retryable
    assert "BADSIG" in str(err) and KEY_NAME in str(err)
    assert p.errors == ["auth"]  # type: ignore[attr-defined]
    for secret in (wrong, bind.secret):
        assert secret not in str(err) and secret not in repr(err)
        assert secret not in caplog.text and secret not in repr(p)
    assert bind.values(f"never.{ZONE}") == []


@pytest.mark.parametrize(
    ("name", "algorithm"), [("nobody-key", "hmac-sha256"), (KEY_NAME, "hmac-sha512")]
)
async def test_unknown_key_or_algorithm_is_badkey(
    bind: BindServer, name: str, algorithm: str
) -> None:
    p = rfc2136_provider(bind, tsig=TsigConfig(name, Secret(bind.secret), algorithm))
    with pytest.raises(ProviderError) as info:
        await create(p, a(p, "never"), "192.0.2.1")
    assert info.value.kind == "auth" and "BADKEY" in str(info.value)
    assert f"TSIG key {name} with algorithm {algorithm}" in str(info.value)


async def test_unknown_zone_is_notauth(bind: BindServer, provider: Rfc2136Provider) -> None:
    with pytest.raises(ProviderError) as info:
        await create(provider, a(provider, "www", "unknown.test"), "192.0.2.1")
    assert info.value.kind == "notauth" and not info.value.retryable
    assert "not authoritative for zone unknown.test" in str(info.value)
    assert provider.errors == ["notauth"]  # type: ignore[attr-defined]

    with pytest.raises(ProviderError) as info:
        await provider.read([a(provider, "www", "unknown.test")])
    assert info.value.kind == "notauth" and "REFUSED" in str(info.value)


async def test_key_without_permission_is_refused(bind: BindServer) -> None:
    p = rfc2136_provider(bind, tsig=TsigConfig(LIMITED_KEY, Secret(bind.limited_secret)))
    await create(p, a(p, "limited"), "192.0.2.7")  # its one allowed name
    assert bind.values(f"limited.{ZONE}") == ["192.0.2.7"]
    with pytest.raises(ProviderError) as info:
        await create(p, a(p, "forbidden"), "192.0.2.8")
    err = info.value
    assert err.kind == "refused" and not err.retryable
    assert f"TSIG key {LIMITED_KEY} is not allowed" in str(err) and ZONE in str(err)
    assert p.errors == ["refused"]  # type: ignore[attr-defined]


async def test_unsigned_update_is_refused(bind: BindServer) -> None:
    p = rfc2136_provider(bind, tsig=None)
    assert (await p.read([a(p, "www")]))[a(p, "www")] is not None  # queries need no key
    with pytest.raises(ProviderError) as info:
        await create(p, a(p, "unsigned"), "192.0.2.1")
    assert info.value.kind == "refused" and "unsigned updates are not allowed" in str(info.value)


async def test_invalid_changes_fail_before_sending(provider: Rfc2136Provider) -> None:
    bad = [
        Change(RecordKey("bind", ZONE, "www.example.net", RecordType.A), 60, None, ("192.0.2.1",)),
        Change(RecordKey("other", ZONE, f"x.{ZONE}", RecordType.A), 60, None, ("192.0.2.1",)),
        Change(a(provider, "x"), 60, None, ("not-an-ip",)),
        Change(a(provider, "x"), 60, None, ()),
        Change(a(provider, "x"), -5, None, ("192.0.2.1",)),
        Change(RecordKey("bind", ZONE, ZONE, RecordType.CNAME), 60, None, ("x.example.net",)),
        Change(key(provider, ZONE, "x", RecordType.CNAME), 60, None, ("a.test", "b.test")),
    ]
    for change in bad:
        with pytest.raises(ProviderError) as info:
            await provider.apply([change])
        assert info.value.kind == "invalid", change
    assert provider.errors == []  # type: ignore[attr-defined]  # nothing reached the server


def test_prerequisites_on_the_wire() -> None:
    p = Rfc2136Provider(Rfc2136ProviderConfig("bind", "127.0.0.1"))
    message = build_update(
        ZONE,
        [
            Change(a(p, "new"), 60, None, ("192.0.2.1",)),
            Change(a(p, "old"), 30, ("192.0.2.2", "192.0.2.3"), ("192.0.2.4",)),
        ],
    )
    text = message.to_text()
    prerequisites, updates = text.split(";UPDATE")
    assert "new.example.test. NONE A\n" in prerequisites  # RRset does not exist
    assert "new.example.test. NONE CNAME\n" in prerequisites  # and no CNAME hides there
    assert "old.example.test. 0 IN A 192.0.2.2\n" in prerequisites  # value-dependent, TTL 0
    assert "old.example.test. 0 IN A 192.0.2.3\n" in prerequisites
    assert "old.example.test. ANY A\n" in updates  # delete the RRset, then add
    assert "old.example.test. 30 IN A 192.0.2.4\n" in updates
