"""verify.py against real authoritative servers on loopback: builtin servers and raw responders."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import cast

import dns.asyncresolver
import dns.flags
import dns.message
import dns.rrset
import pytest

import failover.verify
from failover.config.types import BuiltinProviderConfig, HostPort, VerifyConfig
from failover.model import Change, RecordKey, RecordType
from failover.providers.builtin import BuiltinProvider
from failover.store import Store
from failover.verify import Expectation, verify, verify_change, zone_nameservers
from tests.support import free_port

ZONE = "example.test"
WWW = f"www.{ZONE}"
FAST = {"interval": 0.05, "query_timeout": 0.3}

Start = Callable[..., Awaitable[BuiltinProvider]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Factory: a builtin authoritative server for ZONE with its own store, closed at teardown."""
    started: list[BuiltinProvider] = []

    async def make(host: str = "127.0.0.1") -> BuiltinProvider:
        name = f"ns{len(started) + 1}"
        config = BuiltinProviderConfig(name, HostPort(host, 0))
        provider = BuiltinProvider(config, [ZONE], Store(tmp_path / name))
        await provider.start()
        started.append(provider)
        return provider

    yield make
    for provider in started:
        await provider.aclose()


async def publish(
    p: BuiltinProvider, name: str, rtype: RecordType, *values: str, ttl: int = 60
) -> None:
    await p.apply([Change(RecordKey(p.name, ZONE, name, rtype), ttl, None, values)])


def want(*values: str, name: str = WWW, rtype: RecordType = RecordType.A, **kw: int) -> Expectation:
    return Expectation(ZONE, name, rtype, values, **kw)


async def two_servers(start: Start, first: str, second: str) -> list[BuiltinProvider]:
    servers = [await start(), await start()]
    for server, value in zip(servers, (first, second), strict=True):
        await publish(server, WWW, RecordType.A, value)
    return servers


class Responder(asyncio.DatagramProtocol):
    """A tiny UDP DNS server whose answers a test shapes: it records every query it gets."""

    def __init__(self, answer: Callable[[dns.message.Message], dns.message.Message]) -> None:
        self.answer = answer
        self.queries: list[dns.message.Message] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector transport does not subclass DatagramTransport in 3.11, hence the cast.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        self.queries.append(query)
        assert self.transport is not None
        self.transport.sendto(self.answer(query).to_wire(), addr)


MakeResponder = Callable[..., Awaitable[tuple[Responder, HostPort]]]


@pytest.fixture
async def responder() -> AsyncIterator[MakeResponder]:
    transports: list[asyncio.BaseTransport] = []

    async def make(
        answer: Callable[[dns.message.Message], dns.message.Message],
    ) -> tuple[Responder, HostPort]:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: Responder(answer), local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
        return protocol, HostPort("127.0.0.1", transport.get_extra_info("sockname")[1])

    yield make
    for transport in transports:
        transport.close()


def answering(values: dict[str, str], *, aa: bool = True) -> Callable[..., dns.message.Message]:
    """Answers A questions from `values` (by name), with or without the AA flag."""

    def answer(query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        name = query.question[0].name
        if aa:
            response.flags |= dns.flags.AA
        value = values.get(str(name).rstrip("."))
        if value:
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", value))
        return response

    return answer


@pytest.fixture
def blackhole() -> Iterator[HostPort]:
    """A bound UDP port that never answers: what a server that is down looks like."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield HostPort("127.0.0.1", sock.getsockname()[1])


# -- verify ---------------------------------------------------------------------------------------


async def test_passes_when_every_server_serves_the_values(start: Start) -> None:
    servers = await two_servers(start, "192.0.2.2", "192.0.2.2")
    result = await verify([want("192.0.2.2")], [s.bound for s in servers], timeout=5, **FAST)
    assert result.ok, result
    assert result.reason.startswith("verified on 2 servers in ")
    assert [(a.server, a.ok, a.reason) for a in result.answers] == [
        (str(s.bound), True, "ok") for s in servers
    ]
    assert all(a.record == f"{WWW} A" for a in result.answers)
    assert 0 <= result.elapsed < 2


async def test_thousands_of_names_share_one_socket_per_server(start: Start) -> None:
    """A mass failover verifies thousands of names: more than one window of questions goes
    over one socket per server, every answer is matched to its own question, and the one
    stale name among them is the one named."""
    server = await start()
    names = [f"n{i}.{ZONE}" for i in range(1500)]
    changes = [
        Change(
            RecordKey(server.name, ZONE, n, RecordType.A), 60, None, (f"10.0.{i // 250}.{i % 250}",)
        )
        for i, n in enumerate(names)
    ]
    await server.apply(changes)
    wants = [want(*c.after, name=c.key.name) for c in changes]
    result = await verify(wants, [server.bound], timeout=5, **FAST)
    assert result.ok, result.reason
    assert [a.record for a in result.answers] == [f"{n} A" for n in names]
    wants[777] = want("192.0.2.9", name=names[777])
    result = await verify(wants, [server.bound], timeout=3, **FAST)
    assert not result.ok
    assert [a.record for a in result.answers if not a.ok] == [f"{names[777]} A"]
    assert f"for {names[777]} A after 3s" in result.reason


async def test_a_stale_server_fails_at_the_deadline_and_is_named(start: Start) -> None:
    servers = await two_servers(start, "192.0.2.2", "192.0.2.1")
    result = await verify([want("192.0.2.2")], [s.bound for s in servers], timeout=0.6, **FAST)
    stale = str(servers[1].bound)
    assert not result.ok
    assert result.reason == f"{stale} still serves 192.0.2.1 (expected 192.0.2.2) after 0.6s"
    assert result.answers[0].ok and not result.answers[1].ok
    assert 0.5 <= result.elapsed < 2


async def test_passes_once_the_stale_server_catches_up(start: Start) -> None:
    servers = await two_servers(start, "192.0.2.2", "192.0.2.1")

    async def late_update() -> None:
        await asyncio.sleep(0.4)
        await publish(servers[1], WWW, RecordType.A, "192.0.2.2")

    update = asyncio.create_task(late_update())
    result = await verify([want("192.0.2.2")], [s.bound for s in servers], timeout=10, **FAST)
    await update
    assert result.ok, result
    assert 0.3 <= result.elapsed < 5


async def test_matched_pairs_are_not_asked_again(responder: MakeResponder) -> None:
    server, address = await responder(answering({WWW: "192.0.2.2", f"api.{ZONE}": "192.0.2.9"}))
    expectations = [want("192.0.2.2"), want("192.0.2.3", name=f"api.{ZONE}")]
    result = await verify(expectations, [address], timeout=0.5, **FAST)
    assert not result.ok
    assert result.reason.endswith(f"for api.{ZONE} A after 0.5s")
    asked = [str(q.question[0].name) for q in server.queries]
    assert asked.count(f"{WWW}.") == 1 and asked.count(f"api.{ZONE}.") >= 3
    assert all(not q.flags & dns.flags.RD for q in server.queries)  # non-recursive


async def test_clear_aa_is_not_authoritative(responder: MakeResponder) -> None:
    _, address = await responder(answering({WWW: "192.0.2.2"}, aa=False))
    result = await verify([want("192.0.2.2")], [address], timeout=0.3, **FAST)
    assert not result.ok
    assert result.answers[0].reason == "not authoritative (AA clear)"
    assert result.reason == f"{address} not authoritative (AA clear) after 0.3s"


async def test_dead_servers_are_reasons_not_exceptions(blackhole: HostPort) -> None:
    closed = HostPort("127.0.0.1", free_port())
    result = await verify([want("192.0.2.2")], [blackhole, closed], timeout=0.5, **FAST)
    assert not result.ok
    # One connected UDP socket per server: ICMP "port unreachable" says nothing listens there.
    assert [a.reason for a in result.answers] == ["timeout", "connection refused"]
    assert result.reason == f"{blackhole} timeout after 0.5s (1 more not in sync)"
    assert 0.4 <= result.elapsed < 2


async def test_deadline_shorter_than_a_query(blackhole: HostPort) -> None:
    result = await verify([want("192.0.2.2")], [blackhole], timeout=0.2, query_timeout=5)
    assert (result.answers[0].reason, result.ok) == ("timeout", False)
    assert result.elapsed < 1


async def test_answer_shapes(start: Start) -> None:
    server = await start()
    await publish(server, WWW, RecordType.A, "192.0.2.2", ttl=60)
    await publish(server, f"alias.{ZONE}", RecordType.CNAME, WWW)
    await publish(server, f"v6.{ZONE}", RecordType.AAAA, "2001:db8::1", "2001:DB8:0::2")
    cases = [
        (want("192.0.2.2", ttl=60), "ok"),
        (want("192.0.2.2", ttl=30), "serves TTL 60 (expected 30)"),
        (want("192.0.2.2", "192.0.2.3"), "serves 192.0.2.2 (expected 192.0.2.2, 192.0.2.3)"),
        (want("192.0.2.2", name=f"missing.{ZONE}"), "record absent"),  # NXDOMAIN
        (want("2001:db8::1", rtype=RecordType.AAAA), "record absent"),  # NODATA
        (want(name=f"gone.{ZONE}"), "ok"),  # absence expected
        (want(name=WWW), "serves 192.0.2.2 (expected absent)"),
        (want(f"{WWW}.", name=f"alias.{ZONE}", rtype=RecordType.CNAME), "ok"),
        (want("192.0.2.2", name=f"alias.{ZONE}"), f"serves CNAME {WWW}. (expected 192.0.2.2)"),
        (want("2001:db8::2", "2001:db8::1", name=f"v6.{ZONE}", rtype=RecordType.AAAA), "ok"),
        (want("192.0.2.2", name="www.example.net"), "REFUSED"),  # a zone it does not serve
    ]
    for expectation, reason in cases:
        result = await verify([expectation], [server.bound], timeout=0.15, **FAST)
        assert (result.answers[0].reason, result.ok) == (reason, reason == "ok"), expectation


async def test_truncated_answers_are_retried_over_tcp(start: Start) -> None:
    server = await start()
    many = [f"2001:db8::{i:x}" for i in range(1, 101)]  # ~2.8 KB: over the 1232-byte UDP size
    await publish(server, f"big.{ZONE}", RecordType.AAAA, *many)
    expectation = want(*many, name=f"big.{ZONE}", rtype=RecordType.AAAA)
    result = await verify([expectation], [server.bound], timeout=3, **FAST)
    assert result.ok, result


async def test_ipv6_server(start: Start) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    server = await start("::1")
    await publish(server, WWW, RecordType.A, "192.0.2.2")
    result = await verify([want("192.0.2.2")], [server.bound], timeout=3, **FAST)
    assert result.ok, result
    assert result.answers[0].server == f"[::1]:{server.port}"


async def test_edge_arguments() -> None:
    assert (await verify([], [HostPort("127.0.0.1", 9)], timeout=1)).ok
    result = await verify([want("192.0.2.2")], [], timeout=1)
    assert (result.ok, result.reason) == (False, "no authoritative server to verify on")
    with pytest.raises(ValueError):
        await verify([want("192.0.2.2")], [HostPort("127.0.0.1", 9)], timeout=0)


# -- zone_nameservers and verify_change -----------------------------------------------------------


def resolver_at(server: BuiltinProvider | HostPort) -> dns.asyncresolver.Resolver:
    address = server.bound if isinstance(server, BuiltinProvider) else server
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [address.host]
    resolver.port = address.port
    resolver.lifetime = 0.5
    return resolver


async def test_zone_nameservers_follows_ns_and_glue(start: Start) -> None:
    server = await start()
    found = await zone_nameservers(f"{ZONE.upper()}.", resolver=resolver_at(server))
    assert found == [HostPort("127.0.0.1", 53)]


async def test_verify_change_disabled_and_configured(start: Start) -> None:
    disabled = await verify_change([want("192.0.2.2")], VerifyConfig(enabled=False))
    assert (disabled.ok, disabled.reason) == (True, "verification disabled")

    servers = await two_servers(start, "192.0.2.2", "192.0.2.1")
    config = VerifyConfig(nameservers=tuple(s.bound for s in servers), timeout=0.4)
    result = await verify_change([want("192.0.2.2")], config)
    assert not result.ok and result.reason.startswith(f"{servers[1].bound} still serves")
    await publish(servers[1], WWW, RecordType.A, "192.0.2.2")
    result = await verify_change([want("192.0.2.2")], config, timeout=3)
    assert (result.ok, result.reason.startswith("verified on 2 servers")) == (True, True)


async def test_verify_change_uses_each_zones_ns_set(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = await two_servers(start, "192.0.2.2", "192.0.2.2")
    looked_up: list[str] = []

    async def fake(zone: str, *, resolver: object = None) -> list[HostPort]:
        looked_up.append(zone)
        return [s.bound for s in servers]  # port 53 is not ours to bind in a test

    monkeypatch.setattr(failover.verify, "zone_nameservers", fake)
    result = await verify_change([want("192.0.2.2")], VerifyConfig(timeout=3))
    assert result.ok and looked_up == [ZONE]


async def test_verify_change_reports_an_ns_lookup_failure(blackhole: HostPort) -> None:
    config = VerifyConfig(timeout=2)
    result = await verify_change([want("192.0.2.2")], config, resolver=resolver_at(blackhole))
    assert not result.ok
    assert result.reason.startswith(f"cannot find the nameservers of {ZONE}: ")
    assert result.elapsed < 2
