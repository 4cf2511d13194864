"""The summary `failover check-config` prints: what the daemon will do, in operator words.

Reads only the typed `Config`, never the YAML: it shows no secret (`Secret`s print as `***`),
no URL credentials or query strings, and of a webhook only its scheme and host.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import fields, is_dataclass
from pathlib import Path

from failover.config.notifications import EVENTS, safe_origin
from failover.config.types import (
    Config,
    CoordinationConfig,
    DnsProbeConfig,
    HttpProbeConfig,
    NotificationConfig,
    ProbeConfig,
    ProviderConfig,
    Secret,
    TcpProbeConfig,
    TlsProbeConfig,
)
from failover.plugins import ProviderPlugin, discover
from failover.units import format_duration, format_size

__all__ = ["describe"]


def _safe_url(url: str) -> str:
    """The URL without credentials or query string: both commonly carry tokens."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, "…" if parts.query else "", "")
    )


def _probe(p: ProbeConfig) -> str:
    every = f"every {format_duration(p.interval)}, timeout {format_duration(p.timeout)}"
    if p.fast_interval is not None:
        every += f", {format_duration(p.fast_interval)} while changing"
    if isinstance(p, HttpProbeConfig):
        extra = f" (Host: {p.host})" if p.host else ""
        extra += "" if p.verify_tls else " (TLS not verified)"
        statuses = ",".join(map(str, p.expect_status))
        more = _http_details(p)
        return f"{p.name}: {p.method} {_safe_url(p.url)}{extra} expect {statuses}{more}; {every}"
    if isinstance(p, DnsProbeConfig):
        return f"{p.name}: {_dns(p)}; {every}"
    if isinstance(p, TlsProbeConfig):
        return f"{p.name}: {_tls(p)}; {every}"
    return f"{p.name}: {_tcp(p)}; {every}"


def _value(name: str, value: object) -> str | None:
    """A provider setting as the README writes it: durations as `2m`, lists comma-separated,
    nested settings (tsig) as `key value` pairs; secrets `***`; None when there is nothing
    to say (an empty mapping)."""
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and (name.endswith("timeout") or name.endswith("interval")):
        return format_duration(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(k, v)}" for k, v in value.items()) or None
    if isinstance(value, frozenset):
        return ", ".join(sorted(map(str, value))) or None
    if isinstance(value, tuple | list):
        return ", ".join(str(_value(name, v)) for v in value) or None
    if is_dataclass(value) and not isinstance(value, type):
        parts = [
            f"{f.name} {text}"
            for f in fields(value)
            if (text := _value(f.name, getattr(value, f.name))) is not None
        ]
        return f"({', '.join(parts)})"
    return str(value)


def _provider(p: ProviderConfig, plugins: dict[str, ProviderPlugin]) -> str:
    """Generic over provider dataclasses, so a new provider is described without edits here;
    secrets print as `***` because they are `Secret`s. Each names where its type comes from
    (built-in, or the plugin package and version)."""
    common = {"name", "type", "location", "timeout", "verify", "retry"}
    details = [
        f"{f.name} {text}"
        for f in fields(p)
        if f.name not in common
        and (value := getattr(p, f.name)) is not None
        and (text := _value(f.name, value)) is not None
    ]
    check = p.verify
    servers = ", ".join(map(str, check.nameservers)) or "the zone's NS set"
    verify = f"{servers} within {format_duration(check.timeout)}" if check.enabled else "off"
    if check.enabled and check.method == "api":
        verify = f"through the API only, within {format_duration(check.timeout)}"
    where = f" in {p.location}" if p.location else ""
    found = plugins.get(p.type)
    origin = f" ({found.origin})" if found is not None else " (not installed)"
    head = ", ".join(
        [f"{p.type}{origin}{where}", *details, f"timeout {format_duration(p.timeout)}"]
    )
    return f"  {p.name}: {head}; verify: {verify}"


def describe(config: Config) -> str:
    """The summary `failover check-config` prints. It shows no secret and no URL credentials."""
    i, a, m = config.instance, config.admin, config.metrics
    plugins = discover()[0]
    lines = [
        f"instance {i.name}"
        + (f" in {i.location}" if i.location else "")
        + f", state {i.state_dir}",
        f"admin socket {a.socket}" + (f", TCP {a.listen}" if a.listen else ""),
        f"metrics {'on ' + str(m.listen) if m.listen else 'disabled'}",
        *_coordination(config.coordination),
        f"providers ({len(config.providers)}):",
        *(_provider(p, plugins) for _, p in sorted(config.providers.items())),
        f"services ({len(config.services)}):",
    ]
    for svc in config.services.values():
        pol = svc.policy
        lines += [f"  {svc.name}:", "    records:"]
        lines += [
            f"      {r.name} {r.type} ttl {r.ttl} at {r.provider} (zone {r.zone})"
            for r in svc.records
        ]
        lines.append("    targets (priority order):")
        for n, t in enumerate(svc.targets, 1):
            role = " (primary)" if n == 1 else ""
            lines.append(
                f"      {n}. {t.name}{role} [{t.location or 'no location'}] "
                f"{', '.join(t.values)}; fall {t.health.fall}, rise {t.health.rise}"
            )
            if t.pool is not None:
                lines.append(
                    f"         pool: publishes the UP values; UP while at least "
                    f"{t.pool.min_up} of {len(t.values)} are UP (probes run once per value)"
                )
            lines += [f"         probe {_probe(p)}" for p in t.probes]
            if not t.probes:
                lines.append("         no probes")
        lines.append(
            f"    policy: failback {pol.failback} after {format_duration(pol.failback_after)}, "
            f"cooldown {format_duration(pol.cooldown)}, at most {pol.max_auto_switches} "
            f"automatic switches per {format_duration(pol.flap_window)}, start-up grace "
            f"{format_duration(pol.startup_grace)}"
        )
        if svc.fallback is not None or pol.all_down != "hold":
            fb = svc.fallback
            shown = ", ".join(fb.values) if fb is not None else "(none)"
            lines.append(f"    all targets down: {pol.all_down}; fallback {shown}")
            if fb is not None:
                lines += [f"      fallback probe {_probe(p)}" for p in fb.probes]
        if svc.rto is not None:
            lines.append(f"    recovery time objective (rto): {format_duration(svc.rto)}")
    lines += _notifications(config.notifications)
    return "\n".join(lines)


# --- probe kinds ----------------------------------------------------------------------------------


def _tls_summary(verify: bool, ca_file: Path | None, cert: Path | None, version: str | None) -> str:
    out = f"verified against {ca_file}" if ca_file else "verified" if verify else "not verified"
    out += ", client certificate" if cert else ""
    out += f", TLS {version}+" if version else ""
    return out


def _http_details(p: HttpProbeConfig) -> str:
    """What `check-config` adds after `expect STATUSES` (empty for the defaults)."""
    out = ""
    if p.body_regex is not None:
        out += f", body matches {p.body_regex!r} in first {format_size(p.body_limit)}"
    if p.follow_redirects:
        out += f", follows up to {p.max_redirects} redirects"
    https = p.url.lower().startswith("https:") or p.follow_redirects
    if https and (p.ca_file or p.client_cert or p.tls_min_version or p.tls_server_name):
        sni = f" as {p.tls_server_name}" if p.tls_server_name else ""
        summary = _tls_summary(p.verify_tls, p.ca_file, p.client_cert, p.tls_min_version)
        out += f", TLS{sni} {summary}"
    return out


def _tcp(p: TcpProbeConfig) -> str:
    """`connect ADDRESS` and what else the probe does."""
    out = f"connect {p.address}"
    if p.tls:
        sni = f" as {p.tls_server_name}" if p.tls_server_name else ""
        summary = _tls_summary(p.verify_tls, p.ca_file, p.client_cert, p.tls_min_version)
        out += f", TLS{sni} {summary}"
    if p.send is not None:
        out += f", send {len(p.send)} bytes"
    if p.expect is not None:
        out += f", expect {p.expect!r} in first {format_size(p.expect_bytes)}"
    return out


def _dns(p: DnsProbeConfig) -> str:
    how = p.transport + (", recursion desired" if p.recursion_desired else "")
    expect = p.expect_rcode
    if p.expect_answers is not None:
        listed = ", ".join(p.expect_answers[:4]) + (", …" if len(p.expect_answers) > 4 else "")
        how_many = "including" if p.expect_match == "contains" else "exactly"
        expect += f", answers {how_many} [{listed}]"
    return f"ask {p.server} ({how}) for {p.query_name} {p.record_type}, expect {expect}"


def _tls(p: TlsProbeConfig) -> str:
    sni = f" as {p.server_name}" if p.server_name else ""
    if not p.verify:
        chain = "chain not verified"
    else:
        chain = f"chain verified against {p.ca_file or 'the system trust store'}"
    return f"TLS handshake with {p.address}{sni}, {chain}, fail under {p.warn_days} days left"


def _coordination(c: CoordinationConfig | None) -> list[str]:
    """Where the leader is elected; of the credentials, only the user name."""
    if c is None:
        return ["coordination: none (this instance decides alone)"]
    e = c.etcd
    quorum = f"{c.quorum} views" if c.quorum else "a majority of the live instances"
    extras = [f"timeout {format_duration(e.timeout)}"]
    if e.tls is not None:
        extras.append(
            "TLS"
            + (f" verified against {e.tls.ca_file}" if e.tls.ca_file else "")
            + (", client certificate" if e.tls.cert_file else "")
        )
    if e.username is not None:
        extras.append(f"user {e.username}")
    return [
        f"coordination: etcd ({len(e.endpoints)} endpoints: {', '.join(e.endpoints)})",
        f"  prefix {e.prefix}, lease ttl {format_duration(e.lease_ttl)}, {', '.join(extras)}",
        f"  quorum: {quorum} must agree before a target counts DOWN or UP",
    ]


def _notifications(destinations: tuple[NotificationConfig, ...]) -> list[str]:
    """check-config lines; a URL shows only its scheme and host."""
    lines = [f"notifications ({len(destinations)}):"] if destinations else []
    for d in destinations:
        where = safe_origin(d.url.reveal())
        where += "/…" if "://" in where else ""
        chosen = [e for e in EVENTS if d.events is None or e in d.events]
        events = "all events" if d.events is None else ", ".join(chosen)
        lines.append(
            f"  {d.name}: {d.type} {d.format} to {where}; {events}; "
            f"timeout {format_duration(d.timeout)}, {d.retry.attempts} attempts within "
            f"{format_duration(d.retry.deadline)}"
        )
    return lines
