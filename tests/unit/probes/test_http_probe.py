"""The HTTP probe against real local servers: statuses, body, redirects, phases and timeouts.

TLS cases live in test_https_probe.py. Timing asserts are loose on purpose (noisy machines).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import aiohttp
import pytest
from probe_targets import Target
from raw_servers import RawServer, silent

from failover.config.types import HttpProbeConfig
from failover.model import ProbeResult
from failover.probes import http
from failover.probes.base import ProbeContext
from failover.probes.scheduler import ProbeJob, ProbeScheduler

PHASES = ("resolve", "connect", "first_byte", "transfer")


def spec(url: str, **kw: Any) -> HttpProbeConfig:
    return HttpProbeConfig(**{"name": "p", "url": url, "interval": 1.0, "timeout": 1.0} | kw)


async def run(url: str, ctx: ProbeContext, **kw: Any) -> ProbeResult:
    async with asyncio.timeout(10):  # the caller owns the deadline
        return await http.probe(spec(url, **kw), ctx.for_run())


async def with_deadline(url: str, timeout: float, ctx: ProbeContext, **kw: Any) -> ProbeResult:
    """One run under the scheduler, which owns the deadline and names the phase it cut."""
    job = ProbeJob("shop", "primary", spec(url, **kw | {"timeout": timeout}))
    scheduler = ProbeScheduler([job], lambda *_: None, lean_http=ctx.lean_http)
    [(_, result)] = await scheduler.run_once()
    return result


async def test_200_passes_with_phase_timings(target: Target, ctx: ProbeContext) -> None:
    result = await run(f"{target.url}/ok", ctx)
    assert result.ok, result.reason
    assert result.reason == "status 200"
    assert result.detail == {"status": 200, "http_version": "1.1"}
    assert set(result.timings) == {*PHASES, "total"}  # no tls on plain http
    assert all(result.timings[p] >= 0 for p in PHASES)
    assert sum(result.timings[p] for p in PHASES) <= result.timings["total"] + 1e-6
    assert result.duration == result.timings["total"]


async def test_unexpected_status_fails_with_reason(target: Target, ctx: ProbeContext) -> None:
    result = await run(f"{target.url}/fail", ctx)
    assert not result.ok
    assert result.reason == "status 503 not in [200]"
    assert result.detail["status"] == 503
    passed = await run(f"{target.url}/fail", ctx, expect_status=(200, 503))
    assert passed.ok


async def test_status_classes(target: Target, ctx: ProbeContext) -> None:
    assert (await run(f"{target.url}/ok", ctx, expect_status=("2xx",))).ok
    assert (await run(f"{target.url}/fail", ctx, expect_status=("5xx",))).ok
    result = await run(f"{target.url}/fail", ctx, expect_status=("2xx", 301))
    assert result.reason == "status 503 not in [2xx, 301]"
    redirect = await run(f"{target.url}/redirect", ctx, expect_status=(200, "3xx"))
    assert redirect.ok, redirect.reason


def test_status_expected() -> None:
    assert http.status_expected(204, ("2xx",))
    assert http.status_expected(404, (200, 404))
    assert not http.status_expected(301, ("2xx", 302))


async def test_body_regex(target: Target, ctx: ProbeContext) -> None:
    assert (await run(f"{target.url}/ok", ctx, body_regex='"status": *"ok"')).ok
    result = await run(f"{target.url}/ok", ctx, body_regex="degraded")
    assert not result.ok
    assert result.reason == "body did not match 'degraded' in first 64KiB"


async def test_body_is_read_up_to_body_limit(target: Target, ctx: ProbeContext) -> None:
    assert (await run(f"{target.url}/big", ctx, body_regex="^x+$")).ok
    beyond = await run(f"{target.url}/big", ctx, body_regex="MARKER")
    assert beyond.reason == "body did not match 'MARKER' in first 64KiB"
    assert (await run(f"{target.url}/big", ctx, body_regex="MARKER", body_limit=1024**2)).ok
    small = await run(f"{target.url}/ok", ctx, body_regex="ok", body_limit=5)
    assert small.reason == "body did not match 'ok' in first 5 bytes"


async def test_method_headers_and_host(target: Target, ctx: ProbeContext) -> None:
    result = await run(
        f"{target.url}/ok",
        ctx,
        method="POST",
        headers={"X-Probe": "yes", "host": "ignored.example"},
        host="shop.example.com",
    )
    assert result.ok, result.reason
    assert target.methods == ["POST"]
    assert target.hosts == ["shop.example.com"]
    assert target.headers[0]["X-Probe"] == "yes"
    assert target.headers[0]["User-Agent"] == http.USER_AGENT


async def test_redirects_are_not_followed_by_default(target: Target, ctx: ProbeContext) -> None:
    result = await run(f"{target.url}/redirect", ctx)
    assert result.reason == "status 302 not in [200]"
    assert (await run(f"{target.url}/redirect", ctx, expect_status=(302,))).ok
    assert len(target.methods) == 2


async def test_redirects_followed(target: Target, ctx: ProbeContext) -> None:
    result = await run(f"{target.url}/redirect", ctx, follow_redirects=True)
    assert result.ok, result.reason
    assert result.reason == "status 200 after 1 redirect"
    assert result.detail["redirects"] == 1
    assert len(target.methods) == 2
    assert len(set(target.peers)) == 2  # each hop on a fresh connection, timings summed
    assert set(result.timings) == {*PHASES, "total"}


async def test_redirect_loop_stops_at_max_redirects(target: Target, ctx: ProbeContext) -> None:
    result = await run(f"{target.url}/loop", ctx, follow_redirects=True, max_redirects=3)
    assert not result.ok
    assert result.reason == "too many redirects (max 3)"
    assert len(target.methods) == 4  # the first request and three redirects


async def test_see_other_turns_post_into_get(target: Target, ctx: ProbeContext) -> None:
    result = await run(f"{target.url}/see-other", ctx, method="POST", follow_redirects=True)
    assert result.ok, result.reason
    assert target.methods == ["POST", "GET"]


async def test_redirect_to_the_virtual_host_stays_on_the_target(
    target: Target, ctx: ProbeContext
) -> None:
    # /to-vhost answers with http://shop.test:PORT/ok: shop.test resolves nowhere, so only a
    # probe that keeps connecting to the probed address (127.0.0.1) can reach it.
    result = await run(f"{target.url}/to-vhost", ctx, host="shop.test", follow_redirects=True)
    assert result.ok, result.reason
    assert target.hosts == ["shop.test", "shop.test"]


async def test_closed_port_is_connect_refused(closed_port: int, ctx: ProbeContext) -> None:
    result = await run(f"http://127.0.0.1:{closed_port}/", ctx)
    assert not result.ok
    assert result.reason == "connect refused"
    assert result.detail == {}
    assert {"resolve", "connect", "total"} <= set(result.timings)


async def test_dns_failure(ctx: ProbeContext) -> None:
    result = await run("http://does-not-exist.invalid/", ctx)
    assert not result.ok
    assert result.reason.startswith("dns failure"), result.reason


async def test_connection_reset_is_reported_not_retried(ctx: ProbeContext) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async with RawServer(reset) as server:
        result = await run(f"http://127.0.0.1:{server.port}/", ctx)
    assert not result.ok
    assert result.reason in ("connection reset", "server disconnected"), result.reason
    assert server.connections == 1  # aiohttp's silent retry of idempotent requests is off


async def test_each_probe_opens_a_fresh_connection(target: Target, ctx: ProbeContext) -> None:
    for _ in range(3):
        assert (await run(f"{target.url}/ok", ctx)).ok
    assert len(set(target.peers)) == 3
    # Control: an ordinary pooled session reuses one connection, so the count above means something.
    async with aiohttp.ClientSession() as pooled:
        for _ in range(3):
            assert (await run(f"{target.url}/ok", ProbeContext(pooled, lean_http=False))).ok
    assert len(set(target.peers[3:])) == 1


async def test_timeout_waiting_for_headers_names_first_byte(ctx: ProbeContext) -> None:
    async with RawServer(silent) as server:
        result = await with_deadline(f"http://127.0.0.1:{server.port}/", 0.3, ctx)
    assert not result.ok
    assert result.reason == "timeout after 300ms in first_byte"
    assert {"resolve", "connect", "first_byte", "total"} <= set(result.timings)
    assert result.timings["first_byte"] > 0.1
    assert 0.29 <= result.duration < 3.0  # uvloop timers have 1 ms resolution


async def test_timeout_reading_the_body_names_transfer(target: Target, ctx: ProbeContext) -> None:
    result = await with_deadline(f"{target.url}/stall", 0.3, ctx)
    assert result.reason == "timeout after 300ms in transfer"
    assert result.detail["status"] == 200


async def test_invalid_url(ctx: ProbeContext) -> None:
    result = await run("ftp://example.com/", ctx)
    assert not result.ok
    assert result.reason.startswith("invalid url"), result.reason


async def test_cancellation_propagates(target: Target, ctx: ProbeContext) -> None:
    task = asyncio.create_task(http.probe(spec(f"{target.url}/slow"), ctx.for_run()))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_registry_maps_the_kind_to_the_probe() -> None:
    from failover.probes.registry import PROBES

    assert PROBES["http"] is http.probe
