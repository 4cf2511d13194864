"""Connection set-up shared by the probes, one timed phase at a time, and short socket reasons.

`open_socket` resolves (phase `resolve`; an IP address skips the resolver) and connects (phase
`connect`, RFC 8305 happy eyeballs across the resolved addresses, as aiohttp does). A TLS
handshake, when wanted, is the caller's next phase on the returned socket.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import os
import re
import socket
from collections.abc import Sequence

import aiohappyeyeballs
from aiohappyeyeballs import AddrInfoType

from failover.probes.base import ProbeRun

HAPPY_EYEBALLS_DELAY = 0.25
"""Seconds before racing the next address family (RFC 8305's recommended 250 ms)."""

CACHE_SIZE = 65536
"""Entries kept by the per-target caches of pure conversions (more than the targets of any
sensible configuration: a least-recently-used cache smaller than the set probed in turn would
miss every time)."""

_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connect refused",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "no route to network",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection reset",
    errno.ETIMEDOUT: "connect timed out",
    errno.EADDRNOTAVAIL: "address not available",
}
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")

# Errors that say this host is short of something, not that the target is down: a probe that
# fails with one is a local fault (not counted toward `fall`; see engine/inputs.py).
LOCAL_ERRNOS = {
    errno.EMFILE: "emfile",
    errno.ENFILE: "enfile",
    errno.ENOBUFS: "enobufs",
    errno.ENOMEM: "enomem",
}
_LOCAL_MARK = re.compile(r"local fault \((\w+)\)")


def local_fault_of(reason: str) -> str | None:
    """The local fault a failed probe's reason names (`emfile` …), or None."""
    mark = _LOCAL_MARK.search(reason)
    if mark is not None:
        return mark.group(1)
    for code in _ERRNO_IN_TEXT.findall(reason):  # a reason built from str(exc) elsewhere
        if int(code) in LOCAL_ERRNOS:
            return LOCAL_ERRNOS[int(code)]
    return None


def os_error_reason(err: OSError) -> str:
    """A concise, stable reason for a socket-level error (`connect refused`, `no route to host`)."""
    if isinstance(err, socket.gaierror):
        return f"dns failure: {err.strerror or err}"
    code = err.errno
    if code is None:
        # asyncio folds one error per resolved address into "Multiple exceptions: [Errno 111] …";
        # when they agree, report that one.
        codes = {int(c) for c in _ERRNO_IN_TEXT.findall(str(err))}
        if len(codes) == 1:
            code = codes.pop()
    if code in _ERRNO_REASONS:
        return _ERRNO_REASONS[code]
    if code in LOCAL_ERRNOS:
        return f"local fault ({LOCAL_ERRNOS[code]}): {os.strerror(code).lower()}"
    if isinstance(err, ConnectionResetError):
        return "connection reset"
    if isinstance(err, ConnectionRefusedError):
        return "connect refused"
    text = err.strerror or str(err) or type(err).__name__
    return text[:200]


@functools.lru_cache(maxsize=CACHE_SIZE)
def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=CACHE_SIZE)
def _numeric(host: str, port: int) -> tuple[AddrInfoType, ...]:
    # Pure conversion, no resolver: safe to remember (probes run the same targets every interval).
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    return tuple(infos)


async def resolve(host: str, port: int) -> Sequence[AddrInfoType]:
    """Addresses for a TCP connection; an IP address is converted without asking any resolver.

    Raises socket.gaierror.
    """
    if is_ip(host):
        return _numeric(host, port)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise socket.gaierror(socket.EAI_NONAME, "no address")
    return infos


async def open_socket(host: str, port: int, run: ProbeRun) -> socket.socket:
    """A connected non-blocking socket to host:port; the caller owns (and closes) it.

    Enters phases `resolve` then `connect`. Raises OSError (socket.gaierror for DNS).
    """
    run.enter("resolve")
    host = host.rstrip(".")
    infos = _numeric(host, port) if is_ip(host) else await resolve(host, port)
    run.enter("connect")
    loop = asyncio.get_running_loop()
    if len(infos) > 1:
        return await aiohappyeyeballs.start_connection(
            infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, loop=loop
        )
    # One address (the usual case: targets are IP addresses): nothing to race, so connect
    # directly, as start_connection would, without its bookkeeping.
    family, type_, proto, _, address = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock
