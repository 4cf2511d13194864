"""The TCP probe against real local sockets."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from failover.config_types import HostPort, TcpProbeConfig
from failover.probes import tcp
from failover.probes.base import ProbeContext
from failover.probes.registry import PROBES


def spec(host: str, port: int) -> TcpProbeConfig:
    return TcpProbeConfig(name="t", address=HostPort(host, port), interval=1.0, timeout=1.0)


async def test_connects(tcp_server: tuple[int, list[int]], ctx: ProbeContext) -> None:
    port, accepted = tcp_server
    async with asyncio.timeout(10):
        result = await tcp.probe(spec("127.0.0.1", port), ctx)
    assert result.ok
    assert result.reason == "connected"
    assert 0 <= result.timings["connect"] <= result.timings["total"] == result.duration
    await asyncio.sleep(0.05)
    assert accepted == [1]


async def test_refused(closed_port: int, ctx: ProbeContext) -> None:
    async with asyncio.timeout(10):
        result = await tcp.probe(spec("127.0.0.1", closed_port), ctx)
    assert not result.ok
    assert result.reason == "connect refused"
    assert "total" in result.timings


async def test_dns_failure(ctx: ProbeContext) -> None:
    async with asyncio.timeout(10):
        result = await tcp.probe(spec("does-not-exist.invalid", 80), ctx)
    assert not result.ok
    assert result.reason.startswith("dns failure"), result.reason


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connect refused"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "no route to host"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "no route to network"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "connection reset"),
        (socket.gaierror(socket.EAI_NONAME, "Unknown name"), "dns failure: Unknown name"),
        (
            OSError(
                "Multiple exceptions: [Errno 111] Connect call failed ('::1', 80, 0, 0), "
                "[Errno 111] Connect call failed ('127.0.0.1', 80)"
            ),
            "connect refused",
        ),
        (OSError("something odd"), "something odd"),
    ],
)
def test_os_error_reasons(error: OSError, reason: str) -> None:
    assert tcp.os_error_reason(error) == reason


def test_registered() -> None:
    assert PROBES["tcp"] is tcp.probe
