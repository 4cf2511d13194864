"""The HTTP probe against real local servers (plain and TLS)."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import aiohttp
import pytest
from probe_targets import Target

from failover.config_types import HttpProbeConfig
from failover.model import ProbeResult
from failover.probes import http
from failover.probes.base import ProbeContext


def spec(url: str, **kw: Any) -> HttpProbeConfig:
    return HttpProbeConfig(name="p", url=url, interval=1.0, timeout=1.0, **kw)


async def run(url: str, ctx: ProbeContext, **kw: Any) -> ProbeResult:
    async with asyncio.timeout(10):  # the caller owns the deadline
        return await http.probe(spec(url, **kw), ctx)


async def test_200_passes_with_timings(target: Target, ctx: ProbeContext) -> None:
    result = await run(f"{target.url}/ok", ctx)
    assert result.ok, result.reason
    assert result.reason == "status 200"
    assert result.detail == {"status": 200}
    assert {"connect", "first_byte", "total"} <= set(result.timings)
    assert 0 <= result.timings["connect"] <= result.timings["first_byte"] <= result.timings["total"]
    assert result.duration == result.timings["total"]


async def test_unexpected_status_fails_with_reason(target: Target, ctx: ProbeContext) -> None:
    result = await run(f"{target.url}/fail", ctx)
    assert not result.ok
    assert result.reason == "status 503 not in [200]"
    assert result.detail == {"status": 503}
    passed = await run(f"{target.url}/fail", ctx, expect_status=(200, 503))
    assert passed.ok


async def test_body_regex(target: Target, ctx: ProbeContext) -> None:
    assert (await run(f"{target.url}/ok", ctx, body_regex='"status": *"ok"')).ok
    result = await run(f"{target.url}/ok", ctx, body_regex="degraded")
    assert not result.ok
    assert result.reason == "body did not match 'degraded'"


async def test_body_is_read_up_to_64k(target: Target, ctx: ProbeContext) -> None:
    assert (await run(f"{target.url}/big", ctx, body_regex="^x+$")).ok
    beyond = await run(f"{target.url}/big", ctx, body_regex="MARKER")
    assert not beyond.ok
    assert beyond.reason == "body did not match 'MARKER'"


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


async def test_redirects_are_not_followed(target: Target, ctx: ProbeContext) -> None:
    result = await run(f"{target.url}/redirect", ctx)
    assert result.reason == "status 302 not in [200]"
    assert (await run(f"{target.url}/redirect", ctx, expect_status=(302,))).ok
    assert len(target.methods) == 2


async def test_closed_port_is_connect_refused(closed_port: int, ctx: ProbeContext) -> None:
    result = await run(f"http://127.0.0.1:{closed_port}/", ctx)
    assert not result.ok
    assert result.reason == "connect refused"
    assert result.detail == {}
    assert "total" in result.timings


async def test_dns_failure(ctx: ProbeContext) -> None:
    result = await run("http://does-not-exist.invalid/", ctx)
    assert not result.ok
    assert result.reason.startswith("dns failure"), result.reason


async def test_connection_reset(ctx: ProbeContext) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        result = await run(f"http://127.0.0.1:{port}/", ctx)
    finally:
        server.close()
        await server.wait_closed()
    assert not result.ok
    assert result.reason in ("connection reset", "server disconnected"), result.reason


async def test_each_probe_opens_a_fresh_connection(target: Target, ctx: ProbeContext) -> None:
    for _ in range(3):
        assert (await run(f"{target.url}/ok", ctx)).ok
    assert len(set(target.peers)) == 3
    # Control: an ordinary pooled session reuses one connection, so the count above means something.
    async with aiohttp.ClientSession() as pooled:
        for _ in range(3):
            assert (await run(f"{target.url}/ok", ProbeContext(pooled))).ok
    assert len(set(target.peers[3:])) == 1


async def test_tls_fails_verification_by_default(tls_target: Target, ctx: ProbeContext) -> None:
    http.verified_context.cache_clear()
    result = await run(f"{tls_target.url}/ok", ctx, tls_server_name="shop.test")
    assert not result.ok
    assert result.reason.startswith("certificate verify failed: "), result.reason
    assert tls_target.methods == []


async def test_tls_passes_without_verification(tls_target: Target, ctx: ProbeContext) -> None:
    result = await run(f"{tls_target.url}/ok", ctx, verify_tls=False)
    assert result.ok, result.reason
    assert result.timings["connect"] > 0


@pytest.mark.usefixtures("trust_ca")
async def test_tls_server_name_and_host_drive_verification(
    tls_target: Target, ctx: ProbeContext
) -> None:
    url = f"{tls_target.url}/ok"
    assert (await run(url, ctx, tls_server_name="shop.test")).ok
    with_host = await run(url, ctx, host="shop.test")
    assert with_host.ok, with_host.reason
    assert tls_target.hosts[-1] == "shop.test"
    overridden = await run(url, ctx, host="www.example.com", tls_server_name="shop.test")
    assert overridden.ok, overridden.reason
    mismatch = await run(url, ctx)  # verified against 127.0.0.1, which the cert does not name
    assert not mismatch.ok
    assert mismatch.reason.startswith("certificate verify failed: "), mismatch.reason
    assert "127.0.0.1" in mismatch.reason


async def test_https_to_a_plain_http_port(target: Target, ctx: ProbeContext) -> None:
    result = await run(target.url.replace("http://", "https://") + "/ok", ctx)
    assert not result.ok
    assert result.reason.startswith("tls error"), result.reason


async def test_invalid_url(ctx: ProbeContext) -> None:
    result = await run("ftp://example.com/", ctx)
    assert not result.ok
    assert result.reason.startswith("invalid url"), result.reason


async def test_cancellation_propagates(target: Target, ctx: ProbeContext) -> None:
    task = asyncio.create_task(http.probe(spec(f"{target.url}/slow"), ctx))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_registry_maps_the_kind_to_the_probe() -> None:
    from failover.probes.registry import PROBES

    assert PROBES["http"] is http.probe
