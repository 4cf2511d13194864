"""TCP probe: connect to `address`, optionally over TLS, optionally send bytes and expect a reply.

Each run opens a fresh connection: a health check must see the handshake succeed now, which a
pooled connection would hide. Steps and the phases they are timed under (see `base.ProbeRun`):
`resolve` (skipped for an IP address), `connect`, `tls` (with `tls: true`: verified against
`ca_file` or the system trust store unless `verify_tls: false`, SNI `tls_server_name` or the
address's host name), then with `expect`: `first_byte` (writing `send`, waiting for the first
byte) and `transfer` (reading until `expect`, a regular expression on the raw bytes, matches
within the first `expect_bytes`). With `send` and no `expect`, `send` is written (`transfer`)
and the connection closed. A TLS connection is closed with close_notify in the background
(bounded by `SSL_SHUTDOWN_TIMEOUT`), never delaying the verdict.

Detail: `tls_version` and `cert_expiry` (unix seconds; only when the chain was verified).
`os_error_reason` lives in `probes.net` and is re-exported here for the probes that import it.
The caller owns the deadline (see `base`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import ssl
from typing import Any

from failover.config.types import TcpProbeConfig
from failover.model import ProbeResult
from failover.probes.base import ProbeContext, ProbeRun
from failover.probes.net import open_socket, os_error_reason
from failover.tls import TlsSettings, TlsSetupError, peer_detail, tls_error_reason
from failover.units import format_size

__all__ = ["SSL_SHUTDOWN_TIMEOUT", "os_error_reason", "probe", "tls_settings"]

SSL_SHUTDOWN_TIMEOUT = 2.0
"""Seconds a closed TLS connection may wait in the background for the peer's close_notify."""


@functools.lru_cache(maxsize=1024)
def _pattern(expect: str) -> re.Pattern[bytes]:
    return re.compile(expect.encode("utf-8"))


class TlsHandshakeError(Exception):
    """The connection broke during the TLS handshake; the message is the reason."""


def tls_settings(spec: TcpProbeConfig) -> TlsSettings:
    return TlsSettings(
        spec.verify_tls, spec.ca_file, spec.client_cert, spec.client_key, spec.tls_min_version
    )


async def _connect(
    spec: TcpProbeConfig, run: ProbeRun, context: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = await open_socket(spec.address.host, spec.address.port, run)
    kwargs: dict[str, Any] = {}
    if context is not None:
        run.enter("tls")
        kwargs = {
            "ssl": context,
            "server_hostname": spec.tls_server_name or spec.address.host,
            "ssl_shutdown_timeout": SSL_SHUTDOWN_TIMEOUT,
        }
    try:
        reader, writer = await asyncio.open_connection(sock=sock, **kwargs)
    except BaseException as exc:
        sock.close()  # a no-op when the failed transport already closed it
        if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
            raise TlsHandshakeError(f"{os_error_reason(exc)} during tls handshake") from exc
        raise
    if context is not None:
        run.detail.update(peer_detail(writer.get_extra_info("ssl_object")))
    return reader, writer


async def _expect(spec: TcpProbeConfig, run: ProbeRun, reader: asyncio.StreamReader) -> str | None:
    """None when `expect` matched within the first `expect_bytes`, else the reason."""
    assert spec.expect is not None
    pattern = _pattern(spec.expect)
    data = b""
    while len(data) < spec.expect_bytes:
        chunk = await reader.read(spec.expect_bytes - len(data))
        if not chunk:
            break
        if not data:
            run.enter("transfer")
        data += chunk
        if pattern.search(data):
            return None
    if not data:
        return "connection closed before any data"
    run.detail["bytes"] = len(data)
    if len(data) >= spec.expect_bytes:
        return f"expect did not match {spec.expect!r} in first {format_size(spec.expect_bytes)}"
    return f"expect did not match {spec.expect!r} before the connection closed ({len(data)} bytes)"


async def _check(spec: TcpProbeConfig, ctx: ProbeContext) -> tuple[bool, str]:
    run = ctx.run
    context = await ctx.tls.get(tls_settings(spec)) if spec.tls else None
    run.start("resolve")  # the clock starts with the network work
    if context is None and not spec.send and spec.expect is None:
        # A bare connect check (the common tcp probe): the connected socket is the verdict, so
        # no stream reader/writer pair is built only to close it (half this probe's CPU).
        sock = await open_socket(spec.address.host, spec.address.port, run)
        sock.close()
        return True, "connected"
    reader, writer = await _connect(spec, run, context)
    try:
        if spec.send:
            writer.write(spec.send)
        if spec.expect is None:
            if spec.send:
                run.enter("transfer")
                await writer.drain()
            return True, "connected"
        run.enter("first_byte")
        await writer.drain()
        failure = await _expect(spec, run, reader)
        return (True, "expect matched") if failure is None else (False, failure)
    finally:
        writer.close()
        if context is None:
            # The connection was made; a reset while closing does not change the verdict.
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def probe(spec: TcpProbeConfig, ctx: ProbeContext) -> ProbeResult:
    """Connect to `spec.address` (and TLS, send, expect); ok when every step succeeds."""
    run = ctx.run
    run.start("setup")
    try:
        ok, reason = await _check(spec, ctx)
    except (TlsSetupError, TlsHandshakeError) as exc:
        ok, reason = False, str(exc)
    except ssl.SSLError as exc:
        ok, reason = False, tls_error_reason(exc)
    except OSError as exc:
        ok, reason = False, os_error_reason(exc)
    except Exception as exc:  # a probe reports, it never raises (CancelledError passes)
        ok, reason = False, f"{type(exc).__name__}: {exc}"
    total = run.finish()
    return ProbeResult(ok, reason[:300], total, dict(run.timings), dict(run.detail))
