"""Parsers and `check-config` summaries of the `dns` and `tls` probe sections.

Each parser takes the probe's `Section` and the keys common to every probe (name, interval,
timeout, and the directory relative paths are read from) and returns the typed config.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

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
from failover.config.types import DnsProbeConfig, HostPort, TlsProbeConfig
from failover.probes.dns import RCODES, RECORD_TYPES, canonical_answer

if TYPE_CHECKING:
    from failover.config.loader import ProbeCommon

_TRANSPORTS = ("udp", "tcp")
_MATCHES = ("exact", "contains")


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
        server_name=None if server_name is None else plain(server_name),
        verify=verify,
        ca_file=ca_file,
        warn_days=p.get("warn_days", integer(0), 14),
    )


def describe_dns(p: DnsProbeConfig) -> str:
    how = p.transport + (", recursion desired" if p.recursion_desired else "")
    expect = p.expect_rcode
    if p.expect_answers is not None:
        listed = ", ".join(p.expect_answers[:4]) + (", …" if len(p.expect_answers) > 4 else "")
        how_many = "including" if p.expect_match == "contains" else "exactly"
        expect += f", answers {how_many} [{listed}]"
    return f"ask {p.server} ({how}) for {p.query_name} {p.record_type}, expect {expect}"


def describe_tls(p: TlsProbeConfig) -> str:
    sni = f" as {p.server_name}" if p.server_name else ""
    if not p.verify:
        chain = "chain not verified"
    else:
        chain = f"chain verified against {p.ca_file or 'the system trust store'}"
    return f"TLS handshake with {p.address}{sni}, {chain}, fail under {p.warn_days} days left"
