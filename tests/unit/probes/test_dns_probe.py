"""The dns probe against a real authoritative server: the builtin provider on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import dns.flags
import pytest

from failover.config.types import BuiltinProviderConfig, DnsProbeConfig, HostPort
from failover.dnsvalues import canonical_answer
from failover.model import Change, RecordKey, RecordType
from failover.probes import dns as dns_probe
from failover.probes.base import ProbeContext
from failover.probes.registry import PROBES
from failover.probes.scheduler import ProbeJob, ProbeScheduler
from failover.providers.builtin import BuiltinProvider
from failover.store import Store

ZONE = "example.test"


@pytest.fixture
async def authority(tmp_path: Path) -> AsyncIterator[BuiltinProvider]:
    """An authoritative server for example.test serving shop.example.test A 192.0.2.1."""
    server = BuiltinProvider(
        BuiltinProviderConfig("lab", HostPort("127.0.0.1", 0)), [ZONE], Store(tmp_path / "state")
    )
    await server.start()
    await publish(server, "shop.example.test", RecordType.A, "192.0.2.1")
    try:
        yield server
    finally:
        await server.aclose()


async def publish(server: BuiltinProvider, name: str, rtype: RecordType, *values: str) -> None:
    await server.apply([Change(RecordKey("lab", ZONE, name, rtype), 60, None, values)])


def spec(server: HostPort, query_name: str = "shop.example.test", **kw: Any) -> DnsProbeConfig:
    return DnsProbeConfig(
        name="d", query_name=query_name, server=server, interval=1.0, timeout=1.0, **kw
    )


async def run(s: DnsProbeConfig, ctx: ProbeContext) -> Any:
    async with asyncio.timeout(10):
        return await dns_probe.probe(s, ctx)


async def test_answer_as_expected(authority: BuiltinProvider, ctx: ProbeContext) -> None:
    result = await run(spec(authority.bound, expect_answers=("192.0.2.1",)), ctx)
    assert result.ok, result.reason
    assert result.reason == "rcode NOERROR, answers [192.0.2.1]"
    assert result.detail == {"rcode": "NOERROR", "aa": 1, "transport": "udp", "answers": 1}
    assert 0 <= result.timings["query"] <= result.timings["total"] == result.duration
    assert "resolve" not in result.timings


async def test_any_answer_passes_without_expect_answers(
    authority: BuiltinProvider, ctx: ProbeContext
) -> None:
    result = await run(spec(authority.bound), ctx)
    assert result.ok
    assert result.reason == "rcode NOERROR, answers [192.0.2.1]"


async def test_wrong_answer_fails_with_both_sets(
    authority: BuiltinProvider, ctx: ProbeContext
) -> None:
    result = await run(spec(authority.bound, expect_answers=("192.0.2.2",)), ctx)
    assert not result.ok
    assert result.reason == "answers [192.0.2.1] != expected [192.0.2.2]"
    assert result.detail["rcode"] == "NOERROR"


async def test_exact_and_contains(authority: BuiltinProvider, ctx: ProbeContext) -> None:
    await publish(authority, "shop.example.test", RecordType.A, "192.0.2.1", "192.0.2.3")
    one = ("192.0.2.1",)
    exact = await run(spec(authority.bound, expect_answers=one), ctx)
    assert not exact.ok
    assert exact.reason == "answers [192.0.2.1, 192.0.2.3] != expected [192.0.2.1]"
    contains = await run(spec(authority.bound, expect_answers=one, expect_match="contains"), ctx)
    assert contains.ok, contains.reason
    missing = ("192.0.2.1", "192.0.2.9")
    lacking = await run(spec(authority.bound, expect_answers=missing, expect_match="contains"), ctx)
    assert lacking.reason == "answers [192.0.2.1, 192.0.2.3] lack expected [192.0.2.9]"


async def test_nxdomain(authority: BuiltinProvider, ctx: ProbeContext) -> None:
    missing = spec(authority.bound, "gone.example.test")
    result = await run(missing, ctx)
    assert not result.ok
    assert result.reason == "rcode NXDOMAIN, expected NOERROR"
    assert result.detail["rcode"] == "NXDOMAIN"
    expected = await run(dataclasses.replace(missing, expect_rcode="NXDOMAIN"), ctx)
    assert expected.ok, expected.reason
    assert expected.detail["aa"] == 1


async def test_refused_outside_the_served_zones(
    authority: BuiltinProvider, ctx: ProbeContext
) -> None:
    result = await run(spec(authority.bound, "www.elsewhere.test"), ctx)
    assert result.reason == "rcode REFUSED, expected NOERROR"
    assert result.detail["aa"] == 0


async def test_empty_answer_is_an_exact_match_for_none(
    authority: BuiltinProvider, ctx: ProbeContext
) -> None:
    nodata = spec(authority.bound, record_type="AAAA", expect_answers=())
    assert (await run(nodata, ctx)).ok
    some = dataclasses.replace(nodata, record_type="A")
    assert (await run(some, ctx)).reason == "answers [192.0.2.1] != expected []"


async def test_over_tcp(authority: BuiltinProvider, ctx: ProbeContext) -> None:
    result = await run(spec(authority.bound, transport="tcp", expect_answers=("192.0.2.1",)), ctx)
    assert result.ok, result.reason
    assert result.detail["transport"] == "tcp"


async def test_truncated_udp_answer_is_asked_again_over_tcp(
    authority: BuiltinProvider, ctx: ProbeContext
) -> None:
    many = tuple(f"198.51.100.{i}" for i in range(1, 151))  # > 1232 bytes: truncated over UDP
    await publish(authority, "big.example.test", RecordType.A, *many)
    result = await run(spec(authority.bound, "big.example.test", expect_answers=many), ctx)
    assert result.ok, result.reason
    assert result.detail == {"rcode": "NOERROR", "aa": 1, "transport": "tcp", "answers": 150}
    assert "… 142 more" in result.reason  # long answer lists are cut in reasons


async def test_cname_chain_and_other_types(authority: BuiltinProvider, ctx: ProbeContext) -> None:
    await publish(authority, "www.example.test", RecordType.CNAME, "shop.example.test")
    followed = await run(
        spec(authority.bound, "www.example.test", expect_answers=("192.0.2.1",)), ctx
    )
    assert followed.ok, followed.reason
    cname = spec(authority.bound, "WWW.Example.Test", record_type="CNAME")
    result = await run(dataclasses.replace(cname, expect_answers=("shop.example.test",)), ctx)
    assert result.ok, result.reason
    ns = await run(spec(authority.bound, ZONE, record_type="NS"), ctx)
    assert ns.reason == "rcode NOERROR, answers [ns1.example.test]"
    soa = await run(spec(authority.bound, ZONE, record_type="SOA"), ctx)
    assert soa.ok
    assert soa.reason.startswith("rcode NOERROR, answers [ns1.example.test hostmaster.example.test")


def test_query_flags() -> None:
    server = HostPort("127.0.0.1", 53)
    authoritative = dns_probe.make_query(spec(server))
    assert not authoritative.flags & dns.flags.RD
    assert authoritative.edns == 0
    assert authoritative.payload == dns_probe.EDNS_PAYLOAD
    recursive = dns_probe.make_query(spec(server, recursion_desired=True))
    assert recursive.flags & dns.flags.RD


@pytest.mark.parametrize(
    ("rtype", "text", "canonical"),
    [
        ("A", " 192.0.2.1", "192.0.2.1"),
        ("AAAA", "2001:DB8:0::0001", "2001:db8::1"),
        ("CNAME", "Web.Example.COM.", "web.example.com"),
        ("MX", "10 Mail.Example.com", "10 mail.example.com"),
        ("SRV", "10 5 443 Web.Example.com.", "10 5 443 web.example.com"),
        ("TXT", "v=spf1 -all", "v=spf1 -all"),
    ],
)
def test_canonical_answer(rtype: str, text: str, canonical: str) -> None:
    assert canonical_answer(rtype, text) == canonical


@pytest.mark.parametrize(
    ("rtype", "text"), [("A", "192.0.2.300"), ("AAAA", "192.0.2.1"), ("MX", "mail")]
)
def test_canonical_answer_refuses(rtype: str, text: str) -> None:
    with pytest.raises(ValueError):
        canonical_answer(rtype, text)


@pytest.fixture
def closed_udp_port() -> Iterator[int]:
    """A UDP port nobody listens on (bound by a TCP socket, so nothing else takes it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


async def test_closed_port(closed_udp_port: int, ctx: ProbeContext) -> None:
    server = HostPort("127.0.0.1", closed_udp_port)
    udp = await run(spec(server), ctx)
    assert not udp.ok
    assert udp.reason == f"no answer from 127.0.0.1:{closed_udp_port} (udp): port unreachable"
    tcp = await run(spec(server, transport="tcp"), ctx)
    assert tcp.reason == f"no answer from 127.0.0.1:{closed_udp_port} (tcp): connect refused"


async def test_unresolvable_server(ctx: ProbeContext) -> None:
    result = await run(spec(HostPort("does-not-exist.invalid", 53)), ctx)
    assert not result.ok
    assert result.reason.startswith("cannot resolve server does-not-exist.invalid: dns failure")
    assert "resolve" in result.timings


@pytest.fixture
def silent_udp() -> Iterator[int]:
    """A UDP socket that receives queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


async def test_silent_server_times_out_through_the_scheduler(silent_udp: int) -> None:
    silent = dataclasses.replace(spec(HostPort("127.0.0.1", silent_udp)), timeout=0.2)
    scheduler = ProbeScheduler([ProbeJob("shop", "primary", silent)], lambda *_: None)
    async with asyncio.timeout(10):
        [(_, result)] = await scheduler.run_once()
    assert not result.ok
    assert result.reason == "timeout after 200ms in query", result.reason


async def test_through_the_scheduler(authority: BuiltinProvider) -> None:
    good = spec(authority.bound, expect_answers=("192.0.2.1",))
    scheduler = ProbeScheduler([ProbeJob("shop", "primary", good)], lambda *_: None)
    async with asyncio.timeout(10):
        [(_, result)] = await scheduler.run_once()
    assert result.ok, result.reason


def test_registered() -> None:
    assert PROBES["dns"] is dns_probe.probe
