"""A reverse proxy in front of moto's Route 53 that throttles GetChange for a while.

moto never throttles and always answers INSYNC. Real Route 53 throttles per
account, and GetChange polls are what a mass failover sends most of. `arm(seconds)` makes the
proxy answer the next GetChange, and every one for `seconds` after it, with Route 53's real
`Throttling` error; everything else goes through to moto unchanged.
"""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp
from aiohttp import web

from tests.providers.route53_stub import THROTTLING, _error
from tests.support import free_port
from tests.support.net import close_leftover_transports

CHANGE_PATH = "/2013-04-01/change/"


class ThrottlingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.get_changes = 0  # GetChange requests seen
        self.throttled = 0  # of which answered Throttling
        self._armed = 0.0  # seconds of throttling, started by the next GetChange
        self._until = 0.0  # monotonic end of the current throttling window
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def arm(self, seconds: float) -> None:
        self._armed = seconds

    def start(self) -> ThrottlingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def close(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        asyncio.run_coroutine_threadsafe(close_leftover_transports(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path.startswith(CHANGE_PATH):
            self.get_changes += 1
            now = time.monotonic()
            if self._armed:
                self._until, self._armed = now + self._armed, 0.0
            if now < self._until:
                self.throttled += 1
                return _error(THROTTLING.status, THROTTLING.code, THROTTLING.message)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as upstream:
            body = await upstream.read()
            passed = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")
            }
            return web.Response(status=upstream.status, body=body, headers=passed)
