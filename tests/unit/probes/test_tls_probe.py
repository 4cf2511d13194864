"""The tls probe against real local TLS servers with certificates from a private CA (trustme)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509

from failover.config.types import HostPort, TlsProbeConfig
from failover.model import ProbeResult
from failover.probes import tls
from failover.probes.base import ProbeContext
from failover.probes.registry import PROBES
from failover.probes.scheduler import ProbeJob, ProbeScheduler

Serve = Callable[..., Awaitable[int]]
NOW = datetime.datetime.now(datetime.UTC)


def days(n: float) -> datetime.datetime:
    return NOW + datetime.timedelta(days=n)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Factory: a TLS server on 127.0.0.1:0 presenting `cert`; returns its port."""
    servers: list[asyncio.Server] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def start(cert: trustme.LeafCert) -> int:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def spec(port: int, **kw: Any) -> TlsProbeConfig:
    kw.setdefault("server_name", "shop.test")
    return TlsProbeConfig(
        name="t", address=HostPort("127.0.0.1", port), interval=1.0, timeout=1.0, **kw
    )


async def run(s: TlsProbeConfig, ctx: ProbeContext) -> ProbeResult:
    async with asyncio.timeout(10):
        return await tls.probe(s, ctx)


async def test_reports_days_left(
    serve: Serve, ca: trustme.CA, ca_file: Path, ctx: ProbeContext
) -> None:
    port = await serve(ca.issue_cert("shop.test", not_after=days(90.05)))
    result = await run(spec(port, ca_file=ca_file), ctx)
    assert result.ok, result.reason
    assert result.reason == "certificate expires in 90 days"
    assert 90.0 < float(result.detail["days_left"]) < 90.1
    assert abs(int(result.detail["not_after"]) - days(90.05).timestamp()) < 2
    assert result.detail["cert_expiry"] == result.detail["not_after"]
    assert "trustme" in str(result.detail["subject"])
    assert "Testing CA" in str(result.detail["issuer"])
    assert str(result.detail["tls_version"]).startswith("TLSv1.")
    assert {"connect", "tls", "total"} <= result.timings.keys()
    assert result.timings["total"] == result.duration


async def test_warn_days(serve: Serve, ca: trustme.CA, ca_file: Path, ctx: ProbeContext) -> None:
    port = await serve(ca.issue_cert("shop.test", not_after=days(5.05)))
    short = await run(spec(port, ca_file=ca_file), ctx)
    assert not short.ok
    assert short.reason == "certificate expires in 5 days (warn_days 14)"
    assert 5.0 < float(short.detail["days_left"]) < 5.1
    relaxed = await run(spec(port, ca_file=ca_file, warn_days=1), ctx)
    assert relaxed.ok, relaxed.reason
    assert relaxed.reason == "certificate expires in 5 days"


async def test_hours_left(serve: Serve, ca: trustme.CA, ca_file: Path, ctx: ProbeContext) -> None:
    port = await serve(ca.issue_cert("shop.test", not_after=days(0.25)))
    result = await run(spec(port, ca_file=ca_file, warn_days=0), ctx)
    assert result.ok
    assert result.reason == "certificate expires in 5h"
    failing = await run(spec(port, ca_file=ca_file, warn_days=1), ctx)
    assert failing.reason == "certificate expires in 5h (warn_days 1)"


async def test_hostname_mismatch(
    serve: Serve, ca: trustme.CA, ca_file: Path, ctx: ProbeContext
) -> None:
    port = await serve(ca.issue_cert("shop.test"))
    result = await run(spec(port, ca_file=ca_file, server_name="other.test"), ctx)
    assert not result.ok
    assert result.reason == "hostname mismatch: certificate is for shop.test"
    assert "days_left" in result.detail  # the certificate was read all the same
    unverified = await run(spec(port, verify=False, server_name="other.test"), ctx)
    assert unverified.reason == "hostname mismatch: certificate is for shop.test"
    by_address = await run(spec(port, ca_file=ca_file, server_name=None), ctx)
    assert by_address.reason == "hostname mismatch: certificate is for shop.test"


async def test_ip_address_certificate(
    serve: Serve, ca: trustme.CA, ca_file: Path, ctx: ProbeContext
) -> None:
    port = await serve(ca.issue_cert("127.0.0.1", "shop.test"))
    result = await run(spec(port, ca_file=ca_file, server_name=None), ctx)
    assert result.ok, result.reason


async def test_untrusted_ca(serve: Serve, ca: trustme.CA, ca_file: Path, ctx: ProbeContext) -> None:
    port = await serve(ca.issue_cert("shop.test"))
    untrusted = await run(spec(port), ctx)
    assert not untrusted.ok
    assert untrusted.reason.startswith("certificate verify failed: "), untrusted.reason
    assert "tls" in untrusted.timings
    trusted = await run(spec(port, ca_file=ca_file), ctx)
    assert trusted.ok, trusted.reason
    unverified = await run(spec(port, verify=False), ctx)
    assert unverified.ok, unverified.reason


async def test_another_ca_is_not_trusted(
    serve: Serve, ca: trustme.CA, tmp_path: Path, ctx: ProbeContext
) -> None:
    port = await serve(ca.issue_cert("shop.test"))
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    result = await run(spec(port, ca_file=other), ctx)
    assert result.reason.startswith("certificate verify failed: "), result.reason


async def test_expired(serve: Serve, ca: trustme.CA, ca_file: Path, ctx: ProbeContext) -> None:
    port = await serve(ca.issue_cert("shop.test", not_before=days(-30), not_after=days(-3.05)))
    verified = await run(spec(port, ca_file=ca_file), ctx)
    assert verified.reason == "certificate verify failed: certificate has expired"
    unverified = await run(spec(port, verify=False), ctx)
    assert unverified.reason == "certificate expired 3 days ago"
    assert float(unverified.detail["days_left"]) < -3


async def test_not_yet_valid(serve: Serve, ca: trustme.CA, ctx: ProbeContext) -> None:
    port = await serve(ca.issue_cert("shop.test", not_before=days(2), not_after=days(90)))
    result = await run(spec(port, verify=False), ctx)
    assert result.reason.startswith("certificate not yet valid (valid from "), result.reason


async def test_ca_file_edited_on_disk_is_reloaded(
    serve: Serve, ca: trustme.CA, ca_file: Path, ctx: ProbeContext
) -> None:
    port = await serve(ca.issue_cert("shop.test"))
    assert (await run(spec(port, ca_file=ca_file), ctx)).ok
    trustme.CA().cert_pem.write_to_path(str(ca_file))  # another CA, same path
    result = await run(spec(port, ca_file=ca_file), ctx)
    assert result.reason.startswith("certificate verify failed: "), result.reason
    await asyncio.to_thread(ca_file.unlink)
    gone = await run(spec(port, ca_file=ca_file), ctx)
    assert gone.reason == f"cannot read ca_file {ca_file}: No such file or directory"


async def test_connect_refused(closed_port: int, ctx: ProbeContext) -> None:
    result = await run(spec(closed_port), ctx)
    assert not result.ok
    assert result.reason == "connect refused"


@pytest.fixture
async def plain() -> AsyncIterator[Callable[[bytes], Awaitable[int]]]:
    """Factory: a plain TCP server that sends `greeting` to each client, then hangs up."""
    servers: list[asyncio.Server] = []

    async def start(greeting: bytes) -> int:
        async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(greeting)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_not_a_tls_server(
    plain: Callable[[bytes], Awaitable[int]], ctx: ProbeContext
) -> None:
    http = await run(spec(await plain(b"HTTP/1.1 400 Bad Request\r\n\r\n")), ctx)
    assert not http.ok
    # uvloop's TLS layer reports the garbage reply as the peer closing mid-handshake
    assert http.reason in (
        "tls handshake failed: wrong version number",
        "connection closed during tls handshake",
    ), http.reason
    if "uvloop" not in type(asyncio.get_running_loop()).__module__:
        assert http.reason == "tls handshake failed: wrong version number", http.reason
    hangs_up = await run(spec(await plain(b"")), ctx)
    assert hangs_up.reason == "connection closed during tls handshake", hangs_up.reason


async def test_silent_server_times_out_in_tls(tcp_silent: int, ca_file: Path) -> None:
    job = ProbeJob("shop", "primary", dataclasses.replace(spec(tcp_silent), timeout=0.2))
    async with asyncio.timeout(10):
        [(_, result)] = await ProbeScheduler([job], lambda *_: None).run_once()
    assert not result.ok
    assert result.reason == "timeout after 200ms in tls", result.reason


@pytest.fixture
async def tcp_silent() -> AsyncIterator[int]:
    """Accepts TCP connections and never sends a byte."""
    release = asyncio.Event()

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    release.set()
    server.close()
    await server.wait_closed()


def _cert(leaf: trustme.LeafCert) -> x509.Certificate:
    return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("a.shop.test", True),
        ("A.Shop.Test.", True),
        ("shop.test", False),
        ("a.b.shop.test", False),
        ("shop.test.evil", False),
        ("api.test", True),
        ("192.0.2.7", True),
        ("192.0.2.8", False),
    ],
)
def test_hostname_matches(ca: trustme.CA, host: str, ok: bool) -> None:
    cert = _cert(ca.issue_cert("*.shop.test", "api.test", "192.0.2.7"))
    assert tls.hostname_matches(cert, host) is ok


def test_top_level_wildcard_never_matches(ca: trustme.CA) -> None:
    assert not tls.hostname_matches(_cert(ca.issue_cert("*.test")), "shop.test")


def test_registered() -> None:
    assert PROBES["tls"] is tls.probe
