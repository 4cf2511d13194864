"""HTTP(S) probe.

Two paths, the same rules: by default every hop, http or https, takes the lean path
(`probes.httpwire`: an asyncio protocol, no client library); with `ProbeContext.lean_http` off,
aiohttp's client below does the request (kept as the reference the tests compare with). Both
time the same phases, and the verdict, the redirect policy and the error reasons are decided
here for both (the probe tests run on each).

Connection policy: every run opens a fresh connection (and TLS handshake). A health check must
see the handshake succeed now: a pooled keep-alive connection would hide a listener that no
longer accepts or a certificate that no longer verifies. What is safe to share is shared: the
`aiohttp.ClientSession` from `new_session()` (no cookie jar, no proxy from the environment, no
session timeout: the caller owns the deadline) and the TLS contexts (`ctx.tls`, one per distinct
verify / ca_file / client certificate / minimum version, built off the event loop).

Phases, in seconds (`ProbeResult.timings`; each is a duration, they add up to about `total`):
`resolve` (name resolution; near 0 for an IP address), `connect` (TCP), `tls` (the handshake;
https only), `first_byte` (writing the request until the response headers are read),
`transfer` (reading the body, at most `body_limit` bytes) and `total`.

aiohttp's trace hooks cannot tell the TCP connect from the TLS handshake (both happen inside
one `loop.create_connection`), so `ProbeConnector` opens connections itself, step by step:
resolve, happy-eyeballs connect (`probes.net`), then `loop.create_connection(sock=…, ssl=…)`
for the handshake alone. It marks each step on the run's `ProbeRun` (found through a context
variable the probe sets), so a deadline the caller enforces can say where the run was:
`timeout after 500ms in tls`. It subclasses aiohttp's `BaseConnector` and implements
`_create_connection`, the hook aiohttp's own `UnixConnector` implements; with
`force_close=True` nothing is ever pooled.

Redirects are not followed unless `follow_redirects` (then at most `max_redirects`). A redirect
to the probed virtual host (`host`, else the URL's host) stays on the probed address, like
`curl --connect-to`: the probe keeps checking this target rather than whatever DNS publishes
for the name. A redirect to another host is followed to that host, without the `host` and
`tls_server_name` overrides. A 303, or a 301/302 answering a POST, is followed with GET.

Detail: `status`, `http_version`, `redirects` (when followed), and for https `tls_version` and
`cert_expiry` (unix seconds; only when the chain was verified).
"""

from __future__ import annotations

import contextvars
import functools
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.tracing import Trace
from multidict import CIMultiDict
from yarl import URL

from failover.config.types import HttpProbeConfig
from failover.model import ProbeResult
from failover.probes import httpwire
from failover.probes.base import ProbeContext, ProbeRun
from failover.probes.net import CACHE_SIZE, open_socket, os_error_reason
from failover.tls import TlsSettings, TlsSetupError, peer_detail, tls_error_reason
from failover.units import format_size

USER_AGENT = "failover-probe"
SSL_SHUTDOWN_TIMEOUT = 2.0
"""Seconds a closed TLS connection may wait in the background for the peer's close_notify."""

REDIRECTS = frozenset({301, 302, 303, 307, 308})

_RUN: contextvars.ContextVar[ProbeRun | None] = contextvars.ContextVar("probe_run", default=None)


class ProbeConnectionError(aiohttp.ClientConnectionError):
    """A connection could not be set up; `reason` is the probe's failure reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@functools.cache
def verified_context() -> ssl.SSLContext:
    """The system-trust verifying context, for requests that pass `ssl=True`."""
    return ssl.create_default_context()


@functools.cache
def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class ProbeConnector(aiohttp.BaseConnector):
    """Opens each connection in timed steps: resolve, connect, then the TLS handshake."""

    async def _create_connection(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        run = _RUN.get() or ProbeRun()
        host, port = req.url.raw_host or "", req.port or 0
        context = self._ssl_context(req)
        try:
            sock = await open_socket(host, port, run)
        except OSError as exc:
            raise ProbeConnectionError(os_error_reason(exc)) from exc
        if context is not None:
            run.enter("tls")
        try:
            if context is None:
                transport, proto = await self._loop.create_connection(self._factory, sock=sock)
            else:
                transport, proto = await self._loop.create_connection(
                    self._factory,
                    sock=sock,
                    ssl=context,
                    server_hostname=(req.server_hostname or host).rstrip("."),
                    ssl_shutdown_timeout=SSL_SHUTDOWN_TIMEOUT,
                )
        except BaseException as exc:
            sock.close()  # a no-op when the failed transport already closed it
            if isinstance(exc, ssl.SSLError):
                raise ProbeConnectionError(tls_error_reason(exc)) from exc
            if isinstance(exc, OSError):
                during = " during tls handshake" if context is not None else ""
                raise ProbeConnectionError(f"{os_error_reason(exc)}{during}") from exc
            raise
        for key in ("tls_version", "cert_expiry"):  # from an earlier hop of a redirect chain
            run.detail.pop(key, None)
        if context is not None:
            run.detail.update(peer_detail(transport.get_extra_info("ssl_object")))
        run.enter("first_byte")
        return proto

    @staticmethod
    def _ssl_context(req: ClientRequest) -> ssl.SSLContext | None:
        if not req.is_ssl():
            return None
        if isinstance(req.ssl, ssl.SSLContext):
            return req.ssl
        if req.ssl is False:
            return _unverified_context()
        if req.ssl is True:
            return verified_context()
        raise ProbeConnectionError("certificate fingerprints are not supported by probes")


def new_session(limit: int = 100) -> aiohttp.ClientSession:
    """The session probes expect: a fresh, phase-timed connection per request, no implicit state.

    Must be called with a running event loop; the caller closes it.
    """
    session = aiohttp.ClientSession(
        connector=ProbeConnector(force_close=True, limit=limit),
        timeout=aiohttp.ClientTimeout(),  # no deadline here: the caller owns it
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )
    # aiohttp silently resends an idempotent request once when the connection drops before
    # the response; a probe must report that drop, not hide it behind a second attempt. There
    # is no public switch (aiohttp 3.10+), hence the private attribute, set only if present.
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session


def tls_settings(spec: HttpProbeConfig) -> TlsSettings:
    return TlsSettings(
        spec.verify_tls, spec.ca_file, spec.client_cert, spec.client_key, spec.tls_min_version
    )


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def describe_error(exc: BaseException) -> str:
    """A concise reason for an exception raised while probing."""
    if isinstance(exc, ProbeConnectionError | httpwire.WireError):
        return exc.reason
    if isinstance(exc, TlsSetupError):
        return str(exc)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError) and isinstance(
        exc.certificate_error, ssl.SSLError
    ):
        return tls_error_reason(exc.certificate_error)
    ssl_error = _ssl_cause(exc)
    if ssl_error is not None:  # e.g. a TLS 1.3 alert (certificate required) on the first read
        return tls_error_reason(ssl_error)
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


def status_expected(status: int, expect: tuple[int | str, ...]) -> bool:
    """Whether `status` is listed, as a code or as its class (`2xx`)."""
    return status in expect or f"{status // 100}xx" in expect


@dataclass(frozen=True)
class _Hop:
    url: URL  # what to connect to and request
    host: str | None  # Host header override
    sni: str | None  # TLS server name override


@functools.lru_cache(maxsize=CACHE_SIZE)
def _parse_url(url: str) -> URL:
    """`URL(url)`, remembered: the same URLs are probed every interval (URLs are immutable)."""
    return URL(url)


def _first_hop(spec: HttpProbeConfig) -> _Hop:
    return _Hop(_parse_url(spec.url), spec.host, spec.tls_server_name or spec.host)


def _next_hop(spec: HttpProbeConfig, hop: _Hop, location: str) -> _Hop:
    """Where a redirect leads (see the module docstring). Raises ValueError for a bad URL."""
    seen_as = hop.url.with_host(hop.host) if hop.host else hop.url
    target = seen_as.join(URL(location))
    if target.scheme not in ("http", "https") or not target.host:
        raise ValueError(f"redirect to {str(target)[:100]!r}, not an http(s) URL")
    origin = _parse_url(spec.url)
    vhost = spec.host or origin.host or ""
    if target.host.lower() == vhost.lower():
        pinned = target.with_host(origin.host) if origin.host else target
        return _Hop(pinned, spec.host, spec.tls_server_name or spec.host)
    return _Hop(target, None, None)


def _redirect_method(method: str, status: int) -> str:
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        return "GET"
    return method


def _headers(spec: HttpProbeConfig, hop: _Hop) -> CIMultiDict[str] | None:
    return _headers_for(spec.headers, hop, _parse_url(spec.url))


def _headers_for(
    configured: Mapping[str, str], hop: _Hop, first_url: URL
) -> CIMultiDict[str] | None:
    if not configured and not hop.host:
        return None  # the session's defaults only
    headers: CIMultiDict[str] = CIMultiDict(configured)
    if hop.host:
        headers["Host"] = hop.host
    elif hop.url.host != first_url.host:
        headers.popall("Host", None)  # a configured Host header was meant for the first host
    return headers


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    body = bytearray()
    while len(body) < limit:
        chunk = await response.content.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _verdict(spec: HttpProbeConfig, status: int, body: bytes, redirects: int) -> tuple[bool, str]:
    if not status_expected(status, spec.expect_status):
        expected = ", ".join(str(s) for s in spec.expect_status)
        return False, f"status {status} not in [{expected}]"
    if spec.body_regex is not None:
        text = body.decode("utf-8", errors="replace")
        if _compiled(spec.body_regex).search(text) is None:
            limit = format_size(spec.body_limit)
            return False, f"body did not match {spec.body_regex!r} in first {limit}"
    after = f" after {redirects} redirect{'s' if redirects > 1 else ''}" if redirects else ""
    return True, f"status {status}{after}"


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _after_head(
    spec: HttpProbeConfig,
    hop: _Hop,
    status: int,
    location: str | None,
    redirects: int,
) -> _Hop | tuple[bool, str] | None:
    """What a response head leads to: the next hop, a verdict, or None (read the body)."""
    if spec.follow_redirects and status in REDIRECTS and location is not None:
        if redirects >= spec.max_redirects:
            return False, f"too many redirects (max {spec.max_redirects})"
        try:
            return _next_hop(spec, hop, location)
        except ValueError as exc:
            return False, f"bad redirect: {exc}"[:200]
    return None


def _lean_head(spec: HttpProbeConfig, hop: _Hop, method: str) -> bytes:
    """The request head for `hop`, built once: the same probes run every interval."""
    headers = tuple(spec.headers.items()) if spec.headers else ()
    return _cached_head(hop, method, spec.url, headers)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _cached_head(
    hop: _Hop, method: str, first_url: str, configured: tuple[tuple[str, str], ...]
) -> bytes:
    url = hop.url
    host = url.raw_host or ""
    authority = f"[{host}]" if ":" in host else host
    if url.explicit_port is not None and not url.is_default_port():
        authority = f"{authority}:{url.explicit_port}"
    headers = _headers_for(dict(configured), hop, _parse_url(first_url))
    return httpwire.request_bytes(
        method, url.raw_path_qs, authority, headers.items() if headers is not None else ()
    )


async def _check(spec: HttpProbeConfig, ctx: ProbeContext) -> tuple[bool, str]:
    run = ctx.run
    hop, method, redirects = _first_hop(spec), spec.method, 0
    lean = ctx.lean_http
    timed = lean or isinstance(ctx.http.connector, ProbeConnector)
    first = True
    while True:
        tls: ssl.SSLContext | bool = True
        if hop.url.scheme == "https":
            tls = await ctx.tls.get(tls_settings(spec))
        if first:  # the clock starts with the network work, not with building a TLS context
            run.start("resolve" if timed else "request")
            first = False
        if lean and hop.url.scheme in ("http", "https"):
            if not hop.url.raw_host:
                return False, f"invalid url: {str(hop.url)[:100]}"
            head = _lean_head(spec, hop, method)
            https = hop.url.scheme == "https"
            async with httpwire.Exchange() as exchange:
                wire = await exchange.open(
                    hop.url.raw_host,
                    hop.url.port or (443 if https else 80),
                    head,
                    method,
                    run,
                    tls if isinstance(tls, ssl.SSLContext) else None,
                    hop.sni if https else None,
                )
                status = run.detail["status"] = wire.status
                run.detail["http_version"] = wire.version
                step = _after_head(spec, hop, status, wire.headers.get("location"), redirects)
                if step is None:
                    run.enter("transfer")
                    body = await wire.read(spec.body_limit)
                    return _verdict(spec, status, body, redirects)
        else:
            async with ctx.http.request(
                method,
                hop.url,
                headers=_headers(spec, hop),
                allow_redirects=False,
                ssl=tls,
                server_hostname=hop.sni if hop.url.scheme == "https" else None,
            ) as response:
                status = run.detail["status"] = response.status
                if response.version is not None:
                    version = response.version
                    run.detail["http_version"] = f"{version.major}.{version.minor}"
                step = _after_head(spec, hop, status, response.headers.get("Location"), redirects)
                if step is None:
                    run.enter("transfer")
                    body = await _read_capped(response, spec.body_limit)
                    return _verdict(spec, status, body, redirects)
        if not isinstance(step, _Hop):
            return step
        hop, method = step, _redirect_method(method, status)
        redirects += 1
        run.detail["redirects"] = redirects


async def probe(spec: HttpProbeConfig, ctx: ProbeContext) -> ProbeResult:
    """One check: ok when the status is expected and the body (first `body_limit`) matches."""
    run = ctx.run
    run.start("setup")
    token = _RUN.set(run)
    try:
        ok, reason = await _check(spec, ctx)
    except Exception as exc:  # a probe reports, it never raises (CancelledError passes)
        ok, reason = False, describe_error(exc)
    finally:
        _RUN.reset(token)
    total = run.finish()
    return ProbeResult(ok, reason[:300], total, dict(run.timings), dict(run.detail))
