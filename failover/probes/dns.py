"""DNS probe: ask one server one question; expect an rcode and, optionally, the answers.

Meant for authoritative servers (recursion is not requested by default), such as the servers of
a target's own zone. Every run uses a fresh socket. Over UDP the socket is connected, so a closed
port is reported at once (`port unreachable`) instead of waiting for the deadline; a truncated
UDP answer is asked again over TCP. Queries carry EDNS(0) with a 1232-byte payload.

The answers compared are the RRset of the queried type reached from the query name (following
CNAMEs in the answer section), canonicalized as `canonical_answer` does, as a set: `exact`
wants the same set, `contains` wants every expected value among the answers.

Timings, in seconds: `resolve` (only when the server is given by name), `query` (the exchange,
including a TCP retry) and `total`. Detail: `rcode`, `aa` (1 when the answer is authoritative),
`transport` (the one that produced the answer) and `answers` (how many values).
"""

from __future__ import annotations

import asyncio
import socket

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.txtbase
import dns.rrset

from failover.config.types import DnsProbeConfig, HostPort
from failover.dnsvalues import canonical_rdata
from failover.model import ProbeResult
from failover.probes.base import ProbeContext
from failover.probes.net import is_ip, os_error_reason

EDNS_PAYLOAD = 1232
_SHOWN = 8  # at most this many values are quoted in a reason


def answers_of(spec: DnsProbeConfig, response: dns.message.Message) -> list[str]:
    """Canonical, sorted values of the RRset of the queried type, following CNAMEs from the
    query name (any RRset of the type when the chain cannot be followed)."""
    rdtype = dns.rdatatype.from_text(spec.record_type)
    rrset: dns.rrset.RRset | None
    try:
        if not isinstance(response, dns.message.QueryMessage):
            raise dns.message.NotQueryResponse
        rrset = response.resolve_chaining().answer
    except dns.exception.DNSException:  # a broken chain (too long, a loop)
        rrset = next((rr for rr in response.answer if rr.rdtype == rdtype), None)
    return sorted({canonical_rdata(rdata) for rdata in rrset or ()})


def _shown(values: list[str]) -> str:
    head = ", ".join(values[:_SHOWN])
    more = f", … {len(values) - _SHOWN} more" if len(values) > _SHOWN else ""
    return f"[{head}{more}]"


def verdict(spec: DnsProbeConfig, rcode: str, answers: list[str]) -> tuple[bool, str]:
    """Judge a response's rcode and canonical answers against the expectations of `spec`."""
    if rcode != spec.expect_rcode:
        return False, f"rcode {rcode}, expected {spec.expect_rcode}"
    if spec.expect_answers is not None:
        expected = sorted(spec.expect_answers)
        if spec.expect_match == "contains":
            missing = sorted(set(expected) - set(answers))
            if missing:
                return False, f"answers {_shown(answers)} lack expected {_shown(missing)}"
        elif answers != expected:
            return False, f"answers {_shown(answers)} != expected {_shown(expected)}"
    return True, f"rcode {rcode}, answers {_shown(answers)}"


def make_query(spec: DnsProbeConfig) -> dns.message.Message:
    query = dns.message.make_query(
        spec.query_name, spec.record_type, use_edns=0, payload=EDNS_PAYLOAD
    )
    if not spec.recursion_desired:
        query.flags &= ~dns.flags.RD
    return query


async def _address(server: HostPort) -> str:
    """The server's IP address; a host name is resolved (first address returned)."""
    if is_ip(server.host):
        return server.host
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(server.host, server.port, type=socket.SOCK_DGRAM)
    return str(infos[0][4][0])


async def _exchange(
    spec: DnsProbeConfig, query: dns.message.Message, where: str
) -> tuple[dns.message.Message, str]:
    """Send the query; return the response and the transport that carried it."""
    port = spec.server.port
    if spec.transport == "tcp":
        return await dns.asyncquery.tcp(query, where, port=port), "tcp"
    backend = dns.asyncbackend.get_default_backend()
    family = socket.AF_INET6 if ":" in where else socket.AF_INET
    # Connected: the kernel drops datagrams from other sources and reports ICMP errors.
    sock = await backend.make_socket(  # type: ignore[no-untyped-call]
        family, socket.SOCK_DGRAM, 0, None, (where, port)
    )
    async with sock:
        response, used_tcp = await dns.asyncquery.udp_with_fallback(
            query, where, port=port, udp_sock=sock
        )
    return response, "tcp" if used_tcp else "udp"


def _error_reason(exc: Exception, transport: str) -> str:
    if isinstance(exc, ConnectionRefusedError):
        # Nothing listens there: an ICMP port unreachable (UDP), a reset (TCP).
        return "port unreachable" if transport == "udp" else "connect refused"
    if isinstance(exc, OSError):
        return os_error_reason(exc)
    if isinstance(exc, EOFError):
        return "connection closed"
    if isinstance(exc, dns.exception.Timeout):
        return "timed out"
    if isinstance(exc, dns.exception.DNSException):
        return f"bad response: {exc}"
    return f"{type(exc).__name__}: {exc}"


async def probe(spec: DnsProbeConfig, ctx: ProbeContext) -> ProbeResult:
    """One query to `spec.server`; ok when the rcode (and answers, if given) are as expected."""
    run = ctx.run
    run.start("resolve" if not is_ip(spec.server.host) else "query")
    try:
        query = make_query(spec)
        where = await _address(spec.server)
        run.enter("query")
        response, used = await _exchange(spec, query, where)
        run.enter(None)
        rcode = dns.rcode.to_text(response.rcode())
        answers = answers_of(spec, response)
        aa = 1 if response.flags & dns.flags.AA else 0
        run.detail.update(rcode=rcode, aa=aa, transport=used, answers=len(answers))
        ok, reason = verdict(spec, rcode, answers)
    except socket.gaierror as exc:
        ok, reason = False, f"cannot resolve server {spec.server.host}: {os_error_reason(exc)}"
    except Exception as exc:  # a probe reports, it never raises (CancelledError passes)
        why = _error_reason(exc, spec.transport)
        ok, reason = False, f"no answer from {spec.server} ({spec.transport}): {why}"
    total = run.finish()
    return ProbeResult(ok, reason[:300], total, dict(run.timings), dict(run.detail))
