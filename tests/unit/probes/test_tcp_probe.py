"""The TCP probe against real local sockets: connect, send/expect, TLS, phase-aware timeouts."""

from __future__ import annotations

import asyncio
import errno
import socket
from pathlib import Path
from typing import Any

import pytest
from raw_servers import RawServer, TlsFiles, silent, tls_files

from failover.config.types import HostPort, TcpProbeConfig
from failover.model import ProbeResult
from failover.probes import tcp
from failover.probes.base import ProbeContext
from failover.probes.registry import PROBES
from failover.probes.scheduler import ProbeJob, ProbeScheduler


def spec(host: str, port: int, **kw: Any) -> TcpProbeConfig:
    base = {"name": "t", "address": HostPort(host, port), "interval": 1.0, "timeout": 1.0}
    return TcpProbeConfig(**base | kw)


async def run(port: int, ctx: ProbeContext, **kw: Any) -> ProbeResult:
    async with asyncio.timeout(10):
        return await tcp.probe(spec("127.0.0.1", port, **kw), ctx.for_run())


async def test_connects(tcp_server: tuple[int, list[int]], ctx: ProbeContext) -> None:
    port, accepted = tcp_server
    async with asyncio.timeout(10):
        result = await tcp.probe(spec("127.0.0.1", port), ctx.for_run())
    assert result.ok
    assert result.reason == "connected"
    assert set(result.timings) == {"resolve", "connect", "total"}
    assert 0 <= result.timings["connect"] <= result.timings["total"] == result.duration
    await asyncio.sleep(0.05)
    assert accepted == [1]


async def test_refused(closed_port: int, ctx: ProbeContext) -> None:
    async with asyncio.timeout(10):
        result = await tcp.probe(spec("127.0.0.1", closed_port), ctx.for_run())
    assert not result.ok
    assert result.reason == "connect refused"
    assert "total" in result.timings


async def test_dns_failure(ctx: ProbeContext) -> None:
    async with asyncio.timeout(10):
        result = await tcp.probe(spec("does-not-exist.invalid", 80), ctx.for_run())
    assert not result.ok
    assert result.reason.startswith("dns failure"), result.reason


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connect refused"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "no route to host"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "no route to network"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "connection reset"),
        (socket.gaierror(socket.EAI_NONAME, "Unknown name"), "dns failure: Unknown name"),
        (
            OSError(
                "Multiple exceptions: [Errno 111] Connect call failed ('::1', 80, 0, 0), "
                "[Errno 111] Connect call failed ('127.0.0.1', 80)"
            ),
            "connect refused",
        ),
        (OSError("something odd"), "something odd"),
    ],
)
def test_os_error_reasons(error: OSError, reason: str) -> None:
    assert tcp.os_error_reason(error) == reason


def test_registered() -> None:
    assert PROBES["tcp"] is tcp.probe


# --- send / expect ----------------------------------------------------------------------------


async def pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers PING with +PONG, anything else with -ERR, then closes."""
    line = await reader.readline()
    writer.write(b"+PONG\r\n" if line == b"PING\r\n" else b"-ERR unknown\r\n")
    await writer.drain()


async def banner(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
    await writer.drain()
    await asyncio.Event().wait()


async def flood(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"z" * 10_000)
    await writer.drain()
    await asyncio.Event().wait()


async def closes(_reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    return


async def test_send_and_expect(ctx: ProbeContext) -> None:
    async with RawServer(pong) as server:
        ok = await run(server.port, ctx, send=b"PING\r\n", expect=r"^\+PONG\r\n")
        assert ok.ok, ok.reason
        assert ok.reason == "expect matched"
        assert {"resolve", "connect", "first_byte", "transfer", "total"} <= set(ok.timings)
        wrong = await run(server.port, ctx, send=b"PING\r\n", expect="^-ERR")
        assert not wrong.ok
        assert wrong.reason == "expect did not match '^-ERR' before the connection closed (7 bytes)"
        other = await run(server.port, ctx, send=b"QUIT\r\n", expect=r"^\+PONG")
        assert not other.ok


async def test_expect_a_banner_without_sending(ctx: ProbeContext) -> None:
    async with RawServer(banner) as server:
        result = await run(server.port, ctx, expect=r"^SSH-2\.0-")
    assert result.ok, result.reason


async def test_expect_reads_at_most_expect_bytes(ctx: ProbeContext) -> None:
    async with RawServer(flood) as server:
        result = await run(server.port, ctx, expect="never")
        assert result.reason == "expect did not match 'never' in first 4KiB"
        assert result.detail["bytes"] == 4096
        small = await run(server.port, ctx, expect="never", expect_bytes=100)
        assert small.reason == "expect did not match 'never' in first 100 bytes"


async def test_expect_but_the_server_closes(ctx: ProbeContext) -> None:
    async with RawServer(closes) as server:
        result = await run(server.port, ctx, expect="x")
    assert result.reason == "connection closed before any data"


async def test_send_without_expect(ctx: ProbeContext) -> None:
    received = asyncio.get_running_loop().create_future()

    async def record(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        received.set_result(await reader.read())

    async with RawServer(record) as server:
        result = await run(server.port, ctx, send=b"a\r\nb\x00")
        assert result.ok, result.reason
        assert await asyncio.wait_for(received, 5) == b"a\r\nb\x00"


async def test_timeout_waiting_for_a_reply_names_first_byte() -> None:
    async with RawServer(silent) as server:
        job = ProbeJob("s", "t", spec("127.0.0.1", server.port, expect="x", timeout=0.3))
        [(_, result)] = await ProbeScheduler([job], lambda *_: None).run_once()
    assert result.reason == "timeout after 300ms in first_byte"


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> TlsFiles:
    return tls_files(tmp_path)


async def hello(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hello\n")
    await writer.drain()
    await asyncio.Event().wait()


async def test_tls(files: TlsFiles, ctx: ProbeContext) -> None:
    tls = {"tls": True, "tls_server_name": "shop.test"}
    async with RawServer(hello, files.server_context("shop.test")) as server:
        untrusted = await run(server.port, ctx, **tls)
        assert untrusted.reason.startswith("certificate verify failed: "), untrusted.reason
        result = await run(server.port, ctx, ca_file=files.ca, expect="^hello", **tls)
        assert result.ok, result.reason
        assert result.detail["tls_version"] == "TLSv1.3"
        assert isinstance(result.detail["cert_expiry"], int)
        assert {"resolve", "connect", "tls", "first_byte", "total"} <= set(result.timings)
        unverified = await run(server.port, ctx, tls=True, verify_tls=False)
        assert unverified.ok, unverified.reason
        mismatch = await run(server.port, ctx, tls=True, tls_server_name="x.test", ca_file=files.ca)
        assert mismatch.reason == "hostname mismatch: certificate is not valid for 'x.test'"


async def test_tls_client_certificate(files: TlsFiles, ctx: ProbeContext) -> None:
    context = files.server_context("shop.test", require_client_cert=True)
    tls = {"tls": True, "tls_server_name": "shop.test", "ca_file": files.ca, "expect": "hello"}
    async with RawServer(hello, context) as server:
        assert (await run(server.port, ctx, client_cert=files.client_bundle, **tls)).ok
        assert not (await run(server.port, ctx, **tls)).ok


async def test_timeout_in_the_handshake_names_tls() -> None:
    async with RawServer(silent) as server:
        job = ProbeJob("s", "t", spec("127.0.0.1", server.port, tls=True, timeout=0.3))
        [(_, result)] = await ProbeScheduler([job], lambda *_: None).run_once()
    assert result.reason == "timeout after 300ms in tls"
