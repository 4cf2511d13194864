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
import random
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
from failover.slicing import Slicer

log = logging.getLogger(__name__)

_UDP_PAYLOAD = 1232  # DNS flag day 2020: large answers come back truncated, then over TCP
_WINDOW = 100  # queries in flight per server: more overflow a server's socket (BIND: ~200)
_RESEND = 0.2  # seconds without any answer before the questions in flight are sent again
_IDS = 60000  # queries per socket: the 16-bit message id must stay unique on it


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


Verdict = tuple[bool, str, float]  # ok, reason, when (loop time)


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


class _Batch:
    """Many questions to one server over ONE UDP socket, a sliding window of them in flight.

    Why: a mass failover verifies thousands of names; one socket and one coroutine per name
    cost more CPU than the answers themselves. Every answer waiting on the socket is read at
    each turn of the loop (asyncio's datagram transport reads one per turn, which a loop busy
    with probes turns into seconds). Answers are matched by message id and question
    (`is_response`), so a stray datagram is ignored, never judged. A truncated answer is left
    for `_query` (TCP). A datagram can be lost (an overflowing socket drops silently): after
    `_RESEND` seconds without any answer, the questions in flight go out again, same ids.
    """

    def __init__(self, sock: socket.socket, wants: Sequence[_Want]) -> None:
        self.sock = sock
        self.wants = wants
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.verdicts: dict[int, Verdict] = {}
        self.truncated: list[int] = []
        self.error = ""
        self._queries: dict[int, tuple[int, dns.message.Message, bytes]] = {}  # by id
        self._next = 0
        self._base = random.randrange(0x10000)
        self._heard = 0.0  # loop time of the last answer (or of the first question)
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.sock.fileno(), self._readable)
        for _ in range(min(_WINDOW, len(self.wants))):
            self._send_next()
        self._heard = loop.time()
        self._timer = loop.call_later(_RESEND, self._resend)
        self._maybe_done()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()

    def _send(self, wire: bytes) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):  # lost: `_resend`
            self.sock.send(wire)

    def _send_next(self) -> None:
        if self._next >= len(self.wants):
            return
        index = self._next
        self._next += 1
        want = self.wants[index]
        query = dns.message.make_query(want.qname, want.rdtype, use_edns=0, payload=_UDP_PAYLOAD)
        query.flags &= ~dns.flags.RD
        query.id = (self._base + index) & 0xFFFF
        wire = query.to_wire()
        self._queries[query.id] = (index, query, wire)
        self._send(wire)

    def _resend(self) -> None:
        if self.done.done():
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._heard >= _RESEND:
            for _, _, wire in list(self._queries.values()):
                self._send(wire)
            self._heard = loop.time()
        self._timer = loop.call_later(_RESEND, self._resend)

    def _readable(self) -> None:
        # Bounded: each answer sends the next question, so with 10,000 names the socket never
        # runs dry and this loop held the event loop for most of a second. The reader is
        # level-triggered: what is left is read on the loop's next turn.
        slicer = Slicer()
        while not self.done.done() and not slicer.due():
            try:
                data = self.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:  # ICMP port unreachable: nothing listens there
                self.error = "connection refused"
                self.done.set_result(None)
                return
            except OSError as exc:
                self.error = (exc.strerror or str(exc)).lower()
                self.done.set_result(None)
                return
            self._received(data)

    def _received(self, data: bytes) -> None:
        if len(data) < 12:
            return
        found = self._queries.get(int.from_bytes(data[:2], "big"))
        if found is None:
            return
        index, query, _ = found
        try:  # judged on header, question and answer: the rest is not parsed (2/3 of the cost)
            head = data[:8] + b"\0\0\0\0" + data[12:]
            response = dns.message.from_wire(head, ignore_trailing=True)
            if not query.is_response(response):
                return
        except Exception:  # a malformed datagram is ignored, as dnspython does
            return
        del self._queries[query.id]
        if response.flags & dns.flags.TC:
            self.truncated.append(index)
        else:
            ok, reason = _judge(self.wants[index], response)
            self.verdicts[index] = (ok, reason, asyncio.get_running_loop().time())
        self._heard = asyncio.get_running_loop().time()
        self._send_next()
        self._maybe_done()

    def _maybe_done(self) -> None:
        if not self._queries and self._next >= len(self.wants) and not self.done.done():
            self.done.set_result(None)


async def _query_many(
    address: str, port: int, wants: Sequence[_Want], budget: float
) -> list[Verdict | None]:
    """Ask one server about every `want` at once (see `_Batch`); (ok, reason, when) per want,
    or None when no verdict came in the time left. Truncated answers are asked again by
    `_query` (UDP then TCP)."""
    loop = asyncio.get_running_loop()
    results: list[Verdict | None] = [None] * len(wants)
    start = loop.time()
    for offset in range(0, len(wants), _IDS):
        part = wants[offset : offset + _IDS]
        left = budget - (loop.time() - start)
        if left <= 0:
            break
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # as large as allowed: answers arrive in bursts
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.connect((address, port))
        except OSError as exc:
            sock.close()
            reason = (exc.strerror or str(exc)).lower()
            for i in range(len(part)):
                results[offset + i] = (False, reason, loop.time())
            continue
        batch = _Batch(sock, part)
        try:
            batch.start()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await batch.done
        finally:
            batch.close()
        for i, verdict in batch.verdicts.items():
            results[offset + i] = verdict
        if batch.error:
            for i in range(len(part)):
                if results[offset + i] is None and i not in batch.truncated:
                    results[offset + i] = (False, batch.error, loop.time())
        if batch.truncated:
            left = budget - (loop.time() - start)
            if left > 0:
                asks = [_query(address, port, part[i], left) for i in batch.truncated]
                answers = await asyncio.gather(*asks)
                for i, (ok, reason) in zip(batch.truncated, answers, strict=True):
                    if reason != "timeout":
                        results[offset + i] = (ok, reason, loop.time())
    return results


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

    async def ask(address: str, port: int, pending: list[int]) -> list[Verdict | None]:
        """(ok, reason, when) per pending want, or None: no verdict in the time left, so the
        previous one stands; a full `query_timeout` without answer is a verdict ("timeout")."""
        budget = min(query_timeout, deadline - loop.time())
        if budget <= 0:
            return [None] * len(pending)
        verdicts = await _query_many(address, port, [wants[i] for i in pending], budget)
        if budget >= query_timeout:
            timed_out = (False, "timeout", loop.time())
            verdicts = [timed_out if v is None else v for v in verdicts]
        return verdicts

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
                verdicts = await ask(address, server.port, pending)
                for i, verdict in zip(pending, verdicts, strict=True):
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
