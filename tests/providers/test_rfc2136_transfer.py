"""Reads of many names through one zone transfer (AXFR), against a real BIND: example.test may
be transferred with the main key, other.test may not (BIND's `allow-transfer { none; }`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from failover.config.types import RetryConfig, Rfc2136ProviderConfig
from failover.model import Change, RecordKey, RecordType
from failover.providers.base import ProviderError
from failover.providers.rfc2136 import Rfc2136Provider
from failover.providers.rfc2136 import transfer as transfer_module
from tests.providers.bind import OTHER, ZONE, BindServer, rfc2136_provider
from tests.providers.contract import key

MANY = 100  # more than transfer.MIN_KEYS


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    server = BindServer(tmp_path_factory.mktemp("bind-transfer")).start()
    try:
        yield server
    finally:
        server.stop()


def count_queries(p: Rfc2136Provider) -> list[RecordKey]:
    """Every key the provider asks with a query of its own (pipelined or alone)."""
    asked: list[RecordKey] = []
    query = p._read_query

    def counting(k: RecordKey) -> Any:
        asked.append(k)
        return query(k)

    p._read_query = counting  # type: ignore[method-assign]
    return asked


async def publish(p: Rfc2136Provider, zone: str, prefix: str, n: int = MANY) -> list[Change]:
    changes = [
        Change(
            key(p, zone, f"{prefix}{i}", RecordType.A), 45, None, (f"10.7.{i // 200}.{i % 200}",)
        )
        for i in range(n)
    ]
    await p.apply(changes)
    return changes


async def test_many_names_are_read_in_one_signed_transfer(bind: BindServer) -> None:
    p = rfc2136_provider(bind)
    changes = await publish(p, ZONE, "xfr")
    six = key(p, ZONE, "xfr-six", RecordType.AAAA)
    alias = key(p, ZONE, "xfr-alias", RecordType.CNAME)
    await p.apply(
        [
            Change(six, 30, None, ("2001:db8::1", "2001:db8::2")),
            Change(alias, 30, None, ("xfr0.example.test",)),
        ]
    )
    absent = key(p, ZONE, "xfr-absent", RecordType.A)
    cname_not_a = key(p, ZONE, "xfr-alias", RecordType.A)  # a CNAME stands there: no A
    asked = count_queries(p)
    started, _ = bind.transfers()
    keys = [c.key for c in changes] + [six, alias, absent, cname_not_a]
    got = await p.read(keys)
    assert asked == []  # not one query: everything came from the transfer
    assert bind.transfers()[0] == started + 1
    assert [got[c.key].values for c in changes] == [c.after for c in changes]  # type: ignore[union-attr]
    assert {got[c.key].ttl for c in changes} == {45}  # type: ignore[union-attr]
    assert got[six] is not None and got[six].values == ("2001:db8::1", "2001:db8::2")
    assert got[alias] is not None and got[alias].values == ("xfr0.example.test",)
    assert got[absent] is None and got[cname_not_a] is None
    # the same answers as one query per name
    queried = await rfc2136_provider(bind, zone_transfer=False).read(keys)
    assert queried == got


async def test_a_refused_transfer_is_read_name_by_name_and_not_asked_again(
    bind: BindServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    p = rfc2136_provider(bind)
    changes = await publish(p, OTHER, "refused")
    assert p.read_chunk == 0  # a transfer may bring every name at once
    _, denied = bind.transfers(OTHER)
    asked = count_queries(p)
    for _ in range(2):
        got = await p.read([c.key for c in changes])
        assert [got[c.key].values for c in changes] == [c.after for c in changes]  # type: ignore[union-attr]
    assert bind.transfers(OTHER)[1] == denied + 1  # tried once, then remembered
    assert len(asked) == 2 * MANY
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "refuses to transfer zone other.test (REFUSED)" in warnings[0]
    assert "allow-transfer" in warnings[0] and "zone_transfer: false" in warnings[0]
    assert bind.secret not in caplog.text


async def test_few_names_are_queried_and_off_never_transfers(bind: BindServer) -> None:
    p = rfc2136_provider(bind)
    changes = await publish(p, ZONE, "few")
    started, _ = bind.transfers()
    few = [c.key for c in changes[: transfer_module.MIN_KEYS - 1]]
    assert all(v is not None for v in (await p.read(few)).values())
    off = rfc2136_provider(bind, zone_transfer=False)
    assert off.read_chunk == 1000  # one query per key: worth reading in parts
    assert all(v is not None for v in (await off.read([c.key for c in changes])).values())
    assert bind.transfers()[0] == started


async def test_a_zone_far_larger_than_the_read_is_read_name_by_name(
    bind: BindServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = rfc2136_provider(bind)
    changes = await publish(p, ZONE, "large")
    # the zone holds more than MIN_KEYS x 1 record sets: a transfer for MIN_KEYS names stops
    monkeypatch.setattr(transfer_module, "SIZE_SHARE", 1)
    wanted = changes[: transfer_module.MIN_KEYS]
    started, _ = bind.transfers()
    asked = count_queries(p)
    got = await p.read([c.key for c in wanted])
    assert [got[c.key].values for c in wanted] == [c.after for c in wanted]  # type: ignore[union-attr]
    assert len(asked) == len(wanted)
    assert p._transfers.sizes[ZONE] > len(wanted)  # what it learnt: not worth it next time
    await p.read([c.key for c in wanted])
    assert bind.transfers()[0] == started + 1 and len(asked) == 2 * len(wanted)


async def test_a_server_that_never_answers_the_transfer_is_a_timeout() -> None:
    """A blackholed server: the transfer waits `timeout`, not forever, and says what it was."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepted, never answered

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = Rfc2136ProviderConfig(
        "bind", "127.0.0.1", port=port, timeout=0.3, retry=RetryConfig(attempts=1)
    )
    p = Rfc2136Provider(config, [ZONE])
    try:
        with pytest.raises(ProviderError) as info:
            await p.read([key(p, ZONE, f"h{i}", RecordType.A) for i in range(MANY)])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert info.value.kind == "timeout" and info.value.retryable
    assert "zone transfer of example.test" in str(info.value)
