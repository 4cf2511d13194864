"""Faults between the rfc2136 provider and a real BIND: SERVFAIL, hangs, lost answers, no TCP.

A proxy on loopback forwards DNS over TCP to BIND and, message by message, can answer SERVFAIL
itself (signed with the TSIG key, as a real server would), swallow the message, or forward it
and lose the answer. A UDP relay stands for a server whose TCP port refuses connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import dns.message
import dns.opcode
import dns.rcode
import pytest

from failover.config.types import RetryConfig, Rfc2136ProviderConfig, Secret, TsigConfig
from failover.model import Change, RecordKey, RecordType
from failover.providers.base import ProviderError
from failover.providers.rfc2136 import Rfc2136Provider
from tests.providers.bind import KEY_NAME, ZONE, BindServer
from tests.support import free_port

FAST_RETRY = RetryConfig(attempts=3, initial=0.01, max_delay=0.05, deadline=10)


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    server = BindServer(tmp_path_factory.mktemp("bind")).start()
    try:
        yield server
    finally:
        server.stop()


class FaultProxy:
    """DNS over TCP to BIND; `faults` is consumed one per message: None forwards it,
    "servfail" answers SERVFAIL, "hang" never answers, "lost" forwards and drops the answer."""

    def __init__(self, bind: BindServer) -> None:
        self.bind = bind
        self.faults: list[str | None] = []
        self.opcodes: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> FaultProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                wire = await reader.readexactly(size)
                request = dns.message.from_wire(wire, keyring=self.bind.keyring())
                self.opcodes.append(dns.opcode.to_text(request.opcode()))
                fault = self.faults.pop(0) if self.faults else None
                if fault == "hang":
                    await reader.read()  # until the client gives up
                    return
                if fault == "servfail":
                    response = dns.message.make_response(request)  # signed like the request
                    response.set_rcode(dns.rcode.SERVFAIL)
                    writer.write(response.to_wire(prepend_length=True))
                    await writer.drain()
                    continue
                answer = await self._forward(wire)
                if fault == "lost":
                    return
                writer.write(len(answer).to_bytes(2, "big") + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    async def _forward(self, wire: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.bind.port)
        try:
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
            size = int.from_bytes(await reader.readexactly(2), "big")
            return await reader.readexactly(size)
        finally:
            writer.close()


class UdpRelay(asyncio.DatagramProtocol):
    """Forwards datagrams to BIND; nothing listens on TCP at the same port."""

    def __init__(self, bind: BindServer) -> None:
        self.bind = bind
        self.datagrams = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.datagrams += 1
        task = asyncio.ensure_future(self._relay(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _relay(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            await loop.sock_sendto(s, data, ("127.0.0.1", self.bind.port))
            answer = await asyncio.wait_for(loop.sock_recv(s, 65535), 5)
        assert self.transport is not None
        self.transport.sendto(answer, addr)


@pytest.fixture
async def proxy(bind: BindServer) -> AsyncIterator[FaultProxy]:
    p = await FaultProxy(bind).start()
    try:
        yield p
    finally:
        await p.close()


def make(bind: BindServer, port: int, **overrides: Any) -> Rfc2136Provider:
    settings: dict[str, Any] = {
        "name": "bind",
        "server": "127.0.0.1",
        "port": port,
        "tsig": TsigConfig(KEY_NAME, Secret(bind.secret)),
        "timeout": 5.0,  # generous: CI machines are shared and noisy
        "retry": FAST_RETRY,
    }
    settings.update(overrides)
    # unknown.test: a record's zone that the server does not serve (the provider is told it)
    provider = Rfc2136Provider(Rfc2136ProviderConfig(**settings), [ZONE, "unknown.test"])
    provider.errors = []  # type: ignore[attr-defined]
    provider.on_error = provider.errors.append  # type: ignore[attr-defined]
    return provider


def a(label: str) -> RecordKey:
    return RecordKey("bind", ZONE, f"{label}.{ZONE}", RecordType.A)


async def test_servfail_is_retried_then_succeeds(bind: BindServer, proxy: FaultProxy) -> None:
    p = make(bind, proxy.port)
    proxy.faults = ["servfail", "servfail"]
    await p.apply([Change(a("flaky"), 60, None, ("192.0.2.1",))])
    assert bind.values(f"flaky.{ZONE}") == ["192.0.2.1"]
    assert p.errors == ["servfail", "servfail"]  # type: ignore[attr-defined]
    assert proxy.opcodes == ["UPDATE"] * 3

    proxy.faults = ["servfail"]
    got = await p.read([a("flaky")])
    assert got[a("flaky")] is not None and got[a("flaky")].values == ("192.0.2.1",)  # type: ignore[union-attr]
    assert p.errors[-1] == "servfail"  # type: ignore[attr-defined]


async def test_servfail_gives_up_after_the_policy(bind: BindServer, proxy: FaultProxy) -> None:
    p = make(bind, proxy.port)
    proxy.faults = ["servfail"] * 5
    with pytest.raises(ProviderError) as info:
        await p.apply([Change(a("down"), 60, None, ("192.0.2.1",))])
    assert info.value.kind == "servfail" and info.value.retryable
    assert "SERVFAIL" in str(info.value) and info.value.counted
    assert p.errors == ["servfail"] * 3  # type: ignore[attr-defined]
    assert bind.values(f"down.{ZONE}") == []


async def test_hang_is_cut_at_the_configured_timeout(bind: BindServer, proxy: FaultProxy) -> None:
    p = make(bind, proxy.port, timeout=0.5, retry=RetryConfig(attempts=1))
    proxy.faults = ["hang"]
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        await p.apply([Change(a("hung"), 60, None, ("192.0.2.1",))])
    assert time.monotonic() - started < 1.4
    assert info.value.kind == "timeout" and info.value.retryable
    assert "within 0.5s" in str(info.value)
    assert p.errors == ["timeout"]  # type: ignore[attr-defined]

    p = make(bind, proxy.port, timeout=0.5)
    proxy.faults = ["hang"]
    await p.apply([Change(a("hung"), 60, None, ("192.0.2.1",))])  # the retry gets through
    assert p.errors == ["timeout"]  # type: ignore[attr-defined]
    assert bind.values(f"hung.{ZONE}") == ["192.0.2.1"]


async def test_lost_answer_then_retry_is_not_a_conflict(
    bind: BindServer, proxy: FaultProxy
) -> None:
    """The first attempt lands but its answer is lost: the retry's prerequisite fails, and the
    provider sees the server already holds the change."""
    p = make(bind, proxy.port)
    hand = bind.update()
    hand.add("lost", 60, "A", "192.0.2.1")
    bind.send(hand)
    serial = bind.serial()
    proxy.faults = ["lost"]
    await p.apply([Change(a("lost"), 30, ("192.0.2.1",), ("198.51.100.1",))])
    assert bind.values(f"lost.{ZONE}") == ["198.51.100.1"]
    assert bind.serial() == serial + 1  # applied once
    assert p.errors == ["connection"]  # type: ignore[attr-defined]
    assert proxy.opcodes == ["UPDATE", "UPDATE", "QUERY"]


async def test_unreachable_server_is_a_retryable_error(bind: BindServer) -> None:
    p = make(bind, free_port(), timeout=0.5, transport="tcp")
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        await p.apply([Change(a("nowhere"), 60, None, ("192.0.2.1",))])
    assert time.monotonic() - started < 5
    assert info.value.retryable and info.value.kind in ("connection", "timeout")
    assert len(p.errors) == 3  # type: ignore[attr-defined]


async def test_udp_fallback_when_tcp_is_refused(
    bind: BindServer, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    port = free_port()
    transport, relay = await loop.create_datagram_endpoint(
        lambda: UdpRelay(bind), local_addr=("127.0.0.1", port)
    )
    try:
        p = make(bind, port)
        caplog.set_level(logging.WARNING)
        await p.apply([Change(a("via-udp"), 60, None, ("192.0.2.1",))])
        assert bind.values(f"via-udp.{ZONE}") == ["192.0.2.1"]
        got = await p.read([a("via-udp")])
        assert got[a("via-udp")] is not None
        assert relay.datagrams == 2
        assert caplog.text.count("refused TCP, falling back to UDP") == 1
        assert p.errors == []  # type: ignore[attr-defined]

        # A batch too big for one datagram goes in several UPDATEs over UDP.
        many = [Change(a(f"udp-{i}"), 60, None, (f"192.0.2.{i}",)) for i in range(60)]
        before = relay.datagrams
        await p.apply(many)
        assert relay.datagrams - before > 1
        assert bind.values(f"udp-59.{ZONE}") == ["192.0.2.59"]

        p = make(bind, port, transport="udp")  # configured UDP: never tries TCP
        await p.apply([Change(a("udp-only"), 60, None, ("192.0.2.2",))])
        assert bind.values(f"udp-only.{ZONE}") == ["192.0.2.2"]
    finally:
        transport.close()
        for task in list(relay.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_failing_zone_does_not_stop_the_others(bind: BindServer, proxy: FaultProxy) -> None:
    p = make(bind, proxy.port)
    with pytest.raises(ProviderError) as info:
        await p.apply(
            [
                Change(a("good"), 60, None, ("192.0.2.1",)),
                Change(
                    RecordKey("bind", "unknown.test", "x.unknown.test", RecordType.A),
                    60,
                    None,
                    ("192.0.2.2",),
                ),
            ]
        )
    assert bind.values(f"good.{ZONE}") == ["192.0.2.1"]
    assert info.value.kind == "notauth" and "1 of 2 zones updated" in str(info.value)
    assert info.value.counted and p.errors == ["notauth"]  # type: ignore[attr-defined]
