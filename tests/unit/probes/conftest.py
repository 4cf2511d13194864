"""Real local targets for the probe tests: aiohttp servers and raw sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from probe_targets import Target, make_app

from failover.probes import http
from failover.probes.base import ProbeContext


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every probe test runs on asyncio's loop and, when installed, on uvloop (the daemon's
    choice when the `fast` extra is there: see failover.eventloop)."""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    try:
        import uvloop
    except ImportError:
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Target]]]:
    """Factory: start a recording target on 127.0.0.1:0 (optionally TLS); stopped at teardown."""
    runners: list[tuple[web.AppRunner, Target]] = []

    async def start(ssl_context: ssl.SSLContext | None = None) -> Target:
        target = Target()
        runner = web.AppRunner(make_app(target), handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1]
        target.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
        runners.append((runner, target))
        return target

    yield start
    for runner, target in runners:
        target.release.set()
        await runner.cleanup()


@pytest.fixture
async def target(serve: Callable[..., Awaitable[Target]]) -> Target:
    return await serve()


@pytest.fixture(params=[True, False], ids=["lean", "aiohttp"])
async def ctx(request: pytest.FixtureRequest) -> AsyncIterator[ProbeContext]:
    """A probe context on the session the scheduler uses, once per plain-HTTP path: the lean
    one (`probes.httpwire`, the default) and aiohttp's (every verdict rule holds on both)."""
    async with http.new_session() as session:
        yield ProbeContext(session, lean_http=request.param)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_target(serve: Callable[..., Awaitable[Target]], ca: trustme.CA) -> Target:
    """An HTTPS target whose certificate (from a private CA) names only `shop.test`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("shop.test").configure_cert(context)
    return await serve(context)


@pytest.fixture
def trust_ca(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the probes' verifying TLS context trust `ca` (through SSL_CERT_FILE)."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    http.verified_context.cache_clear()
    yield
    http.verified_context.cache_clear()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
async def tcp_server() -> AsyncIterator[tuple[int, list[int]]]:
    """A listening TCP server; yields its port and a list that grows by one per connection."""
    accepted: list[int] = []

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], accepted
    server.close()
    await server.wait_closed()
