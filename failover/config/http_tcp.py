"""Parsers of the `http` and `tcp` probe kinds (registered in `probes.py`), and of the TLS
client keys they share: `verify_tls`, `tls_server_name`, `ca_file`, `client_cert`, `client_key`
and `tls_min_version`.

TLS keys where no TLS happens are errors (an http:// URL that does not follow redirects, a tcp
probe without `tls: true`), as are keys that only work together when half given, so a typo'd
setup fails at `check-config`, not at the first failover. CA, certificate and key files must
be readable and are loaded once here, so a wrong or mismatched file is reported with its path.
"""

from __future__ import annotations

import functools
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from failover.config.common import ProbeCommon
from failover.config.parse import (
    Interpolated,
    Invalid,
    Section,
    boolean,
    choice,
    dns_name,
    hostport,
    integer,
    kind,
    plain,
    readable_file,
    show,
    size,
    string,
)
from failover.config.types import HostPort, HttpProbeConfig, TcpProbeConfig
from failover.tls import TlsSettings, TlsSetupError, build_context

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
TLS_KEYS = (
    "verify_tls",
    "tls_server_name",
    "ca_file",
    "client_cert",
    "client_key",
    "tls_min_version",
)
_KIB, _MIB = 1024, 1024 * 1024


def http_url(value: object) -> str:
    text = string(value)
    try:
        parts = urllib.parse.urlsplit(text)
        _ = parts.port  # raises on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{show(value)} is not an http(s) URL; expected a URL like https://host/path")
    if any(c.isspace() for c in text):
        raise Invalid(f"{show(value)} contains spaces; expected a URL with spaces %-encoded")
    return text


def regex(value: object) -> str:
    text = string(value)
    try:
        re.compile(text)
    except re.error as exc:
        raise Invalid(f"invalid regular expression ({exc}); expected a Python regex") from None
    return text


_STATUS_CLASS = re.compile(r"[1-5]xx", re.IGNORECASE)


def status_codes(value: object) -> tuple[int | str, ...]:
    """HTTP statuses: codes (200) and classes (`2xx`), kept as written (classes lower-cased) so
    messages can quote them; a single one stands for a one-element list."""
    raw: list[object] = value if isinstance(value, list) else [value]
    expected = "expected status codes 100..599 or classes 1xx..5xx, like [200, 301] or [2xx]"
    if not raw:
        raise Invalid(f"empty list; {expected}")
    out: list[int | str] = []
    for item in raw:
        token: int | str
        if isinstance(item, int) and not isinstance(item, bool):
            token = item
        elif isinstance(item, str) and item.strip().isdigit():
            token = int(item.strip())
        elif isinstance(item, str) and _STATUS_CLASS.fullmatch(item.strip()):
            token = item.strip().lower()
        else:
            got = show(item) if isinstance(item, str) else kind(item)
            raise Invalid(f"{got} is not an HTTP status; {expected}")
        if isinstance(token, int) and not 100 <= token <= 599:
            raise Invalid(f"{token} is out of range; {expected}")
        if token not in out:
            out.append(token)
    return tuple(out)


def tls_version(value: object) -> Literal["1.2", "1.3"]:
    """`"1.2"` or `"1.3"` (an unquoted 1.2 in YAML is a number: accepted too)."""
    text = f"{value:.1f}" if isinstance(value, float) else value if isinstance(value, str) else ""
    if text.strip() == "1.2":
        return "1.2"
    if text.strip() == "1.3":
        return "1.3"
    got = show(value) if isinstance(value, str) else str(value) if text else kind(value)
    raise Invalid(f'{got} is not a TLS version probes accept; expected "1.2" or "1.3"')


_SIMPLE_ESCAPES = {"\\": 0x5C, "r": 0x0D, "n": 0x0A, "t": 0x09, "0": 0x00, '"': 0x22, "'": 0x27}
_HEX = re.compile(r"[0-9A-Fa-f]{2}")


def escaped_bytes(value: object) -> bytes:
    """Bytes to send: text as UTF-8, with `\\r`, `\\n`, `\\t`, `\\0`, `\\\\` and `\\xHH`."""
    if not isinstance(value, str) or not value:
        raise Invalid(f"expected a non-empty string, got {kind(value)}")
    out = bytearray()
    i = 0
    while i < len(value):
        char = value[i]
        if char != "\\":
            out += char.encode("utf-8")
            i += 1
            continue
        escape = value[i + 1 : i + 2]
        if escape in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[escape])
            i += 2
        elif escape == "x" and _HEX.fullmatch(value[i + 2 : i + 4]):
            out.append(int(value[i + 2 : i + 4], 16))
            i += 4
        else:
            shown = (
                "in " + show(value) if isinstance(value, Interpolated) else repr(value[i : i + 2])
            )
            raise Invalid(
                f"unknown escape {shown}; expected \\r, \\n, \\t, \\0, \\\\ or \\xHH "
                "(write \\\\ for a backslash)"
            )
    return bytes(out)


def bytes_regex(value: object) -> str:
    """A regular expression matched on raw bytes (the pattern's UTF-8 encoding)."""
    text = regex(value)
    try:
        re.compile(text.encode("utf-8"))
    except re.error as exc:
        raise Invalid(f"invalid regular expression ({exc}); expected a Python regex") from None
    return text


# --- TLS keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tls:
    verify: bool = True
    server_name: str | None = None
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    min_version: Literal["1.2", "1.3"] | None = None


def _stamp(files: tuple[Path, ...]) -> tuple[tuple[int, int], ...]:
    out = []
    for file in files:
        try:
            st = os.stat(file)
        except OSError:
            out.append((0, 0))
        else:
            out.append((st.st_mtime_ns, st.st_size))
    return tuple(out)


@functools.lru_cache(maxsize=256)
def _load_problem(settings: TlsSettings, _stamp: tuple[tuple[int, int], ...]) -> str | None:
    """Why these files cannot make a TLS context, or None (cached: many probes share files)."""
    try:
        build_context(settings)
    except TlsSetupError as exc:
        return str(exc)
    return None


def _check_files(p: Section, tls: _Tls) -> None:
    if tls.ca_file is not None:
        ca = TlsSettings(verify=True, ca_file=tls.ca_file)
        problem = _load_problem(ca, _stamp(ca.files()))
        if problem is not None:
            p.error("ca_file", f"{problem}; expected a PEM file of CA certificates")
    if tls.client_cert is not None:
        cert = TlsSettings(verify=False, client_cert=tls.client_cert, client_key=tls.client_key)
        problem = _load_problem(cert, _stamp(cert.files()))
        if problem is not None:
            key = "client_key" if tls.client_key is not None else "client_cert"
            p.error(
                key,
                f"{problem}; expected a PEM certificate (client_cert) and its unencrypted "
                "private key (client_key, or in the same file)",
            )


def _tls(p: Section, c: ProbeCommon, unused: str | None) -> _Tls:
    """The TLS keys; `unused` says why they cannot apply (then any of them is an error)."""
    files = readable_file(c.base_dir)
    tls = _Tls(
        verify=p.get("verify_tls", boolean, True),
        server_name=p.opt("tls_server_name", dns_name()),
        ca_file=p.opt("ca_file", files),
        client_cert=p.opt("client_cert", files),
        client_key=p.opt("client_key", files),
        min_version=p.opt("tls_min_version", tls_version),
    )
    if unused is not None:
        for key in TLS_KEYS:
            if p.present(key) and not p.failed(key):
                p.error(key, f"set {unused}")
        return _Tls()
    if tls.client_key is not None and p.raw("client_cert") is None:
        p.error("client_key", "set without client_cert; add the client certificate file")
    if tls.ca_file is not None and not tls.verify:
        p.error("ca_file", "set while verify_tls is false; the CA file only serves verification")
    _check_files(p, tls)
    server_name = None if tls.server_name is None else plain(tls.server_name)
    return _Tls(
        tls.verify, server_name, tls.ca_file, tls.client_cert, tls.client_key, tls.min_version
    )


# --- http -----------------------------------------------------------------------------------------


def http(p: Section, c: ProbeCommon) -> HttpProbeConfig:
    url = p.need("url", http_url, "the URL to fetch, like https://203.0.113.10/healthz") or ""
    follow = p.get("follow_redirects", boolean, False)
    max_redirects = p.get("max_redirects", integer(1, 30), 5)
    if p.present("max_redirects") and not follow and not p.failed("follow_redirects"):
        p.error("max_redirects", "set without follow_redirects: true; redirects are not followed")
    plain_http = urllib.parse.urlsplit(url).scheme == "http"
    unused = None
    if plain_http and not follow:
        unused = (
            "on a plain http URL; TLS options only apply to https URLs (or, with "
            "follow_redirects: true, to redirects to https)"
        )
    tls = _tls(p, c, unused)
    headers = p.string_map("headers")
    for name in headers:
        if name.lower() == "host":
            p.error(f"headers.{name}", "set the Host header with the `host` key (it also sets SNI)")
    host = p.opt("host", dns_name())
    body_regex = p.opt("body_regex", regex)
    return HttpProbeConfig(
        name=c.name,
        url=plain(url),
        interval=c.interval,
        timeout=c.timeout,
        fast_interval=c.fast_interval,
        method=p.get("method", choice(METHODS, "HTTP method"), "GET"),
        headers=headers,
        host=None if host is None else plain(host),
        expect_status=p.get("expect_status", status_codes, (200,)),
        body_regex=None if body_regex is None else plain(body_regex),
        body_limit=p.get("body_limit", size(1, 16 * _MIB), 64 * _KIB),
        follow_redirects=follow,
        max_redirects=max_redirects,
        verify_tls=tls.verify,
        tls_server_name=tls.server_name,
        ca_file=tls.ca_file,
        client_cert=tls.client_cert,
        client_key=tls.client_key,
        tls_min_version=tls.min_version,
    )


# --- tcp ------------------------------------------------------------------------------------------


def tcp(p: Section, c: ProbeCommon) -> TcpProbeConfig:
    address = p.need("address", hostport(), "host:port, like 203.0.113.10:443")
    use_tls = p.get("tls", boolean, False)
    tls = _tls(p, c, None if use_tls else "without tls: true; TLS options need tls: true")
    send = p.opt("send", escaped_bytes)
    expect = p.opt("expect", bytes_regex)
    expect_bytes = p.get("expect_bytes", size(1, _MIB), 4 * _KIB)
    if p.present("expect_bytes") and p.raw("expect") is None:
        p.error("expect_bytes", "set without expect; it bounds what is read for expect")
    return TcpProbeConfig(
        name=c.name,
        address=address or HostPort("", 0),
        interval=c.interval,
        timeout=c.timeout,
        fast_interval=c.fast_interval,
        send=send,
        expect=None if expect is None else plain(expect),
        expect_bytes=expect_bytes,
        tls=use_tls,
        tls_server_name=tls.server_name,
        verify_tls=tls.verify,
        ca_file=tls.ca_file,
        client_cert=tls.client_cert,
        client_key=tls.client_key,
        tls_min_version=tls.min_version,
    )
