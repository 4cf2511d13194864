"""Peers on loopback: free ports, bounded waits, HTTP targets, DNS reads.

Targets run in their own thread and event loop so that synchronous tests can stop and start
them while a daemon subprocess probes them.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
from aiohttp import web


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on `host` (the builtin DNS server needs both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


async def close_leftover_transports() -> None:
    """Abort every connection still registered with the running loop, then let their
    callbacks run. A server's `close()` stops accepting but leaves its clients' transports
    open (Python 3.11); one garbage-collected later fails an unrelated test on an
    'unclosed transport' warning. Test servers in their own thread call this before their
    loop stops."""
    loop = asyncio.get_running_loop()
    selector = getattr(loop, "_selector", None)  # the selector loop's registry (test-only use)
    if selector is None:
        return
    for key in list(selector.get_map().values()):
        for handle in key.data or ():
            owner = getattr(getattr(handle, "_callback", None), "__self__", None)
            if isinstance(owner, asyncio.BaseTransport) and not owner.is_closing():
                abort = getattr(owner, "abort", owner.close)
                abort()
    await asyncio.sleep(0.05)


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something true (that value); an exception counts as
    not yet (the peer may not be up), and the last one is named when time runs out."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the peer may not be up yet
            last_exc = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


def dns_a(port: int, name: str, server: str = "127.0.0.1") -> list[str]:
    """The A values the server answers for `name` (empty on NXDOMAIN/NODATA)."""
    response = dns.query.udp(
        dns.message.make_query(name, dns.rdatatype.A), server, timeout=2, port=port
    )
    return sorted(rr.to_text() for rrset in response.answer for rr in rrset)


class TargetServer:
    """An HTTP target whose /healthz can be stopped, restarted or made to fail."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.status = 200
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        # each connection accepted (its handler) and when; pruned once gone
        self._connections: dict[web.RequestHandler, float] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/healthz"

    async def _handler(self, request: web.Request) -> web.Response:
        return web.Response(status=self.status, text='{"status": "ok"}')

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        handlers = runner.server
        assert handlers is not None

        loop = asyncio.get_running_loop()

        def connection() -> asyncio.BaseProtocol:
            now = loop.time()
            for old, accepted in list(self._connections.items()):
                if old.transport is None and now - accepted > 5:  # closed (or never made)
                    del self._connections[old]
            handler = handlers()
            self._connections[handler] = now
            return handler

        self._listener = await loop.create_server(
            connection, self.host, self.port, reuse_address=True
        )
        self._runner = runner

    async def _stop(self) -> None:
        """Stop accepting, let the connections already accepted get their transports, close
        the listener, let aiohttp shut its connections down, then abort any left open.

        Closing the listener at once leaked sockets (Python 3.11): a connection accepted in
        the same loop iteration builds its transport one iteration later, finds the server
        closed (an assertion in `Server._attach`), and the half-built transport is dropped with
        its socket open; garbage-collected later, it failed an unrelated test with 'unclosed
        transport ... read=idle' (CI, once; /tmp stress: ~50 per 60 stops before, 0 after)."""
        if self._listener is not None:
            loop = asyncio.get_running_loop()
            for sock in self._listener.sockets:
                loop.remove_reader(sock.fileno())
            await asyncio.sleep(0.01)
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await asyncio.sleep(0.02)  # connections accepted just before the close get their protocol
        for handler in list(self._connections):
            transport = handler.transport
            if transport is not None and not transport.is_closing():
                transport.abort()
        self._connections.clear()

    def start(self) -> TargetServer:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Stop serving: connections are refused until `start()`."""
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)

    def close(self) -> None:
        """Stop serving, let closing transports finish, then close the loop (no leaked socket
        may surface later as a ResourceWarning in another test)."""
        self.stop()
        # transports closed by the cleanup finish closing in callbacks on this loop: give them
        # time to run before the loop stops (0.05 s was not always enough on a busy machine)
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.25), self._loop).result(10)
        asyncio.run_coroutine_threadsafe(close_leftover_transports(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()
