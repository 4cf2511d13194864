"""HTTP(S) probe.

A health check must see a fresh TCP and TLS handshake every time: a pooled keep-alive connection
would hide a listener that no longer accepts or a certificate that no longer verifies. Run probes
on the session from `new_session()`: its connector has `force_close=True` (one connection per
request), no DNS cache, no cookie jar, no proxy from the environment and no session timeout (the
caller owns the deadline). Its trace config fills the `dns` and `connect` timings; on any other
session only `first_byte` and `total` are measured.

Timings, in seconds: `dns` (name resolution, when the URL has a host name), `connect` (connection
set-up including DNS and the TLS handshake), `first_byte` (from the start until the response
headers were read) and `total`.
"""

from __future__ import annotations

import functools
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict

from failover.config_types import HttpProbeConfig
from failover.model import ProbeResult
from failover.probes.base import ProbeContext
from failover.probes.tcp import os_error_reason

BODY_LIMIT = 64 * 1024
"""At most this many bytes of the body are read (and matched against `body_regex`)."""

USER_AGENT = "failover-probe"


class _Timings:
    """Per-request stopwatch, handed to the trace hooks as `trace_request_ctx`."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.values: dict[str, float] = {}
        self._open: dict[str, float] = {}

    def begin(self, name: str) -> None:
        self._open[name] = time.monotonic()

    def end(self, name: str) -> None:
        began = self._open.pop(name, None)
        if began is not None:
            self.values[name] = time.monotonic() - began

    def mark(self, name: str) -> float:
        """Record the time since the start under `name` and return it."""
        self.values[name] = elapsed = time.monotonic() - self.start
        return elapsed


_Hook = Callable[[aiohttp.ClientSession, SimpleNamespace, object], Awaitable[None]]


def _hook(name: str, *, begin: bool) -> _Hook:
    async def hook(_session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: object) -> None:
        timings = getattr(ctx, "trace_request_ctx", None)
        if isinstance(timings, _Timings):
            if begin:
                timings.begin(name)
            else:
                timings.end(name)

    return hook


def trace_config() -> aiohttp.TraceConfig:
    """Trace hooks that fill the `dns` and `connect` timings of probe requests."""
    config = aiohttp.TraceConfig()
    config.on_dns_resolvehost_start.append(_hook("dns", begin=True))
    config.on_dns_resolvehost_end.append(_hook("dns", begin=False))
    config.on_connection_create_start.append(_hook("connect", begin=True))
    config.on_connection_create_end.append(_hook("connect", begin=False))
    return config


def new_session(limit: int = 100) -> aiohttp.ClientSession:
    """The session probes expect: a fresh connection per request, traced, no implicit state.

    Must be called with a running event loop; the caller closes it.
    """
    connector = aiohttp.TCPConnector(force_close=True, limit=limit, use_dns_cache=False)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(),  # no deadline here: the scheduler owns it
        cookie_jar=aiohttp.DummyCookieJar(),
        trace_configs=[trace_config()],
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )


@functools.cache
def verified_context() -> ssl.SSLContext:
    """The verifying TLS context, built once (system trust store, or `SSL_CERT_FILE`)."""
    return ssl.create_default_context()


def _headers(spec: HttpProbeConfig) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict(spec.headers)
    if spec.host:
        headers["Host"] = spec.host
    return headers


def describe_error(exc: BaseException) -> str:
    """A concise reason for an exception raised while probing."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        message = getattr(cert_error, "verify_message", None) or str(cert_error)
        return f"certificate verify failed: {message}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        ssl_error = exc.os_error
        message = getattr(ssl_error, "reason", None) or str(ssl_error)
        return f"tls error: {message}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return os_error_reason(exc.os_error)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientConnectionResetError):
        return "connection reset"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"body read failed: {exc}"
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return f"invalid url: {exc}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad response: {exc.message}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return os_error_reason(exc)
    return f"{type(exc).__name__}: {exc}"


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    body = bytearray()
    while len(body) < BODY_LIMIT:
        chunk = await response.content.read(BODY_LIMIT - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _verdict(spec: HttpProbeConfig, status: int, body: bytes) -> tuple[bool, str]:
    if status not in spec.expect_status:
        expected = ", ".join(str(s) for s in spec.expect_status)
        return False, f"status {status} not in [{expected}]"
    if spec.body_regex is not None:
        try:
            matched = re.search(spec.body_regex, body.decode("utf-8", errors="replace"))
        except re.error as err:
            return False, f"invalid body_regex: {err}"
        if matched is None:
            return False, f"body did not match {spec.body_regex!r}"
    return True, f"status {status}"


async def probe(spec: HttpProbeConfig, ctx: ProbeContext) -> ProbeResult:
    """One request; ok when the status is expected and the body (first 64 KiB) matches."""
    timings = _Timings()
    https = urlsplit(spec.url).scheme.lower() == "https"
    tls: ssl.SSLContext | bool = verified_context() if spec.verify_tls else False
    status: int | None = None
    try:
        async with ctx.http.request(
            spec.method,
            spec.url,
            headers=_headers(spec),
            allow_redirects=False,
            ssl=tls,
            server_hostname=(spec.tls_server_name or spec.host) if https else None,
            trace_request_ctx=timings,
        ) as response:
            timings.mark("first_byte")
            status = response.status
            body = await _read_capped(response)
        ok, reason = _verdict(spec, status, body)
    except Exception as exc:  # a probe reports, it never raises (CancelledError passes)
        ok, reason = False, describe_error(exc)
    total = timings.mark("total")
    detail: dict[str, str | int | float] = {} if status is None else {"status": status}
    return ProbeResult(ok, reason[:300], total, dict(timings.values), detail)
