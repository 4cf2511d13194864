"""The `rfc2136` provider: TSIG-signed dynamic UPDATEs to one primary server.

Reads ask the configured primary directly (RD cleared, AA required). A read that wants many
names of one zone transfers it (AXFR, `transfer.py`) when the server allows it, which is far
cheaper than a signed query per name; otherwise, and with `zone_transfer: false`, many keys are
asked pipelined on one TCP connection (`reads.py`). Each zone's changes go out as one UPDATE
message, which the server applies all or nothing; every change carries a prerequisite that
the RRset is still exactly what was read, so a hand edit made since then is detected instead of
overwritten. Only a batch larger than a DNS message (64 KB) is split, and then each part is
atomic on its own.
A server that answered NOERROR has applied the change on the primary: there is nothing to poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update

from failover.config.types import ProviderConfig, Rfc2136ProviderConfig
from failover.model import (
    Change,
    RecordKey,
    RecordSet,
    canonical_values,
    normalize_name,
)
from failover.providers.base import (
    ProviderError,
    Receipt,
    check_key,
    check_values,
    combined_error,
    gather_all,
)
from failover.providers.retry import with_retries
from failover.providers.rfc2136.reads import read_pipelined, record_set
from failover.providers.rfc2136.transfer import ZoneTransfers
from failover.providers.rfc2136.wire import (
    TCP_LIMIT,
    UDP_LIMIT,
    UDP_MAX,
    build_update,
    split_changes,
)
from failover.store import Store

log = logging.getLogger(__name__)

READ_CONCURRENCY = 16
_PREREQ_FAILED = {
    dns.rcode.NXRRSET: "the record set is not what was read",
    dns.rcode.YXRRSET: "a record set that was absent now exists",
    dns.rcode.NXDOMAIN: "the name no longer exists",
    dns.rcode.YXDOMAIN: "the name now holds other records",
}
_ALGORITHMS = {"hmac-md5": dns.tsig.HMAC_MD5}  # the only one whose wire name differs


class Rfc2136Provider:
    """Talks to one primary server and updates the zones of its records (`zones`); the server
    says NOTAUTH when one of them is not its own."""

    def __init__(self, config: Rfc2136ProviderConfig, zones: Iterable[str] | None = None) -> None:
        self.config = config
        self.name = config.name
        self.location = config.location
        self.on_error: Callable[[str], None] = lambda kind: None
        self._zones = None if zones is None else frozenset(map(normalize_name, zones))
        self._keyring: dict[dns.name.Name, dns.tsig.Key] | None = None
        self._keyname: dns.name.Name | None = None
        if config.tsig is not None:
            # dns.tsig.Key's repr shows the secret: it stays inside this private attribute.
            self._keyname = dns.name.from_text(config.tsig.name)
            algorithm = _ALGORITHMS.get(config.tsig.algorithm) or dns.name.from_text(
                config.tsig.algorithm
            )
            try:
                key = dns.tsig.Key(self._keyname, config.tsig.secret.reveal(), algorithm)
            except Exception:
                raise ProviderError(
                    f"rfc2136 provider {self.name}: the TSIG secret of key {config.tsig.name} "
                    "is not valid base64",
                    kind="invalid",
                ) from None
            self._keyring = {self._keyname: key}
        self._zone_slots = asyncio.Semaphore(config.max_concurrency)
        self._read_slots = asyncio.Semaphore(READ_CONCURRENCY)
        self._transfers = ZoneTransfers(self.name, config.zone_transfer)
        self._warned_udp = False

    def __repr__(self) -> str:
        return f"Rfc2136Provider({self.name!r}, server={self._server})"

    @property
    def _server(self) -> str:
        host = self.config.server
        return f"[{host}]:{self.config.port}" if ":" in host else f"{host}:{self.config.port}"

    async def start(self) -> None:
        """Nothing to open: every exchange uses its own connection."""

    async def aclose(self) -> None:
        """Nothing to release."""

    # -- read -----------------------------------------------------------------------------------

    @property
    def read_chunk(self) -> int:
        """Keys worth reading (and deciding on) apart: asked one query per key, reading
        10,000 in parts of 1,000 costs no more queries and the engine decides each part as it
        comes; a zone transfer brings all of them at once (0: no parts)."""
        return 0 if self._transfers.possible(self._zones) else 1000

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordSet | None]:
        """The zones with many of `keys` in one transfer each when the server allows it
        (`transfer.py`); the rest one authoritative query per key, pipelined on one TCP
        connection (RFC 7766); the whole read retried as a unit. What the pipeline could not
        get (TCP refused, the connection dropped without progress) is asked one query per key."""
        for k in keys:
            check_key(self.name, k, self._zones)

        async def attempt() -> dict[RecordKey, RecordSet | None]:
            address = await self._address()
            found: dict[RecordKey, RecordSet | None] = {}
            if self.config.transport == "tcp":  # a transfer needs TCP
                server = (address, self.config.port, self._server)
                found = await self._transfers.read_zones(
                    server, self.config.timeout, keys, self._keyring, self._keyname
                )
            rest = [k for k in keys if k not in found]
            if self.config.transport == "tcp" and len(rest) > 1:
                found.update(
                    await read_pipelined(
                        address,
                        self.config.port,
                        self.config.timeout,
                        rest,
                        self._read_query,
                        self._judge_read,
                        self._server,
                    )
                )
            rest = [k for k in keys if k not in found]
            results = await gather_all(self._read_one(address, k) for k in rest)
            found.update(zip(rest, results, strict=True))
            return {k: found[k] for k in keys}

        return await with_retries(attempt, self.config.retry, self.on_error)

    def _read_query(self, key: RecordKey) -> dns.message.Message:
        name = dns.name.from_text(normalize_name(key.name))
        query = dns.message.make_query(name, dns.rdatatype.from_text(key.type.value))
        query.flags &= ~dns.flags.RD
        if self._keyring is not None:
            query.use_tsig(self._keyring, keyname=self._keyname)
        return query

    async def _read_one(self, address: str, key: RecordKey) -> RecordSet | None:
        query = self._read_query(key)
        zone = normalize_name(key.zone)
        async with self._read_slots:
            response = await self._exchange(query, address, zone, udp_limit=None)
        return self._judge_read(key, zone, response)

    def _judge_read(
        self, key: RecordKey, zone: str, response: dns.message.Message
    ) -> RecordSet | None:
        name = dns.name.from_text(normalize_name(key.name))
        rdtype = dns.rdatatype.from_text(key.type.value)
        rcode = response.rcode()
        if rcode == dns.rcode.SERVFAIL:
            raise ProviderError(
                f"{self._server} answered SERVFAIL for {key.name}/{key.type}: zone {zone} may "
                "not be loaded",
                kind="servfail",
                retryable=True,
            )
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise ProviderError(
                f"{self._server} answered {dns.rcode.to_text(rcode)} to a query for "
                f"{key.name}/{key.type}: it does not serve zone {zone}; `server` must be the "
                "zone's primary",
                kind="notauth",
            )
        if not response.flags & dns.flags.AA:
            raise ProviderError(
                f"{self._server} is not authoritative for zone {zone} (its answer for "
                f"{key.name} lacks the AA flag); `server` must be the zone's primary",
                kind="notauth",
            )
        rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, rdtype)
        if rrset is None or len(rrset) == 0:
            return None  # NXDOMAIN, NODATA, or a CNAME standing where an A was asked
        return record_set(key, rrset.ttl, [rd.to_text() for rd in rrset], self._server)

    # -- apply ----------------------------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> Receipt:
        """Update every zone in parallel (bounded); raise after all ran if any zone failed."""
        by_zone: dict[str, dict[RecordKey, Change]] = {}
        for change in changes:
            zone, _ = self._check_change(change)
            batch = by_zone.setdefault(zone, {})
            seen = batch.get(change.key)
            if seen is not None and (seen.after, seen.ttl) != (change.after, change.ttl):
                raise ProviderError(f"{change.key}: two different changes in one batch")
            batch[change.key] = change
        submitted = time.time()
        address = await self._address() if by_zone else self.config.server
        outcomes = await asyncio.gather(
            *(self._apply_zone(address, z, list(b.values())) for z, b in by_zone.items()),
            return_exceptions=True,
        )
        failed = [(z, o) for z, o in zip(by_zone, outcomes, strict=True) if o is not None]
        for _, outcome in failed:
            if not isinstance(outcome, ProviderError):
                raise outcome
        if failed:
            errors = [o for _, o in failed if isinstance(o, ProviderError)]
            done = len(by_zone) - len(failed)
            prefix = f"{done} of {len(by_zone)} zones updated; " if done else ""
            raise combined_error(prefix + "; ".join(str(e) for e in errors), errors)
        return Receipt(
            provider=self.name, change_ids=tuple(sorted(by_zone)), submitted_at=submitted
        )

    async def wait_in_sync(self, receipt: Receipt, timeout: float) -> None:
        """NOERROR to an UPDATE means the primary serves the change already."""

    async def _apply_zone(self, address: str, zone: str, changes: list[Change]) -> None:
        async with self._zone_slots:
            parts = split_changes(zone, changes, TCP_LIMIT)
            for index, part in enumerate(parts):
                try:
                    send = functools.partial(self._send_update, address, zone, part)
                    await with_retries(send, self.config.retry, self.on_error)
                except ProviderError as exc:
                    if index:
                        exc.args = (f"{exc} ({index} of {len(parts)} parts were applied)",)
                    raise
            log.info(
                "rfc2136 %s: zone %s updated on %s (%d change(s), %d message(s))",
                self.name,
                zone,
                self._server,
                len(changes),
                len(parts),
            )

    def _message(self, zone: str, changes: Sequence[Change]) -> dns.update.UpdateMessage:
        message = build_update(zone, changes)
        if self._keyring is not None:
            message.use_tsig(self._keyring, keyname=self._keyname)
        return message

    async def _send_update(self, address: str, zone: str, changes: list[Change]) -> None:
        message = self._message(zone, changes)
        try:
            response = await self._exchange(message, address, zone, udp_limit=UDP_MAX)
        except _TooBigForUdp:
            # TCP is refused and the batch does not fit a datagram: send it in smaller parts.
            for part in split_changes(zone, changes, UDP_LIMIT):
                await self._send_update(address, zone, part)
            return
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        if rcode in _PREREQ_FAILED:
            await self._conflict(address, zone, changes, rcode)
            return
        raise self._update_error(zone, changes, rcode)

    async def _conflict(
        self, address: str, zone: str, changes: list[Change], rcode: dns.rcode.Rcode
    ) -> None:
        """A failed prerequisite is a success when the server already holds what we want
        (an earlier attempt whose answer was lost); otherwise someone edited the zone."""
        read = await asyncio.gather(
            *(self._read_one(address, c.key) for c in changes), return_exceptions=True
        )
        current = [None if isinstance(r, BaseException) else r for r in read]
        if not any(isinstance(r, BaseException) for r in read):
            wanted = [
                RecordSet(
                    normalize_name(c.key.name),
                    c.key.type,
                    c.ttl,
                    canonical_values(c.key.type, c.after),
                )
                for c in changes
            ]
            if current == wanted:
                log.info("rfc2136 %s: zone %s already holds the change", self.name, zone)
                return
        moved = [
            f"{c.key.name}/{c.key.type} is now {', '.join(rs.values) if rs else '(absent)'}, "
            f"was {', '.join(c.before) if c.before else '(absent)'}"
            for c, rs in zip(changes, current, strict=True)
            if (rs.values if rs else None) != (canonical_values(c.key.type, c.before or ()) or None)
        ]
        detail = "; ".join(moved) if moved else _PREREQ_FAILED[rcode]
        raise ProviderError(
            f"zone {zone}: someone changed the records since they were read ({detail}); "
            f"nothing was written to this zone, the next read will see the new state",
            kind="conflict",
        )

    def _update_error(
        self, zone: str, changes: list[Change], rcode: dns.rcode.Rcode
    ) -> ProviderError:
        server, text = self._server, dns.rcode.to_text(rcode)
        key = self.config.tsig.name if self.config.tsig else None
        if rcode == dns.rcode.SERVFAIL:
            return ProviderError(
                f"{server} failed to update zone {zone} (SERVFAIL): the zone may not be loaded "
                "or its journal not writable",
                kind="servfail",
                retryable=True,
            )
        if rcode == dns.rcode.NOTAUTH:
            who = f"or key {key} is not allowed to update it" if key else "or it needs TSIG"
            return ProviderError(
                f"{server} is not authoritative for zone {zone} (NOTAUTH) {who}: check the "
                "zone name and that `server` is the zone's primary",
                kind="notauth",
            )
        if rcode == dns.rcode.REFUSED:
            who = f"TSIG key {key} is not allowed" if key else "unsigned updates are not allowed"
            return ProviderError(
                f"{server} refused the update of zone {zone} (REFUSED): {who} to change these "
                "names (update-policy/allow-update), or the server does not serve the zone",
                kind="refused",
            )
        if rcode == dns.rcode.NOTZONE:
            names = ", ".join(sorted({c.key.name for c in changes}))
            return ProviderError(
                f"{server} says some of {names} are not inside zone {zone} (NOTZONE): check "
                "the records' zone",
                kind="invalid",
            )
        if rcode == dns.rcode.NOTIMP:
            return ProviderError(
                f"{server} does not accept dynamic updates (NOTIMP) for zone {zone}",
                kind="refused",
            )
        return ProviderError(
            f"{server} rejected the update of zone {zone} ({text})", kind="invalid"
        )

    # -- transport ------------------------------------------------------------------------------

    async def _address(self) -> str:
        """dnspython needs an IP address: resolve a host name at each batch (it may move)."""
        host = self.config.server
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(host))
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.config.timeout):
                infos = await loop.getaddrinfo(host, self.config.port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise ProviderError(
                f"cannot resolve rfc2136 server {host}: {exc or 'timeout'}",
                kind="connection",
                retryable=True,
            ) from None
        return str(infos[0][4][0])

    async def _exchange(
        self, message: dns.message.Message, address: str, zone: str, *, udp_limit: int | None
    ) -> dns.message.Message:
        """TCP (or UDP when configured, or when TCP is refused), with every failure mapped to
        a ProviderError that says what to fix and never shows the TSIG secret."""
        timeout, port = self.config.timeout, self.config.port
        refused = False
        try:
            async with asyncio.timeout(timeout + 1):
                if self.config.transport == "tcp":
                    try:
                        return await dns.asyncquery.tcp(message, address, timeout, port)
                    except ConnectionRefusedError:
                        refused = True
                        if not self._warned_udp:
                            self._warned_udp = True
                            log.warning(
                                "rfc2136 %s: %s refused TCP, falling back to UDP",
                                self.name,
                                self._server,
                            )
                if udp_limit is not None and len(message.to_wire()) > udp_limit:
                    raise _TooBigForUdp
                response = await dns.asyncquery.udp(
                    message, address, timeout, port, ignore_unexpected=True
                )
                if response.flags & dns.flags.TC:
                    return await dns.asyncquery.tcp(message, address, timeout, port)
                return response
        except _TooBigForUdp:
            raise
        except (dns.exception.Timeout, TimeoutError):
            if refused:  # most likely nothing listens there at all
                raise ProviderError(
                    f"cannot reach {self._server} (zone {zone}): TCP connection refused and no "
                    f"answer over UDP within {timeout:g}s",
                    kind="connection",
                    retryable=True,
                ) from None
            raise ProviderError(
                f"no answer from {self._server} within {timeout:g}s (zone {zone})",
                kind="timeout",
                retryable=True,
            ) from None
        except dns.tsig.PeerError as exc:
            raise self._tsig_error(exc, zone) from None
        except (dns.tsig.BadSignature, dns.tsig.BadTime, dns.tsig.BadKey, dns.tsig.BadAlgorithm):
            raise ProviderError(
                f"the answer of {self._server} for zone {zone} failed TSIG verification",
                kind="auth",
            ) from None
        except (dns.message.UnknownTSIGKey, dns.message.BadTSIG) as exc:
            raise ProviderError(
                f"the answer of {self._server} for zone {zone} carries a bad TSIG record "
                f"({type(exc).__name__})",
                kind="auth",
            ) from None
        except (OSError, EOFError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise ProviderError(
                f"cannot reach {self._server} (zone {zone}): {reason}",
                kind="connection",
                retryable=True,
            ) from None
        except dns.exception.DNSException as exc:
            raise ProviderError(
                f"bad answer from {self._server} (zone {zone}): {type(exc).__name__}: {exc}",
                kind="protocol",
                retryable=True,
            ) from None

    def _tsig_error(self, exc: dns.tsig.PeerError, zone: str) -> ProviderError:
        key = self.config.tsig.name if self.config.tsig else "?"
        if isinstance(exc, dns.tsig.PeerBadKey):
            why = (
                f"the server does not know TSIG key {key} with algorithm "
                f"{self.config.tsig.algorithm if self.config.tsig else '?'} (BADKEY)"
            )
        elif isinstance(exc, dns.tsig.PeerBadSignature):
            why = f"the server rejected the signature of TSIG key {key} (BADSIG): wrong secret"
        elif isinstance(exc, dns.tsig.PeerBadTime):
            why = "the clocks of this host and the server differ by more than 5 minutes (BADTIME)"
        else:
            why = f"the server rejected TSIG key {key} ({type(exc).__name__})"
        return ProviderError(f"{self._server}, zone {zone}: {why}", kind="auth")

    # -- validation -----------------------------------------------------------------------------

    def _check_change(self, change: Change) -> tuple[str, str]:
        zone, name = check_key(self.name, change.key, self._zones)
        check_values(change, zone)
        try:  # `before` becomes the UPDATE's prerequisite
            canonical_values(change.key.type, change.before or ())
        except ValueError as exc:
            raise ProviderError(f"{change.key}: {exc}", kind="invalid") from None
        return zone, name


class _TooBigForUdp(Exception):
    """Raised before sending when TCP is refused and the message exceeds UDP_MAX."""


def create(config: ProviderConfig, zones: Iterable[str], store: Store) -> Rfc2136Provider:
    """Registry factory: `type: rfc2136`."""
    assert isinstance(config, Rfc2136ProviderConfig)
    return Rfc2136Provider(config, zones)
