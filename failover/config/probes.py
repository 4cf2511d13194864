"""The `probes:` lists of targets and canaries: a tagged union on `type`, and probe timing.

A new probe kind adds one parser to `PROBE_PARSERS` and one dataclass to `types.py`. Each
parser takes the probe's `Section` and the keys common to every probe (name, interval, timeout,
and the directory relative paths are read from) and returns the typed config. The `dns` and
`tls` kinds are here; `http` and `tcp`, with the TLS client keys they share, in `http_tcp.py`.

`interval` and `timeout` are inherited defaults → service → target → probe, key by key.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from failover.config import http_tcp
from failover.config.common import ProbeCommon, one_of, positive, valid_name
from failover.config.parse import (
    Invalid,
    Section,
    boolean,
    choice,
    dns_name,
    hostport,
    integer,
    kind,
    path_in,
    plain,
    show,
    string,
)
from failover.config.types import DnsProbeConfig, HostPort, ProbeConfig, TlsProbeConfig
from failover.dnsvalues import RCODES, RECORD_TYPES, canonical_answer
from failover.units import format_duration

_TRANSPORTS = ("udp", "tcp")
_MATCHES = ("exact", "contains")


# --- timing, inherited level by level -------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """A probe's interval and timeout, and where each was set (for error messages)."""

    interval: float
    timeout: float
    interval_from: str = "the built-in default"
    timeout_from: str = "the built-in default"
    fast_interval: float | None = None  # off unless set
    fast_from: str = "the built-in default"


def timing(sec: Section, base: Timing) -> Timing:
    """Override interval/timeout key by key; check the pair where it changes, so a bad default
    is reported once at its own path rather than at every probe that inherits it."""
    interval, timeout = sec.opt("interval", positive), sec.opt("timeout", positive)
    fast = sec.opt("fast_interval", positive)
    merged = Timing(
        base.interval if interval is None else interval,
        base.timeout if timeout is None else timeout,
        base.interval_from if interval is None else sec.sub("interval"),
        base.timeout_from if timeout is None else sec.sub("timeout"),
        base.fast_interval if fast is None else fast,
        base.fast_from if fast is None else sec.sub("fast_interval"),
    )
    if (
        merged.fast_interval is not None
        and merged.fast_interval >= merged.interval
        and not sec.failed("interval", "fast_interval")
        and (fast is not None or interval is not None)
    ):
        where = "fast_interval" if fast is not None else "interval"
        sec.error(
            where,
            f"fast_interval {format_duration(merged.fast_interval)} (from {merged.fast_from}) "
            f"is not shorter than the interval {format_duration(merged.interval)} (from "
            f"{merged.interval_from}); fast_interval paces the re-runs while a verdict changes: "
            "make it shorter than the interval, or remove it",
        )
    rule = "a probe's timeout must not exceed its interval"
    if sec.failed("interval", "timeout") or merged.timeout <= merged.interval:
        return merged
    if timeout is not None:
        note = f" (the interval comes from {merged.interval_from})" if interval is None else ""
        sec.error(
            "timeout",
            f"{format_duration(merged.timeout)} exceeds the probe interval "
            f"{format_duration(merged.interval)}; {rule}{note}",
        )
    elif interval is not None:
        sec.error(
            "interval",
            f"{format_duration(merged.interval)} is shorter than the probe timeout "
            f"{format_duration(merged.timeout)}; {rule} (the timeout comes from "
            f"{merged.timeout_from})",
        )
    return merged


def timing_block(parent: Section, base: Timing) -> Timing:
    sec = parent.section("probe")
    merged = timing(sec, base)
    sec.done()
    return merged


# --- dns ------------------------------------------------------------------------------------------


def _upper(options: tuple[str, ...], what: str) -> Callable[[object], str]:
    """One of `options`, written in any case."""

    def conv(value: object) -> str:
        text = string(value).strip().upper()
        if text not in options:
            raise Invalid(f"unknown {what} {show(value)}; expected one of: {', '.join(options)}")
        return text

    return conv


def _answers(p: Section, record_type: str | None) -> tuple[str, ...] | None:
    """Canonical expected answers, sorted; None when the key is absent."""
    if p.raw("expect_answers") is None:
        return None
    items = p.items("expect_answers", f"a list of {record_type or 'record'} values")
    if p.failed("expect_answers"):
        return None
    out: list[str] = []
    for path, node in items:
        if not isinstance(node, str):
            p.errors.append(f"{path}: expected a string, got {kind(node)}; quote it")
            continue
        if record_type is None:
            continue  # the type was refused: its values cannot be judged
        try:
            value = canonical_answer(record_type, node)
        except ValueError as exc:
            p.errors.append(
                f"{path}: {show(node)} is not a valid {record_type} value "
                f"({str(exc).rstrip('.').lower()}); "
                f"expected {_EXAMPLES.get(record_type, 'the value as in a zone file')}"
            )
            continue
        if value in out:
            p.errors.append(f"{path}: {show(node)} is listed twice; list each answer once")
            continue
        out.append(value)
    return tuple(sorted(out))


_EXAMPLES = {
    "A": "an IPv4 address like 192.0.2.1",
    "AAAA": "an IPv6 address like 2001:db8::1",
    "CNAME": "a host name like web.example.com",
    "NS": "a host name like ns1.example.com",
    "PTR": "a host name like host.example.com",
    "MX": "a preference and a host, like '10 mail.example.com'",
    "SRV": "priority, weight, port and host, like '10 5 443 web.example.com'",
    "SOA": "the SOA fields, like 'ns1.example.com hostmaster.example.com 1 3600 600 604800 60'",
}


def dns(p: Section, c: ProbeCommon) -> DnsProbeConfig:
    query_name = p.need(
        "query_name",
        dns_name(wildcard=True),
        "the name to ask for, like shop.example.com (`name` names the probe)",
    )
    record_type = p.get("record_type", _upper(RECORD_TYPES, "record type"), "A")
    server = p.need(
        "server",
        hostport(default_port=53),
        "the DNS server to ask, host or host:port (port 53 by default), like 192.0.2.53",
    )
    transport = p.get("transport", choice(_TRANSPORTS, "transport"), "udp")
    rcode = p.get("expect_rcode", _upper(RCODES, "rcode"), "NOERROR")
    answers = _answers(p, None if p.failed("record_type") else record_type)
    match = p.get("expect_match", choice(_MATCHES, "match"), "exact")
    if p.present("expect_match") and p.raw("expect_answers") is None:
        p.error("expect_match", "set without expect_answers; add the answers to match")
    if answers is not None and rcode != "NOERROR" and not p.failed("expect_rcode"):
        p.error(
            "expect_answers",
            f"set with expect_rcode {rcode}; answers are only checked with NOERROR",
        )
    if answers == () and match == "contains" and not p.failed("expect_answers"):
        p.error("expect_answers", "empty with expect_match contains, which checks nothing")
    return DnsProbeConfig(
        name=c.name,
        query_name=plain(query_name or ""),
        server=server or HostPort("", 53),
        interval=c.interval,
        timeout=c.timeout,
        fast_interval=c.fast_interval,
        record_type=record_type,
        transport="tcp" if transport == "tcp" else "udp",
        recursion_desired=p.get("recursion_desired", boolean, False),
        expect_rcode=rcode,
        expect_answers=answers,
        expect_match="contains" if match == "contains" else "exact",
    )


def tls(p: Section, c: ProbeCommon) -> TlsProbeConfig:
    address = p.need("address", hostport(), "host:port, like 203.0.113.10:443")
    server_name = p.opt("server_name", dns_name())
    verify = p.get("verify", boolean, True)
    ca_file = p.opt("ca_file", path_in(c.base_dir))
    if ca_file is not None and not verify:
        p.error("ca_file", "set while verify is false; the CA file only serves chain verification")
    elif ca_file is not None:
        try:
            ssl.create_default_context(cafile=ca_file)
        except ssl.SSLError as exc:
            why = str(exc.reason or exc).lower().replace("_", " ")
            p.error("ca_file", f"cannot load {ca_file} ({why}); expected a PEM file of CA certs")
        except OSError as exc:
            why = exc.strerror or str(exc)
            p.error("ca_file", f"cannot load {ca_file} ({why}); expected a PEM file of CA certs")
    return TlsProbeConfig(
        name=c.name,
        address=address or HostPort("", 0),
        interval=c.interval,
        timeout=c.timeout,
        fast_interval=c.fast_interval,
        server_name=None if server_name is None else plain(server_name),
        verify=verify,
        ca_file=ca_file,
        warn_days=p.get("warn_days", integer(0), 14),
    )


# --- the list -------------------------------------------------------------------------------------


ProbeParser = Callable[[Section, ProbeCommon], ProbeConfig]
PROBE_PARSERS: dict[str, ProbeParser] = {
    "http": http_tcp.http,
    "tcp": http_tcp.tcp,
    "dns": dns,
    "tls": tls,
}


def parse_probes(t: Section, base: Timing, base_dir: Path | None = None) -> tuple[ProbeConfig, ...]:
    """Each probe, named by its type when alone of it, else `type-N`; names unique per target."""
    items = t.items("probes", "a list of probes")
    types = [node.get("type") if isinstance(node, dict) else None for _, node in items]
    out: list[ProbeConfig] = []
    names: set[str] = set()
    for i, (path, node) in enumerate(items):
        p = Section.open(t.errors, node, path)
        if p is None:
            continue
        ptype = p.need("type", choice(PROBE_PARSERS, "probe type"), one_of(PROBE_PARSERS))
        own = timing(p, base)
        if ptype is None:
            continue  # its other keys cannot be judged without a known type
        same = [j for j, other in enumerate(types) if other == ptype]
        default = ptype if len(same) == 1 else f"{ptype}-{same.index(i) + 1}"
        name = p.get("name", valid_name, default)
        if name in names:
            where = "name" if p.present("name") else None
            p.error(where, f"probe name {show(name)} is used twice in this target; name each probe")
        names.add(name)
        common = ProbeCommon(plain(name), own.interval, own.timeout, base_dir, own.fast_interval)
        out.append(PROBE_PARSERS[ptype](p, common))
        p.done()
    return tuple(out)
