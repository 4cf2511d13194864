"""Amazon Route 53 through boto3 (`type: route53`).

boto3 is synchronous, so every call runs in this provider's own small thread pool behind a
semaphore of `max_concurrency`, under an asyncio deadline of `timeout`: a hung AWS endpoint can
neither block the event loop nor starve other providers' threads. botocore's own retries are off
(one attempt per call) so our tenacity policy (`providers/retry.py`) alone decides what is
retried and counts every failed attempt.

Scope, on purpose: simple A/AAAA/CNAME record sets. Routing-policy records (SetIdentifier) are
ignored with a warning and alias records are refused, because failing over is this daemon's
job, not Route 53's.

Hosted zones are found by name (`ListHostedZonesByName`, exact match) or taken from
`hosted_zone_ids`, then cached. When both a public and a private zone carry the name, the public
one is used (the one the internet resolves); a lone private zone is used with a warning; several
zones of the same visibility are ambiguous and need `hosted_zone_ids`. Zones are resolved on
first use, not at start, so an AWS outage never keeps the daemon from starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import botocore.exceptions as boto_errors
from botocore.config import Config as BotoConfig

from failover.config.types import ProviderConfig, Route53ProviderConfig
from failover.model import Change, RecordKey, RecordSet, RecordType, canonical_values
from failover.model import normalize_name as _norm
from failover.providers.base import ProviderError, Receipt, check_key, per_zone
from failover.providers.pacing import READ, STATUS, WRITE, Pacer
from failover.providers.retry import with_retries
from failover.providers.route53 import wire
from failover.store import Store

log = logging.getLogger("failover.providers.route53")

_PAGE = 300  # ListResourceRecordSets maximum page size
_PROBE_PAGE = 10  # a per-key lookup: the exact match comes first when it exists
_MESSAGE_MAX = 300


def _quiet_sdk_debug_logs() -> None:
    """botocore's DEBUG logs print request headers, session token included: keep them off
    unless someone set a level on purpose."""
    for name in ("botocore", "boto3"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


_ZONES_REMEMBERED = 10_000  # change ids whose zone is kept, for the order of the INSYNC polls
_PRIORITY = {"ChangeResourceRecordSets": WRITE, "GetChange": STATUS}  # the rest: READ


class Route53Provider:
    """Route 53 hosted zones: UPSERT batches per zone, GetChange polling until INSYNC."""

    poll_initial = 1.0  # GetChange: first wait, then x1.5 up to poll_max
    poll_max = 5.0

    def __init__(self, config: Route53ProviderConfig, zones: Iterable[str] | None = None) -> None:
        self.config = config
        self.name = config.name
        self.location = config.location
        self.on_error: Callable[[str], None] = lambda kind: None
        self._zones = None if zones is None else frozenset(map(_norm, zones))
        self._zone_ids = {_norm(z): i for z, i in config.hosted_zone_ids.items()}
        self._hosted: dict[str, wire.HostedZone] = {}
        self._sizes: dict[str, int] = {}  # record sets per zone, as last listed
        self._zone_locks: dict[str, asyncio.Lock] = {}
        self._client: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._pacer = Pacer(config.requests_per_second)  # writes first, taking turns with polls
        self._turns: set[str] = set()  # zones holding a token for their next write
        # the zone of each change submitted lately, and the changes of each zone being waited
        # for (`wait_in_sync`) and not seen INSYNC yet, in order, with what a later change's
        # poller waits on: the earlier one seen INSYNC, or given up
        self._zone_of: OrderedDict[str, str] = OrderedDict()
        self._unsynced: dict[str, dict[str, asyncio.Event]] = {}
        self._warned: set[tuple[str, RecordType]] = set()
        _quiet_sdk_debug_logs()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the boto3 client (reads ~/.aws files, so off the loop); no network call."""
        if self._client is not None:
            return
        try:
            self._client = await asyncio.to_thread(self._make_client)
        except boto_errors.BotoCoreError as exc:
            raise self._error("start", exc) from None
        self._executor = ThreadPoolExecutor(
            max_workers=self.config.max_concurrency, thread_name_prefix=f"route53-{self.name}"
        )

    def _make_client(self) -> Any:
        c = self.config
        session = boto3.session.Session(
            profile_name=c.profile,
            region_name=c.region or "us-east-1",  # Route 53 is global; signing needs a region
            aws_access_key_id=c.access_key_id.reveal() if c.access_key_id else None,
            aws_secret_access_key=c.secret_access_key.reveal() if c.secret_access_key else None,
            aws_session_token=c.session_token.reveal() if c.session_token else None,
        )
        boto_config = BotoConfig(
            connect_timeout=c.timeout,
            read_timeout=c.timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},  # our policy retries
            max_pool_connections=c.max_concurrency,
        )
        return session.client("route53", endpoint_url=c.endpoint_url, config=boto_config)

    async def aclose(self) -> None:
        """Stop taking work; a thread stuck on a hung endpoint ends by botocore's timeouts."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._client is not None:
            client, self._client = self._client, None
            client.close()

    # -- read -----------------------------------------------------------------------------------

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordSet | None]:
        by_zone: dict[str, list[RecordKey]] = {}
        for key in keys:
            zone, _ = check_key(self.name, key, self._zones)
            by_zone.setdefault(zone, []).append(key)
        parts = await per_zone(self._read_zone, by_zone)
        result: dict[RecordKey, RecordSet | None] = {}
        for part in parts.values():
            result.update(part)
        return {key: result[key] for key in keys}

    async def _read_zone(
        self, zone: str, keys: list[RecordKey]
    ) -> dict[RecordKey, RecordSet | None]:
        """One lookup per key, or one listing of the whole zone when that costs fewer calls."""
        hosted = await self._hosted_zone(zone)
        size = self._sizes.get(zone, hosted.record_count or 0)
        if len(keys) > max(math.ceil(size / _PAGE), 1):
            found = await self._list(hosted, None, None, None)
            self._sizes[zone] = sum(map(len, found.values()))
            return {key: self._to_record(key, found) for key in keys}
        results = await asyncio.gather(*(self._read_key(hosted, key) for key in keys))
        return dict(zip(keys, results, strict=True))

    async def _read_key(self, hosted: wire.HostedZone, key: RecordKey) -> RecordSet | None:
        name = _norm(key.name)
        found = await self._list(hosted, name, key.type, _PROBE_PAGE)
        return self._to_record(key, found)

    async def _list(
        self, hosted: wire.HostedZone, name: str | None, rtype: RecordType | None, page: int | None
    ) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """Record sets by (name, type), from (name, type) on (only those), or the whole zone."""
        found: dict[tuple[str, str], list[dict[str, Any]]] = {}
        params: dict[str, Any] = {"HostedZoneId": hosted.id, "MaxItems": str(page or _PAGE)}
        if name is not None and rtype is not None:
            params |= {"StartRecordName": name + ".", "StartRecordType": rtype.value}
        seen: set[tuple[str, str, str | None]] = set()
        while True:
            resp = await self._call("ListResourceRecordSets", hosted.name, **params)
            for rrset in resp.get("ResourceRecordSets", []):
                ident = (wire.decode_name(rrset["Name"]), rrset["Type"])
                if name is not None and ident != (name, rtype):
                    return found  # sorted by name then type: past ours, nothing more to see
                marker = (*ident, rrset.get("SetIdentifier"))
                if marker not in seen:  # moto repeats rows across pages (no identifier token)
                    seen.add(marker)
                    found.setdefault(ident, []).append(rrset)
            if not resp.get("IsTruncated"):
                return found
            token = {
                "StartRecordName": resp.get("NextRecordName"),
                "StartRecordType": resp.get("NextRecordType"),
                "StartRecordIdentifier": resp.get("NextRecordIdentifier"),
            }
            token = {k: v for k, v in token.items() if v}
            if token.items() <= params.items() or "StartRecordName" not in token:
                return found  # no progress: stop rather than loop forever
            params = {"HostedZoneId": hosted.id, "MaxItems": params["MaxItems"], **token}

    def _to_record(
        self, key: RecordKey, found: dict[tuple[str, str], list[dict[str, Any]]]
    ) -> RecordSet | None:
        name = _norm(key.name)
        rrsets = found.get((name, key.type.value), [])
        if any("AliasTarget" in r for r in rrsets):
            raise ProviderError(
                f"route53 {self.name}: {name}/{key.type} is an alias record; failover manages "
                "simple records only: replace it with a plain record set",
                kind="unsupported",
            )
        simple = [r for r in rrsets if "SetIdentifier" not in r]
        if len(simple) < len(rrsets) and (name, key.type) not in self._warned:
            self._warned.add((name, key.type))
            log.warning(
                "route53 %s: ignoring routing-policy records (SetIdentifier) of %s/%s; "
                "failover manages simple records only",
                self.name,
                name,
                key.type,
            )
        if not simple:
            return None
        rrset = simple[0]
        raw = [r["Value"] for r in rrset.get("ResourceRecords", [])]
        try:
            values = canonical_values(key.type, raw)
        except ValueError as exc:
            raise ProviderError(
                f"route53 {self.name}: {name}/{key.type} holds a value that is not valid: {exc}",
                kind="invalid",
            ) from None
        return RecordSet(name, key.type, int(rrset.get("TTL", 0)), values)

    # -- apply ----------------------------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> Receipt:
        """One UPSERT batch per zone (split only past Route 53's size limits), zones in
        parallel. A batch is all-or-nothing at Route 53; across split batches or zones it is
        not, which is harmless because UPSERT is idempotent and the engine retries the lot."""
        by_zone: dict[str, dict[tuple[str, RecordType], dict[str, Any]]] = {}
        for change in changes:
            zone, name = check_key(self.name, change.key, self._zones)
            by_zone.setdefault(zone, {})[(name, change.key.type)] = wire.upsert(change, zone)
        batches = {zone: wire.batches(list(items.values())) for zone, items in by_zone.items()}
        ids = await per_zone(self._apply_zone, batches)
        return Receipt(
            provider=self.name,
            change_ids=tuple(i for zone in by_zone for i in ids[zone]),
            submitted_at=time.time(),
        )

    @contextlib.asynccontextmanager
    async def write_turn(self, zone: str) -> AsyncIterator[None]:
        """`PacedWrites`: the token of `zone`'s next write is taken before the batch is made
        up; the write's first attempt uses it, or it goes back to the bucket."""
        zone = _norm(zone)
        await self._pacer.take(WRITE)
        self._turns.add(zone)
        try:
            yield
        finally:
            if zone in self._turns:  # no request used it (refused by fencing, failed before)
                self._turns.discard(zone)
                self._pacer.refund()

    def one_request(self, changes: Sequence[Change]) -> int:
        """`PacedWrites`: how many of the leading changes one ChangeResourceRecordSets holds
        (1,000 records and 32,000 characters, an UPSERT counting twice)."""
        return wire.first_request(changes)

    async def _apply_zone(self, zone: str, batches: list[list[dict[str, Any]]]) -> list[str]:
        """Batches of one zone in order: Route 53 answers PriorRequestNotComplete to a zone
        that is still busy with a change, so parallel batches would only fight."""
        hosted = await self._hosted_zone(zone)
        ids: list[str] = []
        for number, batch in enumerate(batches, 1):
            comment = f"failover: {len(batch)} change(s), batch {number}/{len(batches)}"
            try:
                resp = await self._call(
                    "ChangeResourceRecordSets",
                    zone,
                    HostedZoneId=hosted.id,
                    ChangeBatch={"Comment": comment, "Changes": batch},
                )
            except ProviderError as exc:
                if ids:  # earlier batches of this zone went through: say so
                    exc.args = (f"{exc} (after {len(ids)} of {len(batches)} batches applied)",)
                raise
            change_id = str(resp["ChangeInfo"]["Id"]).rsplit("/", 1)[-1]
            ids.append(change_id)
            self._zone_of[change_id] = zone
            while len(self._zone_of) > _ZONES_REMEMBERED:
                self._zone_of.popitem(last=False)
        return ids

    # -- wait -----------------------------------------------------------------------------------

    async def wait_in_sync(self, receipt: Receipt, timeout: float) -> None:
        """Poll GetChange (at once, then 1 s backing off to 5 s) until every change is INSYNC."""
        deadline = min(timeout, self.config.change_timeout)
        changes = list(dict.fromkeys(receipt.change_ids))
        for change_id in changes:  # in line behind the changes of the zone waited for already
            if (zone := self._zone_of.get(change_id)) is not None:
                self._unsynced.setdefault(zone, {}).setdefault(change_id, asyncio.Event())
        try:
            async with asyncio.timeout(deadline):
                for change_id in changes:
                    await self._wait_change(change_id)
        except TimeoutError:
            self.on_error("timeout")
            error = ProviderError(
                f"route53 {self.name}: change not INSYNC after {deadline:g}s",
                kind="timeout",
                retryable=True,
            )
            error.counted = True
            raise error from None
        finally:  # the changes not reached (a timeout, a cancel) no longer hold the later ones
            for change_id in changes:
                self._synced(change_id)

    async def _wait_change(self, change_id: str) -> None:
        """Poll until INSYNC. While an earlier change of the same zone is not INSYNC yet, this
        one is polled only every `poll_max` (or as soon as that one is): Route 53 applies a
        zone's changes in turn, so the later ones are all but certainly PENDING too, and with
        a change PENDING for up to a minute, polling every one of a mass failover's batches
        took the account's 5 requests/s from its writes. Each change is still confirmed by
        its own INSYNC, and a stuck earlier change delays a later one by `poll_max` at most."""
        loop = asyncio.get_running_loop()
        delay, polled = self.poll_initial, float("-inf")
        try:
            while True:
                ahead = self._ahead(change_id)
                if ahead is None or loop.time() - polled >= self.poll_max:
                    polled = loop.time()
                    resp = await self._call("GetChange", change_id, Id=change_id)
                    if resp["ChangeInfo"]["Status"] == "INSYNC":
                        return
                    ahead = self._ahead(change_id)
                if ahead is None:
                    await asyncio.sleep(delay)
                else:  # woken early when the earlier change is INSYNC or given up
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ahead.wait(), delay)
                delay = min(delay * 1.5, self.poll_max)
        finally:
            self._synced(change_id)

    def _ahead(self, change_id: str) -> asyncio.Event | None:
        """What an earlier change of `change_id`'s zone, not yet INSYNC, sets when it is."""
        for waiting in self._unsynced.values():
            if change_id in waiting:
                first, event = next(iter(waiting.items()))
                return None if first == change_id else event
        return None

    def _synced(self, change_id: str) -> None:
        """`change_id` is INSYNC, or its poller gave up: the changes after it poll again."""
        for zone, waiting in list(self._unsynced.items()):
            event = waiting.pop(change_id, None)
            if event is not None:
                event.set()
                if not waiting:
                    del self._unsynced[zone]

    # -- hosted zones ---------------------------------------------------------------------------

    async def _hosted_zone(self, zone: str) -> wire.HostedZone:
        if (hosted := self._hosted.get(zone)) is not None:
            return hosted
        async with self._zone_locks.setdefault(zone, asyncio.Lock()):
            if (hosted := self._hosted.get(zone)) is None:
                hosted = await self._find_zone(zone)
                self._hosted[zone] = hosted
                log.info("route53 %s: zone %s is hosted zone %s", self.name, zone, hosted.id)
        return hosted

    async def _find_zone(self, zone: str) -> wire.HostedZone:
        given = self._zone_ids.get(zone)
        if given is not None:
            resp = await self._call("GetHostedZone", zone, Id=given)
            hosted = wire.parse_zone(resp["HostedZone"])
            if hosted.name != zone:
                raise ProviderError(
                    f"route53 {self.name}: hosted zone {given} is {hosted.name}, not {zone}: "
                    "fix hosted_zone_ids",
                    kind="config",
                )
            return hosted
        matches: list[wire.HostedZone] = []
        params: dict[str, Any] = {"DNSName": zone + ".", "MaxItems": "100"}
        while True:
            resp = await self._call("ListHostedZonesByName", zone, **params)
            for raw in resp.get("HostedZones", []):
                if (found := wire.parse_zone(raw)).name == zone:
                    matches.append(found)
            next_name = resp.get("NextDNSName")
            if not resp.get("IsTruncated") or not next_name or wire.decode_name(next_name) != zone:
                break
            params = {"DNSName": next_name, "HostedZoneId": resp["NextHostedZoneId"]}
            params["MaxItems"] = "100"
        public = [z for z in matches if not z.private]
        chosen = public or matches
        if len(chosen) == 1:
            if chosen[0].private:
                log.warning(
                    "route53 %s: %s is a private hosted zone; verification needs "
                    "nameservers that serve it",
                    self.name,
                    zone,
                )
            return chosen[0]
        if not chosen:
            raise ProviderError(
                f"route53 {self.name}: no hosted zone named {zone} in this account",
                kind="not_found",
            )
        ids = ", ".join(z.id for z in chosen)
        raise ProviderError(
            f"route53 {self.name}: several hosted zones are named {zone} ({ids}): "
            "choose one with hosted_zone_ids",
            kind="config",
        )

    # -- calls and errors -----------------------------------------------------------------------

    async def _call(self, operation: str, about: str, **params: Any) -> dict[str, Any]:
        """One API operation under the retry policy; every failed attempt is counted."""
        attempt = functools.partial(self._attempt, operation, about, params)
        return await with_retries(attempt, self.config.retry, self.on_error)

    async def _attempt(self, operation: str, about: str, params: dict[str, Any]) -> dict[str, Any]:
        """One attempt in our thread pool. On timeout the thread is abandoned but keeps its
        slot until botocore's own socket timeouts end it, so threads never pile up."""
        if self._client is None or self._executor is None:
            raise ProviderError(f"route53 {self.name}: not started", kind="state")
        method = getattr(self._client, wire.snake(operation))
        # Route 53 allows 5 requests per second per account, bursts included: a mass
        # failover's batches, GetChange polls and listings wait here instead of drawing
        # Throttling errors (still retried with backoff); a batch goes before the others.
        if operation == "ChangeResourceRecordSets" and about in self._turns:
            self._turns.discard(about)  # its token was taken by write_turn (`about`: the zone)
        else:
            await self._pacer.take(_PRIORITY.get(operation, READ))
        await self._slots.acquire()
        try:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor, functools.partial(method, **params))
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._release)
        try:
            async with asyncio.timeout(self.config.timeout):
                result: dict[str, Any] = await asyncio.shield(future)
                return result
        except wire.SDK_ERRORS as exc:
            raise self._error(f"{operation} {about}", exc) from None
        except TimeoutError:
            raise ProviderError(
                f"route53 {self.name}: {operation} {about}: no answer within "
                f"{self.config.timeout:g}s",
                kind="timeout",
                retryable=True,
            ) from None

    def _release(self, future: asyncio.Future[Any]) -> None:
        self._slots.release()
        if not future.cancelled():
            future.exception()  # an abandoned call's error is not "never retrieved"

    def _error(self, what: str, exc: Exception) -> ProviderError:
        """A concise, credential-free ProviderError with a truthful kind and retryability."""
        kind, retryable, detail = wire.classify(exc)
        message = self._redact(f"route53 {self.name}: {what}: {detail}")
        if len(message) > _MESSAGE_MAX:
            message = message[: _MESSAGE_MAX - 1] + "…"
        return ProviderError(message, kind=kind, retryable=retryable)

    def _redact(self, text: str) -> str:
        c = self.config
        for secret in (c.access_key_id, c.secret_access_key, c.session_token):
            if secret is not None and secret.reveal():
                text = text.replace(secret.reveal(), "***")
        return text


def create(config: ProviderConfig, zones: Iterable[str], store: Store) -> Route53Provider:
    """Registry factory (`type: route53`); Route 53 keeps the records, so no store is used."""
    assert isinstance(config, Route53ProviderConfig)
    return Route53Provider(config, zones)
