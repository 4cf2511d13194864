"""An authoritative DNS server inside the daemon: the `builtin` provider.

It lets the demo, labs and the integration tests run the whole flow (probe, decide, rewrite DNS,
verify with real DNS queries) on loopback with no cloud account. It is small on purpose: no
zone transfers, no DNSSEC, no wildcards, no TSIG. Answers come from an immutable, precomputed
view that `apply` swaps in after the new data is on disk (at once when the disk refuses it,
saved later), so a query never waits on I/O and never sees a half-applied batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from failover.config.types import BuiltinProviderConfig, HostPort, ProviderConfig
from failover.model import (
    Change,
    RecordKey,
    RecordSet,
    RecordType,
    normalize_name,
)
from failover.providers.base import ProviderError, Receipt, check_key, check_values
from failover.providers.builtin_file import Zone, ZoneFile
from failover.store import Store

log = logging.getLogger(__name__)

RdataType = dns.rdatatype.RdataType

_SOA_TIMERS = "3600 600 604800 60"  # refresh, retry, expire, minimum (= negative-cache TTL)
_SOA_TTL = 60  # with minimum 60: a failover target is never negatively cached for long
_NS_TTL = 300
_UDP_PAYLOAD = 1232  # DNS flag day 2020: avoids IP fragmentation
_MAX_CHAIN = 8
_BIND_ATTEMPTS = 5


@dataclass(frozen=True)
class _ServedZone:
    """Ready-to-answer form of one served zone, built once per change."""

    soa: dns.rrset.RRset
    nodes: Mapping[dns.name.Name, Mapping[RdataType, dns.rrset.RRset]]
    empty_non_terminals: frozenset[dns.name.Name]
    ns_host: dns.name.Name


def _next_serial(serial: int) -> int:
    """RFC 1982 increment; 0 is skipped because some tools treat it as 'unset'."""
    return (serial + 1) % 2**32 or 1


def _rrset(owner: dns.name.Name, ttl: int, rdtype: str, texts: list[str]) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(owner, ttl, "IN", rdtype, texts)


def _glue_address(host: str) -> str | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a host name: we cannot tell which address clients reach us on
    return None if address.is_unspecified else str(address)


class BuiltinProvider:
    """Serves the given zones over UDP and TCP; records and serials persist in the Store."""

    tcp_idle_timeout = 10.0  # RFC 7766 asks servers to close idle connections after seconds

    def __init__(self, config: BuiltinProviderConfig, zones: Iterable[str], store: Store) -> None:
        """Loads the saved records now (raises StoreCorruptError) so read() works at once."""
        self.config = config
        self.name = config.name
        self.location = config.location
        self.on_error: Callable[[str], None] = lambda kind: None
        self._store = store
        self._file = ZoneFile(store, config.name, lambda kind: self.on_error(kind))
        self._zones = tuple(sorted({normalize_name(z) for z in zones}))
        if "" in self._zones:
            raise ValueError("the builtin provider cannot serve the root zone")
        self._glue = _glue_address(config.listen.host)
        self._data = self._file.load()
        self._view = self._build_view(self._data)
        self._apply_lock = asyncio.Lock()
        self._pending: asyncio.Future[None] | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_tasks: set[asyncio.Task[Any]] = set()
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._bound: HostPort | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def bound(self) -> HostPort:
        """The address actually listened on (the real port when the config says 0)."""
        return self._bound or self.config.listen

    @property
    def port(self) -> int:
        return self.bound.port

    async def start(self) -> None:
        """Bind UDP and TCP on the same port; with port 0, UDP picks it and TCP follows."""
        if self._udp is not None:
            return
        loop = asyncio.get_running_loop()
        listen = self.config.listen
        try:
            infos = await loop.getaddrinfo(listen.host, None, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise ProviderError(
                f"builtin provider {self.name}: cannot resolve listen host {listen.host!r}: {exc}",
                kind="bind",
            ) from None
        family, sockaddr = infos[0][0], infos[0][4]
        udp, tcp = self._bind(family, sockaddr)
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), sock=udp)
        self._udp = transport
        self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
        address = udp.getsockname()
        self._bound = HostPort(str(address[0]), int(address[1]))
        log.info(
            "builtin DNS provider %s serving %s on %s (udp+tcp)",
            self.name,
            ", ".join(self._zones) or "no zone",
            self._bound,
        )

    def _bind(self, family: int, sockaddr: tuple[Any, ...]) -> tuple[socket.socket, socket.socket]:
        wanted = self.config.listen.port
        attempts = _BIND_ATTEMPTS if wanted == 0 else 1
        for attempt in range(attempts):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                udp.bind((sockaddr[0], wanted, *sockaddr[2:]))
                port = udp.getsockname()[1]
                # SO_REUSEADDR: a restart must not wait for TIME_WAIT connections to expire.
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((sockaddr[0], port, *sockaddr[2:]))
                tcp.listen(128)
            except OSError as exc:
                udp.close()
                tcp.close()
                if exc.errno == errno.EADDRINUSE and attempt + 1 < attempts:
                    continue  # the UDP port picked by the kernel is taken for TCP: pick again
                raise ProviderError(
                    f"builtin provider {self.name}: cannot listen on {self.config.listen}: "
                    f"{exc.strerror or exc}",
                    kind="bind",
                ) from None
            return udp, tcp
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        if self._pending is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._pending)
        await self._file.aclose()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._tcp_writers):
                writer.close()
            if self._tcp_tasks:
                await asyncio.wait(list(self._tcp_tasks), timeout=5)
            await self._tcp.wait_closed()
            self._tcp = None

    # -- provider interface ---------------------------------------------------------------------

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordSet | None]:
        result: dict[RecordKey, RecordSet | None] = {}
        for key in keys:
            zone, name = check_key(self.name, key, self._zones)
            stored = self._data.get(zone)
            result[key] = stored.rrsets.get((name, key.type)) if stored else None
        return result

    async def apply(self, changes: Sequence[Change]) -> Receipt:
        """Apply the whole batch or nothing; answers change once the file is on disk, or at
        once when the disk refuses it (saved later: a full disk must not block a failover).

        An empty `after` deletes the RRset. `before` is not checked: this server has no other
        writer, so there is nothing to race with.
        """
        async with self._apply_lock:
            if self._pending is not None:  # a commit whose caller was cancelled: let it land
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._pending)
                self._pending = None
            data = {zone: stored.copy() for zone, stored in self._data.items()}
            touched: set[str] = set()
            for change in changes:
                zone, name = check_key(self.name, change.key, self._zones)
                rtype = change.key.type
                values = check_values(change, zone, allow_empty=True)
                stored = data.setdefault(zone, Zone(1, {}))
                new = RecordSet(name, rtype, change.ttl, values) if values else None
                if stored.rrsets.get((name, rtype)) != new:
                    if new is None:
                        del stored.rrsets[(name, rtype)]
                    else:
                        stored.rrsets[(name, rtype)] = new
                    touched.add(zone)
            for zone in touched:
                self._check_cname_alone(data[zone])
                data[zone].serial = _next_serial(data[zone].serial)
            if touched:
                # Shielded: if our caller is cancelled mid-write, memory still follows the file.
                commit = self._pending = asyncio.ensure_future(self._commit(data))
                try:
                    await asyncio.shield(commit)
                except asyncio.CancelledError:
                    commit.add_done_callback(_log_orphan_failure)
                    raise
                finally:
                    if commit.done():
                        self._pending = None
        return Receipt(provider=self.name, submitted_at=time.time())

    async def wait_in_sync(self, receipt: Receipt, timeout: float) -> None:
        """Nothing to wait for: apply returns after the server already answers the new data."""

    async def _commit(self, data: dict[str, Zone]) -> None:
        view = self._build_view(data)  # before the write: a bug here must not desync the file
        # Served even when the disk refuses the save (then saved later): a full state disk must
        # not keep a dead target in DNS.
        await self._file.save(data)
        self._data, self._view = data, view

    @staticmethod
    def _check_cname_alone(stored: Zone) -> None:
        names: dict[str, set[RecordType]] = {}
        for name, rtype in stored.rrsets:
            names.setdefault(name, set()).add(rtype)
        for name, types in names.items():
            others = sorted(types - {RecordType.CNAME})
            if RecordType.CNAME in types and others:
                raise ProviderError(
                    f"{name}: a CNAME cannot coexist with {', '.join(others)}", kind="invalid"
                )

    # -- the served view ------------------------------------------------------------------------

    def _build_view(self, data: Mapping[str, Zone]) -> dict[dns.name.Name, _ServedZone]:
        """Precompute dnspython RRsets of every served zone; zones no longer served are kept
        in the file (a config change may bring them back) but get no view."""
        view: dict[dns.name.Name, _ServedZone] = {}
        for zone in self._zones:
            stored = data.get(zone, Zone(1, {}))
            origin, ns_host = dns.name.from_text(zone), dns.name.from_text(f"ns1.{zone}")
            soa_text = f"{ns_host} hostmaster.{zone}. {stored.serial} {_SOA_TIMERS}"
            soa = _rrset(origin, _SOA_TTL, "SOA", [soa_text])
            nodes = {
                origin: {
                    RdataType.SOA: soa,
                    RdataType.NS: _rrset(origin, _NS_TTL, "NS", [str(ns_host)]),
                }
            }
            if self._glue and all(name != f"ns1.{zone}" for name, _ in stored.rrsets):
                rdtype = "AAAA" if ":" in self._glue else "A"  # a managed record there wins
                nodes[ns_host] = {
                    RdataType.make(rdtype): _rrset(ns_host, _NS_TTL, rdtype, [self._glue])
                }
            for (name, rtype), rrset in stored.rrsets.items():
                owner = dns.name.from_text(name)
                texts = [f"{v}." if rtype is RecordType.CNAME else v for v in rrset.values]
                node = nodes.setdefault(owner, {})
                node[RdataType.make(rtype.value)] = _rrset(owner, rrset.ttl, rtype.value, texts)
            ents = set()
            for owner in nodes:
                while len(owner) > len(origin) + 1:
                    owner = owner.parent()
                    ents.add(owner)
            view[origin] = _ServedZone(soa, nodes, frozenset(ents - nodes.keys()), ns_host)
        return view

    def _find_zone(self, name: dns.name.Name) -> _ServedZone | None:
        view = self._view
        while True:
            zone = view.get(name)
            if zone is not None:
                return zone
            if len(name) <= 1:
                return None
            name = name.parent()

    # -- answering ------------------------------------------------------------------------------

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """RFC 7766: length-prefixed messages, several per connection, closed when idle."""
        task = asyncio.current_task()
        assert task is not None
        self._tcp_tasks.add(task)
        self._tcp_writers.add(writer)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.tcp_idle_timeout):
                        size = int.from_bytes(await reader.readexactly(2), "big")
                        wire = await reader.readexactly(size)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                reply = self.handle_wire(wire, udp=False)
                if reply is None:
                    return
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except ConnectionError as exc:
            log.debug("builtin %s: TCP client went away: %s", self.name, exc)
        finally:
            self._tcp_writers.discard(writer)
            self._tcp_tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def handle_wire(self, wire: bytes, *, udp: bool) -> bytes | None:
        """One query in wire format to its answer; None means drop (or close the TCP link)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception as exc:  # hostile input of any shape must never reach the loop
            log.debug(
                "builtin %s: dropping malformed packet (%d bytes): %r", self.name, len(wire), exc
            )
            return None
        if query.flags & dns.flags.QR:
            log.debug("builtin %s: dropping a response sent to us", self.name)
            return None
        limit = 65535
        if udp:
            limit = max(512, min(query.payload, _UDP_PAYLOAD)) if query.edns >= 0 else 512
        try:
            return self._respond(query).to_wire(max_size=limit, prefer_truncation=True)
        except Exception:
            log.exception("builtin %s: failed to answer %s", self.name, query.question)
            with contextlib.suppress(Exception):
                failure = dns.message.make_response(query)
                failure.set_rcode(dns.rcode.SERVFAIL)
                return failure.to_wire(max_size=limit, prefer_truncation=True)
            return None

    def _respond(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query, our_payload=_UDP_PAYLOAD)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if query.edns > 0:
            response.set_rcode(dns.rcode.BADVERS)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        zone = self._find_zone(question.name)
        if (
            zone is None
            or question.rdclass != dns.rdataclass.IN
            or question.rdtype in (RdataType.AXFR, RdataType.IXFR)
        ):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        self._resolve(zone, question.name, question.rdtype, response)
        return response

    def _resolve(
        self,
        zone: _ServedZone,
        name: dns.name.Name,
        rdtype: RdataType,
        response: dns.message.Message,
    ) -> None:
        """Fill the answer, following CNAMEs through served zones (RFC 1034 §4.3.2)."""
        seen: set[dns.name.Name] = set()
        for _ in range(_MAX_CHAIN):
            seen.add(name)
            node = zone.nodes.get(name)
            if node is None:
                if name not in zone.empty_non_terminals:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(zone.soa)
                return
            if rdtype == RdataType.ANY:
                response.answer.extend(node.values())
                return
            rrset = node.get(rdtype)
            if rrset is not None:
                response.answer.append(rrset)
                if rdtype == RdataType.NS:
                    glue = zone.nodes.get(zone.ns_host, {})
                    response.additional.extend(
                        rr for t, rr in glue.items() if t in (RdataType.A, RdataType.AAAA)
                    )
                return
            cname = node.get(RdataType.CNAME)
            if cname is None:
                response.authority.append(zone.soa)  # NODATA
                return
            response.answer.append(cname)
            target: dns.name.Name = cname[0].target
            next_zone = self._find_zone(target)
            if next_zone is None or target in seen:
                return  # outside our zones (the resolver continues) or a loop
            zone, name = next_zone, target


def _log_orphan_failure(future: asyncio.Future[None]) -> None:
    """A commit whose caller was cancelled has nobody to raise to: say it in the log."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.error("builtin provider: saving a change failed: %s", exc)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, provider: BuiltinProvider) -> None:
        self._provider = provider
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector transport does not subclass DatagramTransport in 3.11, hence the cast.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = self._provider.handle_wire(data, udp=True)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("builtin %s: UDP error: %s", self._provider.name, exc)


def create(config: ProviderConfig, zones: Iterable[str], store: Store) -> BuiltinProvider:
    assert isinstance(config, BuiltinProviderConfig)
    return BuiltinProvider(config, zones, store)
