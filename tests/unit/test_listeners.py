"""Listener guards: fd budget, connection caps (reset unread), idle close, shared renders."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiohttp import web

from failover import listeners
from failover.listeners import ConnectionGate, GatedTCPSite, plan_budget
from failover.metrics import LiveView, Metrics
from failover.scrape import SharedRender


def test_budget_keeps_the_reserve_and_warns_when_the_limit_is_low() -> None:
    roomy = plan_budget(65536, 65536, 400, 2, ["unix", "admin", "metrics"], 20)
    assert roomy.caps == {"unix": 1024, "admin": 1024, "metrics": 1024}
    assert not roomy.warning
    low = plan_budget(256, 256, 4, 1, ["unix", "admin", "metrics"], 20)
    assert low.reserve == 64 + 2 * 4 + 16
    assert sum(low.caps.values()) <= 256 - low.reserve - 20
    assert all(cap >= listeners.MIN_CAP for cap in low.caps.values())
    assert "LimitNOFILE" in low.warning and "256" in low.warning


async def test_a_newcomer_at_the_cap_resets_the_oldest_and_idle_ones_are_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(listeners, "IDLE_TIMEOUT", 0.5)

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = await listeners.runner_for(app)
    resets: list[str] = []
    gate = ConnectionGate("admin", 3, resets.append)
    site = GatedTCPSite(runner, "127.0.0.1", 0, gate)
    await site.start()
    try:
        held = []
        for _ in range(3):
            held.append(await asyncio.open_connection("127.0.0.1", site.bound_port))
            await asyncio.sleep(0.05)  # accepted in this order
        assert gate.active == 3
        reader, writer = await asyncio.open_connection("127.0.0.1", site.bound_port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 2)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hi")
        writer.close()
        assert resets == ["admin"]
        with contextlib.suppress(ConnectionResetError):  # the oldest was reset
            assert await asyncio.wait_for(held[0][0].read(), 2) == b""
        for r, _ in held[1:]:  # sent nothing: closed by the idle timer
            assert await asyncio.wait_for(r.read(), 3) == b""
        await asyncio.sleep(0.05)
        assert gate.active == 0
        for _, w in held:
            w.close()
    finally:
        await runner.cleanup()


async def test_concurrent_scrapes_share_renders() -> None:
    metrics = Metrics()
    views = 0

    def view() -> LiveView:
        nonlocal views
        views += 1
        return LiveView("i", True, False, (), local_fault=True)

    metrics.attach_live(view)
    views = 0  # registering describes the collector once

    async def read_view() -> LiveView:
        return view()

    render = SharedRender(metrics, read_view)
    bodies = await asyncio.gather(*(render.body() for _ in range(100)))
    assert render.renders <= 2 and views == render.renders
    assert all(b'failover_local_fault{instance="i"} 1.0' in body for body in bodies)


async def test_slow_headers_and_slow_bodies_are_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    from failover import admin

    monkeypatch.setattr(listeners, "IDLE_TIMEOUT", 0.5)
    monkeypatch.setattr(admin, "BODY_TIMEOUT", 0.3)

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(await admin._body(request))

    app = web.Application(middlewares=[admin._middleware(None)])
    app.router.add_post("/", echo)
    runner = await listeners.runner_for(app)
    site = GatedTCPSite(runner, "127.0.0.1", 0, ConnectionGate("admin", 8))
    await site.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", site.bound_port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\n")

        async def trickle() -> None:  # a header byte at a time, never the blank line
            with contextlib.suppress(ConnectionError):
                for _ in range(50):
                    writer.write(b"X")
                    await writer.drain()
                    await asyncio.sleep(0.1)

        dripping = asyncio.create_task(trickle())
        assert await asyncio.wait_for(reader.read(), 3) == b""  # closed while it dripped
        assert not dripping.done()
        dripping.cancel()
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", site.bound_port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        answer = await asyncio.wait_for(reader.read(1000), 3)
        assert answer.startswith(b"HTTP/1.1 408") and b'"timeout"' in answer
        writer.close()
    finally:
        await runner.cleanup()
