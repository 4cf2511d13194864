"""TLS probe: a fresh TCP connection and TLS handshake; the server certificate is checked.

In order, the probe fails when: the connection or the handshake fails; the chain does not verify
(`verify`, against `ca_file` or the system trust store; `certificate verify failed: …`); the
certificate does not name `server_name` (`hostname mismatch: certificate is for …`); it is not
yet valid or has expired; it expires in fewer than `warn_days` days (`certificate expires in 9
days (warn_days 14)`). With `verify: false` the chain is not checked, but the host name,
validity and days left still are.

The host name is matched here rather than by OpenSSL, so the reason can say which names the
certificate holds: against the subject alternative names only (the common name is ignored, as
browsers and Python do), a `*` standing for exactly one whole left-most label; an IP address
matches IP address entries only.

The connection is aborted right after the handshake (no close_notify exchange), so a server that
never answers close_notify cannot turn a good check into a timeout.

`server_name` is sent as SNI (unless it is an IP address) and matched; it defaults to the host
of `address`, so a probe of an IP address without `server_name` wants an IP address entry.

Timings, in seconds: `setup` (the TLS context, built on first use), `resolve`, `connect`, `tls`
(the handshake) and `total`; the phases are entered on `ctx.run`, so a deadline names the one
it cut. Detail: `tls_version`, then from the certificate `days_left`, `not_after` (unix
seconds; also as `cert_expiry`, the key the http and tcp probes use), `subject` and `issuer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import os
import ssl
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a certificate is read: 45 ms of every start-up otherwise
    from cryptography import x509

from failover.config.types import TlsProbeConfig
from failover.model import ProbeResult
from failover.probes.base import ProbeContext, ProbeRun
from failover.probes.net import open_socket, os_error_reason
from failover.tls import TlsSettings, TlsSetupError, build_context

log = logging.getLogger(__name__)

_DAY = 86400.0
_SHOWN = 4  # at most this many certificate names are quoted in a reason
_CACHE_SIZE = 64

_Stamp = tuple[int, int, int] | None
_contexts: dict[tuple[bool, str | None], tuple[_Stamp, ssl.SSLContext]] = {}


async def context_for(spec: TlsProbeConfig) -> ssl.SSLContext:
    """A client context for the spec, without host name checking (see the module docstring).

    Built in a thread, shared by the tls probes with the same `verify`/`ca_file`, and rebuilt
    when the CA file changes on disk (a file that no longer loads keeps the last good context,
    with a warning). Not the probes' shared `ctx.tls` cache: those contexts check host names,
    and the http probe relies on it. Raises TlsSetupError.
    """
    stamp: _Stamp = None
    path = str(spec.ca_file) if spec.verify and spec.ca_file is not None else None
    if path is not None:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise TlsSetupError(f"cannot read ca_file {path}: {exc.strerror}") from None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    key = (spec.verify, path)
    cached = _contexts.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    settings = TlsSettings(verify=spec.verify, ca_file=spec.ca_file if path else None)
    try:
        context = await asyncio.to_thread(build_context, settings)
    except TlsSetupError as exc:
        if cached is None:
            raise
        log.warning("tls probe: keeping the previous TLS context: %s", exc)
        return cached[1]
    context.check_hostname = False  # this context is ours alone: matched after the handshake
    if key not in _contexts and len(_contexts) >= _CACHE_SIZE:
        _contexts.pop(next(iter(_contexts)))
    _contexts[key] = (stamp, context)
    return context


def cert_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses of the subject alternative names, in certificate order."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(san.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names


def hostname_matches(cert: x509.Certificate, hostname: str) -> bool:
    """Whether the certificate's subject alternative names cover `hostname` (RFC 6125)."""
    from cryptography import x509

    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        address = None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    if address is not None:
        return address in san.get_values_for_type(x509.IPAddress)
    host = hostname.rstrip(".").lower()
    for pattern in san.get_values_for_type(x509.DNSName):
        pattern = pattern.rstrip(".").lower()
        if pattern == host:
            return True
        if pattern.startswith("*.") and "*" not in pattern[2:]:
            first, dot, rest = host.partition(".")
            if first and dot and rest == pattern[2:] and "." in rest:
                return True
    return False


def _left(seconds: float) -> str:
    """`9 days`, `1 day`, `5h`, `12m`: how long, rounded down."""
    if seconds >= _DAY:
        days = int(seconds // _DAY)
        return f"{days} day" if days == 1 else f"{days} days"
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h"
    return f"{max(0, int(seconds // 60))}m"


def _cert_detail(cert: x509.Certificate, now: float) -> dict[str, str | int | float]:
    not_after = cert.not_valid_after_utc.timestamp()
    return {
        "days_left": round((not_after - now) / _DAY, 3),
        "not_after": int(not_after),
        "cert_expiry": int(not_after),  # the key the http and tcp probes use for the same fact
        "subject": cert.subject.rfc4514_string()[:200],
        "issuer": cert.issuer.rfc4514_string()[:200],
    }


def check_certificate(spec: TlsProbeConfig, cert: x509.Certificate, now: float) -> tuple[bool, str]:
    """Host name, validity period and days left; the chain was verified (or not) already."""
    if not hostname_matches(cert, spec.hostname):
        names = cert_names(cert)
        if not names:
            return False, "hostname mismatch: certificate has no subject alternative names"
        more = f", … {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
        return False, f"hostname mismatch: certificate is for {', '.join(names[:_SHOWN])}{more}"
    not_before = cert.not_valid_before_utc.timestamp()
    if now < not_before:
        when = datetime.datetime.fromtimestamp(not_before, datetime.UTC).isoformat()
        return False, f"certificate not yet valid (valid from {when})"
    left = cert.not_valid_after_utc.timestamp() - now
    if left <= 0:
        return False, f"certificate expired {_left(-left)} ago"
    if left < spec.warn_days * _DAY:
        return False, f"certificate expires in {_left(left)} (warn_days {spec.warn_days})"
    return True, f"certificate expires in {_left(left)}"


def _handshake_error(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {(exc.verify_message or str(exc)).rstrip('.')}"
    if isinstance(exc, ssl.SSLError):
        return f"tls handshake failed: {str(exc.reason or exc).lower().replace('_', ' ')}"
    if isinstance(exc, ConnectionError | EOFError):
        return "connection closed during tls handshake"
    if isinstance(exc, OSError):
        return f"{os_error_reason(exc)} during tls handshake"
    return f"{type(exc).__name__}: {exc}"


async def probe(spec: TlsProbeConfig, ctx: ProbeContext) -> ProbeResult:
    """Connect, handshake, check the certificate; ok when every check passes."""
    run = ctx.run
    run.start("setup")  # the TLS context (built once, in a thread)
    try:
        ok, reason = await _check(spec, run)
    except TlsSetupError as exc:
        ok, reason = False, str(exc)
    except Exception as exc:  # a probe reports, it never raises (CancelledError passes)
        ok, reason = False, f"{type(exc).__name__}: {exc}"
    total = run.finish()
    return ProbeResult(ok, reason[:300], total, dict(run.timings), dict(run.detail))


async def _check(spec: TlsProbeConfig, run: ProbeRun) -> tuple[bool, str]:
    context = await context_for(spec)
    try:
        sock = await open_socket(spec.address.host, spec.address.port, run)
    except OSError as exc:
        return False, os_error_reason(exc)
    run.enter("tls")
    writer: asyncio.StreamWriter | None = None
    try:
        _, writer = await asyncio.open_connection(sock=sock)
        await writer.start_tls(context, server_hostname=spec.hostname)
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        version = ssl_object.version() if ssl_object is not None else None
        run.enter(None)
    except Exception as exc:
        return False, _handshake_error(exc)
    finally:
        if writer is not None:
            writer.transport.abort()
        else:
            with contextlib.suppress(OSError):
                sock.close()
    if version:
        run.detail["tls_version"] = version
    if not der:
        return False, "the server sent no certificate"
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return False, f"cannot parse the server certificate: {exc}"
    now = time.time()
    run.detail.update(_cert_detail(cert, now))
    return check_certificate(spec, cert, now)
