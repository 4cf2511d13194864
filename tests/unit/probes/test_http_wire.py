"""Raw HTTP answers the lean path parses itself (chunked, gzip, short bodies, bad heads), each
checked on both plain-HTTP paths so the lean one agrees with aiohttp's verdicts."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from raw_servers import RawServer

from failover.config.types import HttpProbeConfig
from failover.model import ProbeResult
from failover.probes import http, httpwire
from failover.probes.base import ProbeContext


def answering(response: bytes, seen: list[bytes] | None = None) -> RawServer:
    """A server reading one request head, then writing `response` and closing."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if seen is not None:
            seen.append(head)
        writer.write(response)
        await writer.drain()
        writer.close()

    return RawServer(handle)


async def probe(response: bytes, ctx: ProbeContext, **kw: object) -> ProbeResult:
    async with answering(response) as server:
        spec = HttpProbeConfig(
            **{"name": "p", "url": f"http://127.0.0.1:{server.port}/h", "interval": 1.0}
            | {"timeout": 1.0}
            | kw  # type: ignore[arg-type]
        )
        async with asyncio.timeout(10):
            return await http.probe(spec, ctx.for_run())


async def test_chunked_body_is_decoded(ctx: ProbeContext) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = head + b"3;x=1\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    result = await probe(body, ctx, body_regex="^abcdefg$")
    assert result.ok, result.reason


async def test_gzip_body_is_decoded(ctx: ProbeContext) -> None:
    payload = gzip.compress(b'{"status": "ok"}')
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(payload)}\r\n\r\n"
    result = await probe(head.encode() + payload, ctx, body_regex='"ok"')
    assert result.ok, result.reason


async def test_body_until_close_without_length(ctx: ProbeContext) -> None:
    result = await probe(b"HTTP/1.0 200 OK\r\n\r\nhello there", ctx, body_regex="there$")
    assert result.ok, result.reason
    assert result.detail["http_version"] == "1.0"


async def test_body_cut_short_fails(ctx: ProbeContext) -> None:
    result = await probe(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", ctx)
    assert not result.ok
    assert result.reason.startswith("body read failed"), result.reason


async def test_bad_status_line_is_a_bad_response(ctx: ProbeContext) -> None:
    result = await probe(b"SMTP ready\r\n\r\n", ctx)
    assert not result.ok
    assert result.reason.startswith("bad response"), result.reason


async def test_close_before_any_answer_is_server_disconnected(ctx: ProbeContext) -> None:
    result = await probe(b"", ctx)
    assert result.reason == "server disconnected", result.reason


async def test_interim_response_is_skipped(ctx: ProbeContext) -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
    result = await probe(answer, ctx, expect_status=(204,))
    assert result.ok, result.reason


async def test_head_reads_no_body(ctx: ProbeContext) -> None:
    # A HEAD answer announces a length it never sends: reading it would wait for the timeout.
    result = await probe(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", ctx, method="HEAD")
    assert result.ok, result.reason


async def test_lean_request_head() -> None:
    seen: list[bytes] = []
    async with answering(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", seen) as server:
        spec = HttpProbeConfig(
            name="p",
            url=f"http://127.0.0.1:{server.port}/a%20b?q=1",
            interval=1.0,
            timeout=1.0,
            method="POST",
            headers={"X-Probe": "yes"},
        )
        async with http.new_session() as session:
            result = await http.probe(spec, ProbeContext(session))
    assert result.ok, result.reason
    lines = seen[0].decode().split("\r\n")
    assert lines[0] == "POST /a%20b?q=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}" in lines
    assert {"X-Probe: yes", "Connection: close", "Content-Length: 0"} <= set(lines)
    assert f"User-Agent: {http.USER_AGENT}" in lines


def test_request_head_rejects_non_latin1_values() -> None:
    with pytest.raises(httpwire.WireError, match="latin-1"):
        httpwire.request_bytes("GET", "/", "h", [("X", "\u2603")])


def test_request_head_rejects_line_breaks() -> None:
    for name, value in (("X", "a\r\nInjected: 1"), ("X\nY", "a"), ("X", "a\rb")):
        with pytest.raises(httpwire.WireError, match="line break"):
            httpwire.request_bytes("GET", "/", "h", [(name, value)])
    with pytest.raises(httpwire.WireError, match="line break"):
        httpwire.request_bytes("GET", "/", "h\r\nX: 1", [])
