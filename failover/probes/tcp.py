"""TCP probe: open a connection to `address`, then close it.

Also home of `os_error_reason`, the short reasons for socket errors that the HTTP probe reuses.
The caller owns the deadline (see `base`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import socket
import time

from failover.config_types import TcpProbeConfig
from failover.model import ProbeResult
from failover.probes.base import ProbeContext

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
    if isinstance(err, ConnectionResetError):
        return "connection reset"
    if isinstance(err, ConnectionRefusedError):
        return "connect refused"
    text = err.strerror or str(err) or type(err).__name__
    return text[:200]


async def probe(spec: TcpProbeConfig, ctx: ProbeContext) -> ProbeResult:
    """Connect to `spec.address` and close; ok when the handshake completes."""
    start = time.monotonic()
    try:
        _, writer = await asyncio.open_connection(spec.address.host, spec.address.port)
    except OSError as err:
        elapsed = time.monotonic() - start
        return ProbeResult(False, os_error_reason(err), elapsed, {"total": elapsed})
    except Exception as err:  # a probe reports, it never raises (CancelledError passes)
        elapsed = time.monotonic() - start
        return ProbeResult(False, f"{type(err).__name__}: {err}"[:200], elapsed, {"total": elapsed})
    connect = time.monotonic() - start
    writer.close()
    # The connection was made; a reset while closing does not change the verdict.
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    total = time.monotonic() - start
    return ProbeResult(True, "connected", total, {"connect": connect, "total": total})
