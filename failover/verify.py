"""Proof that a DNS change is live: every authoritative server of the zone serves the new answer.

A provider saying "done" (or even INSYNC) is not what clients see. We ask each authoritative
server directly, non-recursively, and accept only an authoritative (AA) answer whose RRset
equals the expected values, so that no cache or resolver can make a stale answer look fresh.
Network trouble never raises: it becomes the reason of that server's answer, because a failed
verification must be reported and alarmed, not crash the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from failover.config.types import HostPort, VerifyConfig
from failover.model import RecordType, canonical_values, normalize_name

log = logging.getLogger(__name__)

_UDP_PAYLOAD = 1232  # DNS flag day 2020: large answers come back truncated, then over TCP
_MAX_IN_FLIGHT = 128  # a mass failover must not open thousands of sockets at once


@dataclass(frozen=True)
class Expectation:
    """One RRset that must be served; empty `values` means the RRset must be absent."""

    zone: str
    name: str
    type: RecordType
    values: tuple[str, ...]
    ttl: int | None = None


@dataclass(frozen=True)
class ServerAnswer:
    """The last verdict on one (server, expectation) pair, with the reason a human reads."""

    server: str  # "host:port"
    ok: bool
    reason: str
    record: str = ""  # "www.example.com A": which expectation this answers


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    elapsed: float  # seconds from start until all matched, or until the deadline
    answers: tuple[ServerAnswer, ...]
    reason: str


@dataclass(frozen=True)
class _Want:
    """An Expectation in the form compared against answers (canonical values, wire name)."""

    qname: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    type: RecordType
    values: tuple[str, ...]
    ttl: int | None
    label: str

    @classmethod
    def of(cls, e: Expectation) -> _Want:
        name = normalize_name(e.name)
        rdtype = dns.rdatatype.RdataType.make(e.type.value)
        values = canonical_values(e.type, e.values)
        return cls(dns.name.from_text(name), rdtype, e.type, values, e.ttl, f"{name} {e.type}")


def _judge(want: _Want, response: dns.message.Message) -> tuple[bool, str]:
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return False, dns.rcode.to_text(rcode)
    if not response.flags & dns.flags.AA:
        return False, "not authoritative (AA clear)"
    expected = ", ".join(want.values) or "absent"
    answer, qname, klass = response.answer, want.qname, dns.rdataclass.IN
    rrset = response.get_rrset(answer, qname, klass, want.rdtype)
    if rrset is None and want.rdtype != dns.rdatatype.CNAME:
        rrset = response.get_rrset(answer, qname, klass, dns.rdatatype.CNAME)
        if rrset is not None:  # the name is an alias: that is what clients get instead
            return False, f"serves CNAME {rrset[0].target} (expected {expected})"
    if rrset is None:
        return (True, "ok") if not want.values else (False, "record absent")
    try:
        served = canonical_values(want.type, (rdata.to_text() for rdata in rrset))
    except ValueError as exc:
        return False, f"serves an unusable value: {exc}"
    if served != want.values:
        return False, f"serves {', '.join(served)} (expected {expected})"
    if want.ttl is not None and rrset.ttl != want.ttl:
        return False, f"serves TTL {rrset.ttl} (expected {want.ttl})"
    return True, "ok"


async def _query(address: str, port: int, want: _Want, budget: float) -> tuple[bool, str]:
    """One non-recursive question, UDP then TCP if truncated; every failure is a reason."""
    query = dns.message.make_query(want.qname, want.rdtype, use_edns=0, payload=_UDP_PAYLOAD)
    query.flags &= ~dns.flags.RD
    try:
        async with asyncio.timeout(budget):
            response, _ = await dns.asyncquery.udp_with_fallback(
                query, address, timeout=budget, port=port
            )
    except (TimeoutError, dns.exception.Timeout):
        return False, "timeout"
    except ConnectionRefusedError:
        return False, "connection refused"
    except OSError as exc:
        return False, (exc.strerror or str(exc)).lower()
    except Exception as exc:  # malformed or unexpected replies: a reason, never a crash
        return False, f"bad response: {str(exc) or type(exc).__name__}"
    return _judge(want, response)


async def _address(host: str, port: int, budget: float) -> str:
    """An IP literal for dnspython, which does not resolve host names itself."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host))
    async with asyncio.timeout(budget):
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    return str(infos[0][4][0])


async def verify(
    expectations: Sequence[Expectation],
    nameservers: Sequence[HostPort],
    *,
    timeout: float,
    interval: float = 0.25,
    query_timeout: float = 2.0,
) -> VerifyResult:
    """Poll every (server, expectation) pair until all match or `timeout` seconds pass.

    Pairs that matched are not asked again. Raises ValueError only for bad arguments
    (non-positive timeout or interval, values that do not fit their type).
    """
    if timeout <= 0 or interval <= 0 or query_timeout <= 0:
        raise ValueError("timeout, interval and query_timeout must be positive")
    wants = [_Want.of(e) for e in expectations]
    servers = list(dict.fromkeys(nameservers))
    if not wants:
        return VerifyResult(True, 0.0, (), "nothing to verify")
    if not servers:
        return VerifyResult(False, 0.0, (), "no authoritative server to verify on")
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + timeout
    slots = asyncio.Semaphore(_MAX_IN_FLIGHT)

    async def ask(address: str, port: int, want: _Want) -> tuple[bool, str, float] | None:
        """(ok, reason, when), or None: no verdict in the time left, keep the previous one."""
        async with slots:
            budget = min(query_timeout, deadline - loop.time())
            if budget <= 0:
                return None
            ok, reason = await _query(address, port, want, budget)
        return None if reason == "timeout" and budget < query_timeout else (ok, reason, loop.time())

    async def poll(server: HostPort) -> list[tuple[ServerAnswer, float | None]]:
        last = {i: (False, "timeout") for i in range(len(wants))}
        matched: dict[int, float] = {}
        address: str | None = None
        while True:
            started = loop.time()
            pending = [i for i in range(len(wants)) if i not in matched]
            if address is None:
                try:
                    address = await _address(server.host, server.port, deadline - started)
                except OSError as exc:  # TimeoutError and socket.gaierror included
                    reason = f"cannot resolve {server.host}: {exc.strerror or 'timeout'}"
                    last.update({i: (False, reason) for i in pending})
            if address is not None:
                asks = (ask(address, server.port, wants[i]) for i in pending)
                for i, verdict in zip(pending, await asyncio.gather(*asks), strict=True):
                    if verdict is not None:
                        last[i] = verdict[:2]
                        if verdict[0]:
                            matched[i] = verdict[2]
            now = loop.time()
            if len(matched) == len(wants) or max(now, started + interval) >= deadline:
                break
            await asyncio.sleep(max(0.0, started + interval - now))
        return [
            (ServerAnswer(str(server), *last[i], wants[i].label), matched.get(i))
            for i in range(len(wants))
        ]

    polled = await asyncio.gather(*(poll(server) for server in servers))
    pairs = [pair for per_server in polled for pair in per_server]
    answers = tuple(answer for answer, _ in pairs)
    failed = [answer for answer in answers if not answer.ok]
    if not failed:
        elapsed = max(at for _, at in pairs if at is not None) - start
        return VerifyResult(True, elapsed, answers, _verified(len(servers), elapsed))
    return VerifyResult(False, loop.time() - start, answers, _failure(failed, timeout, len(wants)))


def _verified(servers: int, elapsed: float) -> str:
    return f"verified on {servers} server{'s' if servers != 1 else ''} in {elapsed:.1f}s"


def _failure(failed: list[ServerAnswer], timeout: float, records: int) -> str:
    first = failed[0]
    what = f"still {first.reason}" if first.reason.startswith("serves") else first.reason
    text = f"{first.server} {what}"
    if records > 1:
        text += f" for {first.record}"
    text += f" after {round(timeout, 1):g}s"
    if len(failed) > 1:
        text += f" ({len(failed) - 1} more not in sync)"
    return text


def _routable(address: str) -> bool:
    """Whether this host has a route to `address`: an IPv4-only host must not wait on IPv6."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((address, 53))  # a route lookup; UDP connect sends nothing
    except OSError:
        return False
    return True


async def zone_nameservers(
    zone: str, *, resolver: dns.asyncresolver.Resolver | None = None
) -> list[HostPort]:
    """The zone's NS set resolved to addresses (port 53), in name order.

    Raises dns.exception.DNSException when a lookup fails and LookupError when no address is
    left: verifying on fewer servers than the zone has would prove less than it claims.
    Addresses this host has no route to are left out (and logged).
    """
    res = resolver or dns.asyncresolver.get_default_resolver()
    origin = dns.name.from_text(normalize_name(zone))
    hosts = sorted({rdata.target for rdata in await res.resolve(origin, "NS", search=False)})

    async def addresses(host: dns.name.Name) -> list[str]:
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await res.resolve(host, rdtype, search=False)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            found.extend(str(rdata.address) for rdata in answer)
        return found

    usable: list[str] = []
    for host, found in zip(hosts, await asyncio.gather(*map(addresses, hosts)), strict=True):
        usable.extend(address for address in found if _routable(address))
        if skipped := sorted(set(found) - set(usable)):
            log.warning("nameserver %s of %s: no route to %s, skipped", host, zone, skipped)
    if not usable:
        raise LookupError(f"no reachable address for the nameservers of {normalize_name(zone)}")
    return [HostPort(address, 53) for address in dict.fromkeys(usable)]


async def verify_change(
    expectations: Sequence[Expectation],
    config: VerifyConfig,
    *,
    timeout: float | None = None,
    resolver: dns.asyncresolver.Resolver | None = None,
) -> VerifyResult:
    """Verify on `config.nameservers`, or per zone on the zone's NS set, within one deadline.

    Zones are verified concurrently, so a slow zone does not delay the others' verdicts.
    """
    if not config.enabled:
        return VerifyResult(True, 0.0, (), "verification disabled")
    if not expectations:
        return VerifyResult(True, 0.0, (), "nothing to verify")
    budget = config.timeout if timeout is None else timeout
    loop = asyncio.get_running_loop()
    start = loop.time()
    groups: dict[str, list[Expectation]] = {}
    for e in expectations:
        groups.setdefault("" if config.nameservers else normalize_name(e.zone), []).append(e)

    async def one(zone: str, group: list[Expectation]) -> VerifyResult:
        servers: Sequence[HostPort] = config.nameservers
        if not servers:
            try:
                async with asyncio.timeout(budget):
                    servers = await zone_nameservers(zone, resolver=resolver)
            except (dns.exception.DNSException, LookupError, OSError) as exc:
                reason = f"cannot find the nameservers of {zone}: {str(exc) or 'timeout'}"
                return VerifyResult(False, loop.time() - start, (), reason)
        offset = loop.time() - start
        if offset >= budget:
            return VerifyResult(False, offset, (), f"no time left to verify {zone}")
        result = await verify(group, servers, timeout=budget - offset)
        return replace(result, elapsed=offset + result.elapsed)

    results = await asyncio.gather(*(one(zone, group) for zone, group in groups.items()))
    answers = tuple(answer for result in results for answer in result.answers)
    elapsed = max(result.elapsed for result in results)
    if all(result.ok for result in results):
        servers = len({answer.server for answer in answers})
        return VerifyResult(True, elapsed, answers, _verified(servers, elapsed))
    reason = "; ".join(result.reason for result in results if not result.ok)
    return VerifyResult(False, elapsed, answers, reason)
