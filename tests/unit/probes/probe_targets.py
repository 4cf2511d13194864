"""A recording HTTP target for the probe tests (imported by conftest and the tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

BIG_BODY = b"x" * (100 * 1024) + b"MARKER"


@dataclass
class Target:
    """An HTTP target that records what it saw."""

    url: str = ""
    hosts: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)


def make_app(target: Target) -> web.Application:
    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        target.hosts.append(request.headers.get("Host", ""))
        target.methods.append(request.method)
        target.headers.append(dict(request.headers))
        assert request.transport is not None
        target.peers.append(request.transport.get_extra_info("peername"))
        return await handler(request)

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def fail(_: web.Request) -> web.Response:
        return web.Response(status=503, text="down")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=BIG_BODY)

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    async def slow(_: web.Request) -> web.Response:
        await target.release.wait()
        return web.Response(text="late")

    async def loop(_: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def see_other(_: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/ok")

    async def to_vhost(request: web.Request) -> web.Response:
        # An absolute redirect to the virtual host, on the port this request came in on.
        assert request.transport is not None
        port = request.transport.get_extra_info("sockname")[1]
        raise web.HTTPMovedPermanently(f"http://{request.host.split(':')[0]}:{port}/ok")

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b"x" * 10)
        await target.release.wait()
        return response

    async def busy(_: web.Request) -> web.Response:
        target.in_flight += 1
        target.max_in_flight = max(target.max_in_flight, target.in_flight)
        try:
            await asyncio.sleep(0.1)
        finally:
            target.in_flight -= 1
        return web.Response(text="done")

    app = web.Application(middlewares=[record])
    app.router.add_route("*", "/ok", ok)
    app.router.add_get("/fail", fail)
    app.router.add_get("/big", big)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/slow", slow)
    app.router.add_get("/busy", busy)
    app.router.add_get("/loop", loop)
    app.router.add_route("*", "/see-other", see_other)
    app.router.add_get("/to-vhost", to_vhost)
    app.router.add_get("/stall", stall)
    return app
