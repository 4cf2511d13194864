"""A small authoritative DNS server with RFC 2136 UPDATE, whose faults a test switches on.

Why not BIND: the faults under test are a server that answers NOERROR to an UPDATE and keeps
the old answer (`mode = "ignore"`), one that refuses updates (`"refuse"`), and a name server
that is down (`down = True`: every query is dropped). BIND does none of these on demand.

It serves one zone from memory over UDP and TCP on 127.0.0.1, answers authoritatively (AA) and
non-recursively, applies the update section of an UPDATE (add, delete RRset, delete RR) without
checking prerequisites or TSIG, and counts the UPDATEs it gets. Two servers may share one
`Zone` (a primary and its secondary). It runs its own event loop in a thread, so a synchronous
test drives it while the daemon runs in a subprocess.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Literal, cast

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.update

from tests.support import Peer, free_port
from tests.support.net import close_leftover_transports

Mode = Literal["apply", "ignore", "refuse"]
FAST_RETRY = "{attempts: 2, initial: 50ms, max_delay: 200ms, deadline: 2s}"


@dataclass
class Zone:
    """RRsets by (owner, type), with their TTL: what the server(s) sharing it answer."""

    origin: str
    rrsets: dict[tuple[str, str], tuple[int, list[str]]] = field(default_factory=dict)

    def set(self, name: str, rtype: str, ttl: int, values: list[str]) -> None:
        self.rrsets[(_norm(name), rtype)] = (ttl, list(values))

    def values(self, name: str, rtype: str = "A") -> list[str]:
        return sorted(self.rrsets.get((_norm(name), rtype), (0, []))[1])


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


class UpdateServer:
    def __init__(self, zone: Zone, *, mode: Mode = "apply") -> None:
        self.zone = zone
        self.mode: Mode = mode
        self.down = False  # drop every message, as a server that is off would
        self.port = free_port()
        self.updates: list[float] = []  # monotonic arrival time of every UPDATE
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()  # aborted at close, reading or not

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def peer(
        self, *verifiers: UpdateServer, timeout: str = "2s", verify_timeout: str = "1s"
    ) -> Peer:
        """This server as the daemon's `upd` provider (rfc2136, a fast retry policy), changes
        verified on `verifiers` (default: itself)."""
        nameservers = ", ".join(f'"{s.address}"' for s in (verifiers or (self,)))
        return Peer(
            "upd",
            f"{{type: rfc2136, server: 127.0.0.1, port: {self.port}, timeout: {timeout},"
            f" retry: {FAST_RETRY},"
            f" verify: {{nameservers: [{nameservers}], timeout: {verify_timeout}}}}}",
            self.zone.values,
            zone=self.zone.origin,
        )

    def updates_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for t in self.updates if start <= t < end)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> UpdateServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=("127.0.0.1", self.port)
        )
        self._udp = cast(asyncio.DatagramTransport, transport)
        self._tcp = await asyncio.start_server(self._tcp_client, "127.0.0.1", self.port)

    def close(self) -> None:
        async def stop() -> None:
            if self._udp is not None:
                self._udp.close()
            if self._tcp is not None:
                self._tcp.close()
            for writer in list(self._clients):  # a paused one is not in the selector's map
                writer.transport.abort()
            if self._tcp is not None:
                await self._tcp.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        asyncio.run_coroutine_threadsafe(close_leftover_transports(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    # -- protocol -------------------------------------------------------------------------------

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                reply = self.handle(await reader.readexactly(size))
                if reply is None:
                    continue
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    def handle(self, wire: bytes) -> bytes | None:
        """The reply to one message, or None to stay silent."""
        if self.down:
            return None
        try:
            message = dns.message.from_wire(wire)
        except Exception:
            return None
        if message.opcode() == dns.opcode.UPDATE:
            return self._update(cast(dns.update.UpdateMessage, message)).to_wire()
        return self._query(message).to_wire()

    def _query(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        question = query.question[0]
        qname, rdtype = question.name, question.rdtype
        origin = dns.name.from_text(self.zone.origin)
        if not qname.is_subdomain(origin):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        rtype = dns.rdatatype.to_text(rdtype)
        with self._lock:
            found = self.zone.rrsets.get((_norm(str(qname)), rtype))
            exists = any(owner == _norm(str(qname)) for owner, _ in self.zone.rrsets)
        if found:
            ttl, values = found
            response.answer.append(dns.rrset.from_text_list(qname, ttl, "IN", rtype, values))
        elif not exists and qname != origin:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def _update(self, message: dns.update.UpdateMessage) -> dns.message.Message:
        response = dns.message.make_response(message)
        with self._lock:
            self.updates.append(time.monotonic())
        if self.mode == "refuse":
            response.set_rcode(dns.rcode.REFUSED)
            return response
        if self.mode == "ignore":
            return response  # NOERROR, and nothing changes
        with self._lock:
            for rrset in message.update:
                key = (_norm(str(rrset.name)), dns.rdatatype.to_text(rrset.rdtype))
                deleting = rrset.deleting or rrset.rdclass
                if deleting == dns.rdataclass.ANY:  # delete the RRset
                    self.zone.rrsets.pop(key, None)
                elif deleting == dns.rdataclass.NONE:  # delete these RRs
                    ttl, values = self.zone.rrsets.get(key, (0, []))
                    left = [v for v in values if v not in {r.to_text() for r in rrset}]
                    if left:
                        self.zone.rrsets[key] = (ttl, left)
                    else:
                        self.zone.rrsets.pop(key, None)
                else:  # add
                    _, values = self.zone.rrsets.get(key, (0, []))
                    added = [r.to_text() for r in rrset if r.to_text() not in values]
                    self.zone.rrsets[key] = (rrset.ttl, values + added)
        return response


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: UpdateServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.server.handle(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)
