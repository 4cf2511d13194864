"""Reading many record sets of one zone with one zone transfer (AXFR, RFC 5936).

Why: the daemon reads every record it manages at start-up and on every re-read. Asked one
signed query per name, 1,000 names cost ~0.5 s of the event loop's CPU (a TSIG signature and
a verified answer each): the largest piece of the start-up after the imports. One transfer,
signed with the same key, brings the whole zone in a few large messages.

Transfers are usually restricted, so this is an optimisation that is tried, never required:
a read goes through a transfer only when it wants many names of one zone (`MIN_KEYS`) and a
good share of it (`SIZE_SHARE`, once the zone's size is known); a server that refuses the
transfer is remembered and asked name by name from then on (the log says once how to allow
it); a zone that turns out far larger than the read is abandoned mid-transfer and read name
by name too. Whatever a transfer fails on is asked by the queries, which report it precisely.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsig

from failover.model import RecordKey, RecordSet, normalize_name
from failover.providers.base import ProviderError
from failover.providers.rfc2136.reads import record_set
from failover.slicing import Slicer

log = logging.getLogger(__name__)

MIN_KEYS = 64  # fewer names: their queries cost less than a transfer of the zone
SIZE_SHARE = 10
"""A transfer carries at most this many record sets per name the read wants: measured against
BIND on loopback, a signed query costs ~0.4 ms of CPU per name (3,000 names: 1.2 s) and a
transferred record set ~0.06 ms (the same 3,000 names from a zone of 2,000 record sets: 0.13 s),
so at about ten record sets per name wanted the queries become the cheaper way."""
_REFUSALS = {dns.rcode.REFUSED, dns.rcode.NOTAUTH, dns.rcode.NOTIMP, dns.rcode.FORMERR}

Keyring = dict[dns.name.Name, dns.tsig.Key] | None


class _Refused(Exception):
    """The server will not transfer this zone to us (its rcode says so)."""


class _BadTransfer(Exception):
    """A transfer that is not a well-formed, complete, signed answer to ours."""


class _TooLarge(Exception):
    """The zone holds far more record sets than the read wants: it is cheaper name by name."""

    def __init__(self, seen: int) -> None:
        super().__init__(seen)
        self.seen = seen


class ZoneTransfers:
    """Which zones of one server to transfer, and what was learnt about them: refusals, and
    each zone's size (a lower bound when a transfer was abandoned)."""

    def __init__(self, provider: str, enabled: bool) -> None:
        self.provider = provider
        self.enabled = enabled
        self.refused: set[str] = set()
        self.sizes: dict[str, int] = {}

    def possible(self, zones: frozenset[str] | None) -> bool:
        """Whether some zone may still be transferred (reads then need not come in parts)."""
        return self.enabled and not (zones is not None and zones <= self.refused)

    def worth(self, zone: str, wanted: int) -> bool:
        if not self.enabled or zone in self.refused or wanted < MIN_KEYS:
            return False
        return self.sizes.get(zone, 0) <= wanted * SIZE_SHARE

    async def read_zones(
        self,
        server: tuple[str, int, str],
        timeout: float,
        keys: Sequence[RecordKey],
        keyring: Keyring,
        keyname: dns.name.Name | None,
    ) -> dict[RecordKey, RecordSet | None]:
        """What transfers could read of `keys`: those of the zones worth transferring."""
        by_zone: dict[str, list[RecordKey]] = {}
        for k in keys:
            by_zone.setdefault(normalize_name(k.zone), []).append(k)
        found: dict[RecordKey, RecordSet | None] = {}
        for zone, zone_keys in by_zone.items():
            if self.worth(zone, len(zone_keys)):
                found.update(
                    await self.read(server, timeout, zone, zone_keys, keyring, keyname) or {}
                )
        return found

    async def read(
        self,
        server: tuple[str, int, str],
        timeout: float,
        zone: str,
        keys: Sequence[RecordKey],
        keyring: Keyring,
        keyname: dns.name.Name | None,
    ) -> dict[RecordKey, RecordSet | None] | None:
        """The keys' record sets (None: absent), or None when the zone is to be read name by
        name this time (refused, too large, a connection or message problem)."""
        address, port, label = server
        wanted = {
            (dns.name.from_text(normalize_name(k.name)), dns.rdatatype.from_text(k.type.value)): k
            for k in keys
        }
        try:
            found, size = await _transfer(
                address, port, timeout, zone, wanted, len(keys) * SIZE_SHARE, keyring, keyname
            )
        except TimeoutError:  # a server that does not answer would not answer queries either
            raise ProviderError(
                f"no answer from {label} within {timeout:g}s (zone transfer of {zone})",
                kind="timeout",
                retryable=True,
            ) from None
        except _Refused as exc:
            self.refused.add(zone)
            log.warning(
                "rfc2136 %s: %s refuses to transfer zone %s (%s); reading it one query per "
                "name, which costs more CPU at thousands of records. To read it in one transfer, "
                'allow the TSIG key to transfer the zone (BIND: allow-transfer { key "NAME"; };); '
                "to stop trying, set zone_transfer: false",
                self.provider,
                label,
                zone,
                exc,
            )
            return None
        except _TooLarge as exc:
            self.sizes[zone] = exc.seen
            log.info(
                "rfc2136 %s: zone %s holds more than %d record sets: reading %d of them one "
                "query per name",
                self.provider,
                zone,
                exc.seen,
                len(keys),
            )
            return None
        except (OSError, EOFError, dns.exception.DNSException, _BadTransfer) as exc:
            log.debug("rfc2136 %s: transfer of %s failed (%r): querying", self.provider, zone, exc)
            return None
        self.sizes[zone] = size
        # absent: no record set, or a CNAME standing where an A was asked (as a query says)
        return {
            k: None if (got := found.get(name_type)) is None else record_set(k, *got, label)
            for name_type, k in wanted.items()
        }


NameType = tuple[dns.name.Name, dns.rdatatype.RdataType]


async def _transfer(
    address: str,
    port: int,
    timeout: float,
    zone: str,
    wanted: dict[NameType, RecordKey],
    limit: int,
    keyring: Keyring,
    keyname: dns.name.Name | None,
) -> tuple[dict[NameType, tuple[int, list[str]]], int]:
    """The wanted record sets of the zone (TTL, value texts) and how many it holds in all.
    Each message waits at most `timeout`; the first and last must be signed when we sign."""
    origin = dns.name.from_text(zone)
    query = dns.message.make_query(origin, dns.rdatatype.AXFR)
    if keyring is not None:
        query.use_tsig(keyring, keyname=keyname)
    wire = query.to_wire()
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(address, port)
    try:
        writer.write(len(wire).to_bytes(2, "big") + wire)
        found: dict[NameType, tuple[int, list[str]]] = {}
        soa: object = None
        seen = 0
        tsig_ctx = None
        first = True
        slicer = Slicer()
        while True:
            async with asyncio.timeout(timeout):
                size = int.from_bytes(await reader.readexactly(2), "big")
                data = await reader.readexactly(size)
            message = dns.message.from_wire(
                data,
                keyring=query.keyring,
                request_mac=query.mac,
                xfr=True,
                tsig_ctx=tsig_ctx,
                multi=True,  # one TSIG context across the messages (middle ones may be unsigned)
            )
            tsig_ctx = message.tsig_ctx
            if not query.is_response(message, xfr_continuation=not first):
                raise _BadTransfer("not an answer to our transfer")
            rcode = message.rcode()
            if rcode in _REFUSALS:
                raise _Refused(dns.rcode.to_text(rcode))
            if rcode != dns.rcode.NOERROR:
                raise _BadTransfer(f"transfer answered {dns.rcode.to_text(rcode)}")
            if first and keyring is not None and not message.had_tsig:
                raise _BadTransfer("the transfer's first message is unsigned")
            for rrset in message.answer:
                if rrset.rdtype == dns.rdatatype.SOA and rrset.name == origin:
                    if soa is None:
                        soa = rrset
                        continue
                    if keyring is not None and not message.had_tsig:
                        raise _BadTransfer("the transfer's last message is unsigned")
                    return found, seen  # the closing SOA: the zone is complete
                if soa is None:
                    raise _BadTransfer("a transfer must begin with the zone's SOA")
                seen += 1
                if seen > limit:
                    raise _TooLarge(seen)
                name_type = (rrset.name, rrset.rdtype)
                if name_type in wanted:
                    ttl, texts = found.get(name_type, (rrset.ttl, []))
                    texts += [rd.to_text() for rd in rrset]
                    found[name_type] = (min(ttl, rrset.ttl), texts)
            first = False
            await slicer.pause()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
