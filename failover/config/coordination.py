"""The `coordination:` section: several instances, one leader elected in etcd.

Absent, the instance runs alone (the default). The checks here are the ones that would
otherwise surface only during an incident: a timeout too long for the keepalive to fail over to
another etcd member before the lease runs out, a certificate without its key, a user without
a password. The password is a `Secret` and no message here quotes it, nor any endpoint's
credentials (an endpoint may not carry any).
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

from failover.config.parse import (
    Interpolated,
    Invalid,
    Section,
    duration,
    integer,
    plain,
    readable_file,
    show,
    string,
)
from failover.config.types import CoordinationConfig, EtcdConfig, EtcdTlsConfig, Secret
from failover.units import format_duration

MIN_LEASE_TTL = 2.0  # the smallest lease etcd grants (measured)
DEFAULT_LEASE_TTL = 10.0
DEFAULT_TIMEOUT = 2.0
TIMEOUT_SHARE = 5  # a request may take at most lease_ttl/5: see `_timeout`
_PREFIX = re.compile(r"(/[A-Za-z0-9._-]+)+")


def etcd_endpoint(value: object) -> str:
    """`http(s)://host:port`, nothing else: no credentials, path or query in the URL."""
    text = plain(string(value)).strip().rstrip("/")
    expected = "expected http://host:port or https://host:port, like http://10.0.0.1:2379"
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        raise Invalid(f"{show(value)} is not a valid URL; {expected}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{show(value)} is not an http(s) URL with a host; {expected}")
    if parts.username is not None or parts.password is not None:
        # never echo it: it holds a credential
        raise Invalid("an endpoint may not carry credentials; use username and password")
    if parts.path or parts.query or parts.fragment:
        raise Invalid(f"{show(value)} has a path or query; {expected}")
    if port is None:
        raise Invalid(f"{show(value)} has no port; {expected} (etcd's client port is 2379)")
    return text


def _prefix(value: object) -> str:
    text = plain(string(value)).strip()
    if not text.startswith("/"):
        raise Invalid(
            f"{show(value)} does not start with '/'; expected a key prefix like /failover"
        )
    trimmed = text.rstrip("/")
    if not _PREFIX.fullmatch(trimmed):
        raise Invalid(
            f"{show(value)} is not a key prefix; expected '/'-separated parts of letters, "
            "digits, '.', '-' and '_', like /failover/prod"
        )
    return trimmed


def _endpoints(sec: Section) -> tuple[str, ...]:
    if sec.raw("endpoints") is None and not sec.broken:
        sec.error(
            "endpoints",
            "missing; expected the client URLs of every etcd member, like "
            "[http://10.0.0.1:2379, http://10.0.0.2:2379, http://10.0.0.3:2379]",
        )
        return ()
    items = sec.items("endpoints", "a list of URLs like [http://10.0.0.1:2379]")
    if not items and sec.raw("endpoints") is not None and not sec.failed("endpoints"):
        sec.error("endpoints", "empty; list the client URL of every etcd member")
    out: list[str] = []
    for path, node in items:
        url = sec.item(path, node, etcd_endpoint)
        if url is not None and url in out:
            sec.errors.append(f"{path}: {url} is listed twice; list each member once")
        elif url is not None:
            out.append(url)
    return tuple(out)


def _lease_ttl(sec: Section) -> float:
    ttl = sec.get("lease_ttl", duration(), DEFAULT_LEASE_TTL)
    if sec.failed("lease_ttl"):
        return DEFAULT_LEASE_TTL
    if ttl < MIN_LEASE_TTL:
        sec.error(
            "lease_ttl",
            f"{format_duration(ttl)} is too short; etcd grants leases of at least 2s: "
            "write 2s or more (10s is a good default)",
        )
        return DEFAULT_LEASE_TTL
    if ttl != int(ttl):
        sec.error(
            "lease_ttl",
            f"{format_duration(ttl)} is not a whole number of seconds; etcd leases count "
            "whole seconds, like 10s",
        )
        return DEFAULT_LEASE_TTL
    return ttl


def _timeout(sec: Section, ttl: float) -> float:
    """At most lease_ttl/5: the leader renews every lease_ttl/3 and stops acting at its lease
    deadline minus a margin, so a request to a hung member must time out early enough to retry
    on another member in between."""
    limit = ttl / TIMEOUT_SHARE
    timeout = sec.opt("timeout", duration())
    if timeout is None:
        return min(DEFAULT_TIMEOUT, limit)
    if timeout > limit:
        sec.error(
            "timeout",
            f"{format_duration(timeout)} is too long for lease_ttl {format_duration(ttl)}: the "
            f"lease is renewed every lease_ttl/3 and a request to a dead member must time out "
            f"in time to try another one; write at most {format_duration(limit)} (lease_ttl/5), "
            "or raise lease_ttl",
        )
    return timeout


def _tls(sec: Section, base_dir: Path | None, endpoints: tuple[str, ...]) -> EtcdTlsConfig | None:
    if sec.raw("tls") is None:
        return None
    t = sec.section("tls")
    file = readable_file(base_dir)
    tls = EtcdTlsConfig(
        ca_file=t.opt("ca_file", file),
        cert_file=t.opt("cert_file", file),
        key_file=t.opt("key_file", file),
    )
    given = [k for k in ("cert_file", "key_file") if t.raw(k) is not None]
    if len(given) == 1:
        missing = "key_file" if given == ["cert_file"] else "cert_file"
        t.error(missing, "missing; a client certificate needs cert_file and key_file together")
    t.done()
    plain_http = [e for e in endpoints if e.startswith("http://")]
    if plain_http and not t.broken:
        sec.error(
            "tls",
            f"set, but {plain_http[0]} is plain http; write https:// endpoints to use TLS",
        )
    return tls


def _auth(sec: Section) -> tuple[str | None, Secret | None]:
    username = sec.opt("username", string)
    raw_password = sec.raw("password")
    password = sec.secret("password", required=False)
    if username is not None and raw_password is None and not sec.failed("password"):
        sec.error("password", "missing; a username needs a password, like ${ETCD_PASSWORD}")
    if raw_password is not None and username is None and not sec.failed("username"):
        sec.error("username", "missing; a password needs the etcd user name it belongs to")
    if password is not None and not isinstance(raw_password, Interpolated):
        sec.error(
            "password",
            "written in clear in the file; write it as ${ENV_VAR} or ${file:/path} so the "
            "file can be shared without the secret",
        )
    return (plain(username) if username is not None else None), password


def parse_coordination(top: Section, base_dir: Path | None) -> CoordinationConfig | None:
    """None when the file has no `coordination:` (the instance runs alone)."""
    if top.raw("coordination") is None:
        return None
    sec = top.section("coordination")
    quorum = sec.opt("quorum", integer(1))
    if sec.raw("etcd") is None:
        if not sec.broken:
            sec.error("etcd", "missing; expected etcd: {endpoints: [http://host:2379, …]}")
        sec.done()
        return None
    e = sec.section("etcd")
    endpoints = _endpoints(e)
    ttl = _lease_ttl(e)
    timeout = _timeout(e, ttl)
    prefix = e.get("prefix", _prefix, "/failover")
    tls = _tls(e, base_dir, endpoints)
    username, password = _auth(e)
    e.done()
    sec.done()
    etcd = EtcdConfig(
        endpoints=endpoints,
        prefix=prefix,
        lease_ttl=ttl,
        timeout=timeout,
        tls=tls,
        username=username,
        password=password,
    )
    return CoordinationConfig(etcd=etcd, quorum=quorum)
