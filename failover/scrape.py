"""The metrics listener: `/metrics`, `/healthz`, `/readyz`, built so scrapes cannot starve
the decision loop.

Why: rendering a 200-service registry (1 MB of text) took the event loop for tens of
milliseconds per scrape; 200 concurrent scrapes held it for seconds at a time, probes timed out,
and a healthy primary was failed over. Now the live state is captured on the loop (a frozen
view, built a few milliseconds at a time) and the text is rendered in a worker thread, one
render at a time; every scrape that arrives while a render runs waits for the next one and
shares it, so a scrape never sees state older than its own arrival, and a flood costs one
render per round, not one per scrape.
Renders are also spaced so the worker is busy at most `RENDER_DUTY` of the time (it competes
for the GIL with the loop).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from failover.metrics import LiveView, Metrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RENDER_DUTY = 0.2  # at most this share of the time is spent rendering


class SharedRender:
    """Single-flight, off-loop rendering of the registry."""

    def __init__(
        self, metrics: Metrics, read_view: Callable[[], Awaitable[LiveView]] | None
    ) -> None:
        self.metrics = metrics
        self.read_view = read_view
        self.renders = 0
        self._next: asyncio.Future[bytes] | None = None  # the render the newcomers will share
        self._running: asyncio.Task[None] | None = None
        self._cost = 0.0
        self._ended = float("-inf")

    async def body(self) -> bytes:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if self._running is None:
                self._running = asyncio.create_task(self._loop())
        return await asyncio.shield(self._next)

    async def _loop(self) -> None:
        """Render while scrapes wait; each round serves everyone who arrived before it began."""
        try:
            while self._next is not None:
                pause = self._ended + self._cost / RENDER_DUTY - self._cost - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                waiting, self._next = self._next, None
                try:
                    body = await self._render()
                except Exception as exc:
                    if not waiting.done():
                        waiting.set_exception(exc)
                    continue
                if not waiting.done():
                    waiting.set_result(body)
        finally:
            self._running = None

    async def _render(self) -> bytes:
        view = await self.read_view() if self.read_view is not None else None
        started = time.monotonic()
        body = await asyncio.to_thread(self.metrics.render, view)
        self._ended = time.monotonic()
        self._cost = self._ended - started
        self.renders += 1
        return body


def metrics_app(render: SharedRender, healthz: Handler, readyz: Handler) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        body = await render.body()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
