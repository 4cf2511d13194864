"""TLS for probes: client contexts built off the event loop and shared, and short reasons.

An `ssl.SSLContext` is safe to share between connections and costly to build (the system trust
store alone takes tens of milliseconds to load), so probes share one per distinct `TlsSettings`
through a `TlsContextCache`: built once in a worker thread, rebuilt when a CA, certificate or key
file changes on disk (checked at most every `RECHECK` seconds), so a rotated client certificate
is picked up without a reload. Connections themselves are never shared (see `probes.http`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

TlsVersion = Literal["1.2", "1.3"]
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

RECHECK = 5.0
"""Seconds between two checks of a cached context's files."""

_HOSTNAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
_SSL_DETAIL = re.compile(r"\] (.*?)(?: \(_ssl\.c:\d+\))?$")


@dataclass(frozen=True)
class TlsSettings:
    """What makes two client contexts different (the server name is per connection)."""

    verify: bool = True
    ca_file: Path | None = None  # None: the system trust store
    client_cert: Path | None = None
    client_key: Path | None = None  # None: the key is in client_cert
    min_version: TlsVersion | None = None  # None: the library default (TLS 1.2 today)

    def files(self) -> tuple[Path, ...]:
        return tuple(f for f in (self.ca_file, self.client_cert, self.client_key) if f)


class TlsSetupError(Exception):
    """A CA, certificate or key file could not be used; the message is the probe's reason."""


def _no_password() -> str:
    raise TlsSetupError("client_key is encrypted; provide an unencrypted key file")


def build_context(settings: TlsSettings) -> ssl.SSLContext:
    """A client context for `settings`. Blocking (reads files): call it from a thread.

    With `ca_file`, only that CA is trusted (like `curl --cacert`), not the system store.
    Raises TlsSetupError naming the file at fault.
    """
    try:
        if settings.verify:
            context = ssl.create_default_context(cafile=settings.ca_file)
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    except (OSError, ValueError) as exc:
        raise TlsSetupError(f"cannot load ca_file {settings.ca_file}: {_ssl_text(exc)}") from None
    if settings.min_version is not None:
        context.minimum_version = _VERSIONS[settings.min_version]
    if settings.client_cert is not None:
        try:
            context.load_cert_chain(settings.client_cert, settings.client_key, _no_password)
        except (OSError, ValueError) as exc:
            files = ", ".join(str(f) for f in (settings.client_cert, settings.client_key) if f)
            raise TlsSetupError(
                f"cannot load client certificate {files}: {_ssl_text(exc)}"
            ) from None
    return context


def _stamp(settings: TlsSettings) -> tuple[tuple[int, int, int], ...]:
    """Identity of the files' current versions; raises TlsSetupError when one is gone."""
    out = []
    for file in settings.files():
        try:
            st = os.stat(file)
        except OSError as exc:
            raise TlsSetupError(f"cannot read {file}: {exc.strerror or exc}") from None
        out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


@dataclass
class _Entry:
    stamp: tuple[tuple[int, int, int], ...]
    checked: float
    context: ssl.SSLContext


class TlsContextCache:
    """One shared `SSLContext` per `TlsSettings`, built in a thread; concurrent callers share
    one build. Use from a single event loop."""

    def __init__(self) -> None:
        self._ready: dict[TlsSettings, _Entry] = {}
        self._building: dict[TlsSettings, asyncio.Task[_Entry]] = {}

    async def get(self, settings: TlsSettings) -> ssl.SSLContext:
        """The context for `settings`. Raises TlsSetupError when a file cannot be used."""
        now = time.monotonic()
        entry = self._ready.get(settings)
        if entry is not None and now - entry.checked < RECHECK:
            return entry.context
        try:
            stamp = _stamp(settings)
            if entry is not None and entry.stamp == stamp:
                entry.checked = now
                return entry.context
            task = self._building.get(settings)
            if task is None:
                task = asyncio.ensure_future(self._build(settings, stamp))
                self._building[settings] = task
                task.add_done_callback(lambda done: self._built(settings, done))
            # One caller's deadline must not cancel a build others wait for.
            return (await asyncio.shield(task)).context
        except TlsSetupError as exc:
            if entry is None:
                raise
            # A file being replaced, or a bad new one: keep probing with the last good context
            # rather than failing every target at once; try again after RECHECK.
            log.warning("keeping the previous TLS context: %s", exc)
            entry.checked = now
            return entry.context

    async def _build(
        self, settings: TlsSettings, stamp: tuple[tuple[int, int, int], ...]
    ) -> _Entry:
        context = await asyncio.to_thread(build_context, settings)
        return _Entry(stamp, time.monotonic(), context)

    def _built(self, settings: TlsSettings, task: asyncio.Task[_Entry]) -> None:
        self._building.pop(settings, None)
        if not task.cancelled() and task.exception() is None:
            self._ready[settings] = task.result()


def _ssl_text(exc: BaseException) -> str:
    """`[SSL: X] some words (_ssl.c:123)` → `some words`."""
    if isinstance(exc, TlsSetupError):
        return str(exc)
    text = str(exc)
    match = _SSL_DETAIL.search(text)
    if match and match.group(1):
        return match.group(1)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return text or type(exc).__name__


def tls_error_reason(exc: ssl.SSLError) -> str:
    """A short reason for a failed handshake: `hostname mismatch: …`,
    `certificate verify failed: …` or `tls handshake failed: …`."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = (exc.verify_message or _ssl_text(exc)).rstrip(".")
        if exc.verify_code in _HOSTNAME_MISMATCH:
            detail = message.partition(", ")[2] or message
            return f"hostname mismatch: {detail}"
        return f"certificate verify failed: {message}"
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return f"tls handshake failed: {reason.lower().replace('_', ' ')}"
    return f"tls handshake failed: {_ssl_text(exc)}"


def peer_detail(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, str | int | float]:
    """`tls_version` and, when the chain was verified, `cert_expiry` (unix seconds)."""
    if ssl_object is None:
        return {}
    detail: dict[str, str | int | float] = {}
    version = ssl_object.version()
    if version:
        detail["tls_version"] = version
    cert = ssl_object.getpeercert()  # empty unless verified: parsing needs verification
    not_after = cert.get("notAfter") if cert else None
    if isinstance(not_after, str):
        with contextlib.suppress(ValueError):
            detail["cert_expiry"] = ssl.cert_time_to_seconds(not_after)
    return detail
