"""The lean HTTP exchange: one HTTP/1.1 request on a fresh connection (TLS or not), no client
library.

Why: a probe asks one question per connection and reads at most `body_limit` bytes of the
answer. aiohttp's client (request and response objects, connector, pooling logic, traces,
cookie and redirect machinery) costs several times the socket work itself at thousands of
probes per second; this module does only what a probe needs on an asyncio `Protocol`: write
the request, parse the status line and headers, read the body (Content-Length, chunked, or up
to the close; gzip and deflate decoded), never more than asked. It sends `Connection: close`
and closes the connection when done: nothing is ever reused.

The caller (`probes.http`) keeps every verdict and redirect rule; the phases are entered on the
run's `ProbeRun` as with the aiohttp path (`resolve`, `connect`, then `tls` for https with the
handshake apart from the TCP connect, then `first_byte`; the caller enters `transfer`). TLS
errors get the same reasons (`failover.tls.tls_error_reason`).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import AsyncIterator, Iterable
from typing import cast

from failover.probes.base import ProbeRun
from failover.probes.net import is_ip, open_socket, os_error_reason
from failover.tls import peer_detail, tls_error_reason

SSL_SHUTDOWN_TIMEOUT = 2.0
"""Seconds a closed TLS connection may wait in the background for the peer's close_notify."""

MAX_HEAD = 64 * 1024
"""Bytes of status line plus headers accepted (aiohttp's limits are of the same order)."""

NO_BODY_STATUS = frozenset({204, 304})
_DEFAULTS = (("User-Agent", "failover-probe"), ("Accept", "*/*"))


class WireError(Exception):
    """The exchange failed; `reason` is the probe's failure reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Reader(asyncio.Protocol):
    """Collects what the peer sends; `wait()` returns once more arrived or the peer closed."""

    __slots__ = ("buffer", "closed", "error", "paused", "transport", "waiter", "window")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.closed = False
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.window = MAX_HEAD
        """Bytes buffered before reading pauses (the caller raises it to what it will read)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= self.window and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> bool:
        """Wait for more data; False when the peer has closed (nothing more will come)."""
        if self.error is not None:
            raise self.error
        if self.closed:
            return False
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        await waiter
        if self.error is not None:
            raise self.error
        return True

    def take(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data


class Response:
    """A response whose head was read; `read(limit)` reads (and decodes) the body."""

    __slots__ = ("_chunked", "_decoder", "_left", "_reader", "headers", "status", "version")

    def __init__(
        self, reader: _Reader, status: int, version: str, headers: dict[str, str], method: str
    ) -> None:
        self._reader = reader
        self.status = status
        self.version = version
        self.headers = headers
        """Header names in lower case (a repeated header keeps its last value)."""
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._left: int | None = None  # body bytes still expected; None: up to the close
        if method == "HEAD" or status in NO_BODY_STATUS or status < 200:
            self._left, self._chunked = 0, False
        elif not self._chunked and "content-length" in headers:
            try:
                self._left = int(headers["content-length"])
            except ValueError:
                raise WireError("bad response: invalid Content-Length") from None
            if self._left < 0:
                raise WireError("bad response: invalid Content-Length")
        encoding = headers.get("content-encoding", "").strip().lower()
        self._decoder = zlib.decompressobj(47) if encoding in ("gzip", "deflate") else None

    async def read(self, limit: int) -> bytes:
        """At most `limit` bytes of the (decoded) body."""
        raw = self._read_chunked(limit) if self._chunked else self._read_plain(limit)
        body = bytearray()
        async for data in raw:
            if self._decoder is not None:
                try:
                    data = self._decoder.decompress(data, limit - len(body))
                except zlib.error as exc:
                    raise WireError(f"body read failed: cannot decode body: {exc}") from None
            body += data
            if len(body) >= limit:
                break
        return bytes(body[:limit])

    async def _read_plain(self, limit: int) -> AsyncIterator[bytes]:
        reader = self._reader
        reader.window = max(reader.window, limit)
        while True:
            if reader.buffer:
                count = len(reader.buffer) if self._left is None else min(self._left, limit)
                data = reader.take(count)
                if self._left is not None:
                    self._left -= len(data)
                yield data
            if self._left == 0:
                return
            if not await reader.wait():
                if reader.buffer:
                    continue
                if self._left is not None:
                    raise WireError("body read failed: connection closed before the end")
                return

    async def _read_chunked(self, limit: int) -> AsyncIterator[bytes]:
        reader = self._reader
        reader.window = max(reader.window, limit)
        while True:
            line = await _line(reader, "chunk size")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise WireError("bad response: invalid chunk size") from None
            if size == 0:
                return
            while size > 0:
                while not reader.buffer:
                    if not await reader.wait():
                        raise WireError("body read failed: connection closed inside a chunk")
                data = reader.take(size)
                size -= len(data)
                yield data
            await _line(reader, "chunk end")


async def _line(reader: _Reader, what: str) -> bytes:
    while True:
        end = reader.buffer.find(b"\r\n")
        if end >= 0:
            line = reader.take(end + 2)[:-2]
            return line
        if len(reader.buffer) > MAX_HEAD:
            raise WireError(f"bad response: {what} line too long")
        if not await reader.wait():
            raise WireError(f"body read failed: connection closed before the {what}")


def request_bytes(
    method: str, target: str, authority: str, headers: Iterable[tuple[str, str]]
) -> bytes:
    """The request head: the caller's headers override the defaults (Host included)."""
    names = set()
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers:
        names.add(name.lower())
        lines.append(f"{name}: {value}")
    if "host" not in names:
        lines.insert(1, f"Host: {authority}")
    for name, value in _DEFAULTS:
        if name.lower() not in names:
            lines.append(f"{name}: {value}")
    if method in ("POST", "PUT", "PATCH") and "content-length" not in names:
        lines.append("Content-Length: 0")
    lines.append("Connection: close")
    head = "\r\n".join(lines) + "\r\n\r\n"
    if head.count("\n") != len(lines) + 1 or head.count("\r") != len(lines) + 1:
        # a line break inside a method, target or header would split the request
        raise WireError("invalid request: a line break in the method, a header name or a value")
    try:
        return head.encode("latin-1")
    except UnicodeEncodeError:
        raise WireError("invalid request: header values must be latin-1") from None


async def _read_head(reader: _Reader) -> tuple[int, str, dict[str, str]]:
    while True:
        end = reader.buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = reader.take(end + 4)
            status, version, headers = _parse_head(head[:end])
            if 100 <= status < 200 and status != 101:
                continue  # an interim response (100 Continue): the real one follows
            return status, version, headers
        if len(reader.buffer) > MAX_HEAD:
            raise WireError("bad response: headers too large")
        if not await reader.wait():
            raise WireError("server disconnected")


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or len(parts[1]) != 3:
        raise WireError(f"bad response: invalid status line {lines[0][:60]!r}")
    version = parts[0][5:]
    if version not in ("1.0", "1.1") or not parts[1].isdigit():
        raise WireError(f"bad response: invalid status line {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise WireError(f"bad response: invalid header line {line[:60]!r}")
        headers[name.lower()] = value.strip()
    return int(parts[1]), version, headers


class Exchange:
    """One request on its own connection; use as `async with` (the connection closes at exit)."""

    __slots__ = ("_reader",)

    def __init__(self) -> None:
        self._reader: _Reader | None = None

    async def open(
        self,
        host: str,
        port: int,
        head: bytes,
        method: str,
        run: ProbeRun,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> Response:
        """Connect (phases `resolve`, `connect`, and `tls` with a context), send `head`, read
        the response head (phase `first_byte`). Raises OSError for socket errors, WireError
        otherwise (TLS handshake failures included, with the probe's reason)."""
        loop = asyncio.get_running_loop()
        for key in ("tls_version", "cert_expiry"):  # from an earlier hop of a redirect chain
            run.detail.pop(key, None)
        if tls is None and is_ip(host) and "%" not in host:
            # An IP address (the usual target): the loop connects in one call, no resolver and
            # no separate socket set-up (much cheaper on uvloop); the phases are the same.
            run.enter("resolve")
            run.enter("connect")
            transport, reader = await loop.create_connection(_Reader, host, port)
        else:
            sock = await open_socket(host, port, run)
            if tls is not None:
                run.enter("tls")
            try:
                if tls is None:
                    transport, reader = await loop.create_connection(_Reader, sock=sock)
                else:
                    transport, reader = await loop.create_connection(
                        _Reader,
                        sock=sock,
                        ssl=tls,
                        server_hostname=(server_hostname or host).rstrip("."),
                        ssl_shutdown_timeout=SSL_SHUTDOWN_TIMEOUT,
                    )
            except BaseException as exc:
                sock.close()  # a no-op when the failed transport already closed it
                if isinstance(exc, ssl.SSLError):
                    raise WireError(tls_error_reason(exc)) from exc
                if isinstance(exc, OSError) and tls is not None:
                    raise WireError(f"{os_error_reason(exc)} during tls handshake") from exc
                raise
            if tls is not None:
                run.detail.update(peer_detail(transport.get_extra_info("ssl_object")))
        self._reader = reader
        run.enter("first_byte")
        assert reader.transport is not None
        reader.transport.write(head)
        status, version, headers = await _read_head(reader)
        return Response(reader, status, version, headers, method)

    async def __aenter__(self) -> Exchange:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and reader.transport is not None:
            reader.transport.close()
