"""OVHcloud DNS through the official `ovh` package (python-ovh): provider `ovh`.

python-ovh brings what OVH users already have: endpoint names, the `$1$` request signature
with `/auth/time` skew correction, OAuth2 client credentials and the `OVH_*`/`ovh.conf`
conventions. It is synchronous (`requests`), so every call runs in this provider's own small
thread pool (never the loop's shared default executor, which a hung OVH would otherwise starve
for Route 53 and the state store) behind a semaphore, a token-bucket rate limit and explicit
`(connect, read)` timeouts.

OVH facts this module is built around (the API's documentation, python-ovh):
- the record list returns ids only, and its filters are "like" filters, so every id is fetched
  and matched exactly on subDomain and fieldType;
- writes are staged: nothing is served until `POST /domain/zone/{zone}/refresh`, so the refresh
  is part of the change and its failure fails the change (Terraform only logged it);
- identical duplicate records exist; surplus ids are deleted one by one, 404 tolerated;
- CNAME targets are written with a trailing dot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import ovh.exceptions

from failover.config.types import OvhProviderConfig, ProviderConfig
from failover.model import (
    Change,
    RecordKey,
    RecordSet,
    RecordType,
    canonical_value,
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
    relative_name,
)
from failover.providers.ovh_client import RateLimiter, make_client, map_error, prepare
from failover.providers.retry import with_retries
from failover.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Record:
    id: int
    target: str
    ttl: int


class OvhProvider:
    """Reads and replaces A/AAAA/CNAME RRsets in OVH-hosted zones; one refresh per zone."""

    status_poll_interval = 2.0  # wait_in_sync: seconds between `GET .../status` polls

    def __init__(self, config: OvhProviderConfig, zones: Iterable[str] | None = None) -> None:
        self.config = config
        self.name = config.name
        self.location = config.location
        self.on_error: Callable[[str], None] = lambda kind: None
        self._zones = None if zones is None else frozenset(map(normalize_name, zones))
        self._client: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        self._limiter = RateLimiter(config.rate_limit)
        self._zone_locks: dict[str, asyncio.Lock] = {}
        self._unrefreshed: set[str] = set()  # zones with writes stored at OVH but not live
        self._tasks: set[asyncio.Task[Any]] = set()
        self._prepared = False  # the /auth/time delta or first OAuth2 token is fetched
        self._prepare_lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._client is not None:
            return
        self._client = make_client(self.config)
        self._executor = ThreadPoolExecutor(
            max_workers=self.config.max_concurrency, thread_name_prefix=f"ovh-{self.name}"
        )

    async def aclose(self) -> None:
        """Let in-flight zone batches finish (they end with the refresh), then drop threads."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.config.retry.deadline)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._client is not None:
            self._client._session.close()
            oauth = self._client._oauth2
            if oauth is not None and oauth._session is not None:
                oauth._session.close()
            self._client = None

    # -- one API call ---------------------------------------------------------------------------

    async def _call(self, method: str, path: str, **params: Any) -> Any:
        """One python-ovh call in our thread pool, rate-limited; errors mapped and retried."""

        async def attempt() -> Any:
            if self._client is None or self._executor is None:
                raise ProviderError(f"ovh {self.name}: provider not started", kind="config")
            executor, loop = self._executor, asyncio.get_running_loop()
            await self._limiter.acquire()
            async with self._semaphore:
                try:
                    if not self._prepared:
                        async with self._prepare_lock:
                            if not self._prepared:
                                await loop.run_in_executor(executor, prepare, self._client)
                                self._prepared = True
                    return await loop.run_in_executor(
                        executor, lambda: self._invoke(method, path, params)
                    )
                except ovh.exceptions.APIError as exc:
                    raise map_error(f"ovh {self.name}: {method} {path}", exc) from None

        return await with_retries(attempt, self.config.retry, self.on_error)

    def _invoke(self, method: str, path: str, params: dict[str, Any]) -> Any:
        client = self._client
        if method == "GET":
            return client.get(path, **params)
        if method == "DELETE":
            return client.delete(path, **params)
        if method == "POST":
            return client.post(path, **params)
        return client.put(path, **params)

    # -- keys and records -----------------------------------------------------------------------

    def _locate(self, key: RecordKey) -> tuple[str, str]:
        """(zone, subDomain relative to the zone, "" at the apex) of a key we may touch."""
        zone, name = check_key(self.name, key, self._zones)
        return zone, relative_name(name, zone)

    async def _records(self, zone: str, sub: str, rtype: RecordType) -> list[_Record]:
        """Every record of (subDomain, fieldType): ids from the list, then each one fetched."""
        base = f"/domain/zone/{zone}/record"
        ids = await self._call("GET", base, fieldType=rtype.value, subDomain=sub)

        async def fetch(record_id: int) -> _Record | None:
            try:
                raw = await self._call("GET", f"{base}/{record_id}")
            except ProviderError as exc:
                if exc.kind == "not_found":  # deleted between the list and this read
                    return None
                raise
            if str(raw.get("fieldType", "")).upper() != rtype.value:
                return None  # the filters are "like" filters: match exactly here
            if normalize_name(str(raw.get("subDomain") or "")) != sub:
                return None
            target = str(raw.get("target", ""))
            if rtype is RecordType.CNAME:  # zone-file semantics: without the dot, relative
                target = target[:-1] if target.endswith(".") else f"{target}.{zone}"
            return _Record(int(raw["id"]), target, int(raw.get("ttl") or 0))

        fetched = await asyncio.gather(*(fetch(int(i)) for i in ids))
        return [r for r in fetched if r is not None]

    @staticmethod
    def _value(rtype: RecordType, record: _Record) -> str | None:
        try:
            return canonical_value(rtype, record.target)
        except ValueError:
            return None

    async def _zone_ttl(self, zone: str) -> int:
        """The zone's default TTL (the SOA's `ttl`), which a record TTL of 0 stands for."""
        soa = await self._call("GET", f"/domain/zone/{zone}/soa")
        return int(soa["ttl"])

    # -- provider interface ---------------------------------------------------------------------

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordSet | None]:
        located = [(key, *self._locate(key)) for key in keys]
        # Records stored but never refreshed would read as done while DNS still serves the old
        # answer; publish them first so what we report is what is served.
        for zone in {zone for _, zone, _ in located} & self._unrefreshed:
            async with self._zone_lock(zone):
                if zone in self._unrefreshed:
                    await self._refresh(zone)
        found = await asyncio.gather(
            *(self._records(zone, sub, k.type) for k, zone, sub in located)
        )
        # A record TTL of 0 means "the zone's default": fetch that once per zone that needs it.
        pairs = zip(located, found, strict=True)
        need = sorted({zone for (_, zone, _), rs in pairs if any(r.ttl <= 0 for r in rs)})
        ttls = await asyncio.gather(*(self._zone_ttl(zone) for zone in need))
        defaults = dict(zip(need, ttls, strict=True))
        result: dict[RecordKey, RecordSet | None] = {}
        for (key, zone, _), records in zip(located, found, strict=True):
            if not records:
                result[key] = None
                continue
            try:
                values = canonical_values(key.type, (r.target for r in records))
            except ValueError as exc:
                raise ProviderError(
                    f"{key}: unexpected value at OVH: {exc}", kind="invalid"
                ) from None
            ttl = min(r.ttl if r.ttl > 0 else defaults[zone] for r in records)
            result[key] = RecordSet(normalize_name(key.name), key.type, ttl, values)
        return result

    async def apply(self, changes: Sequence[Change]) -> Receipt:
        """Zones run in parallel, each ending with one refresh; a cancelled caller does not stop
        a zone batch half-way (it would leave writes stored but not live)."""
        by_zone: dict[str, list[tuple[Change, str]]] = {}
        for change in changes:
            zone, sub = self._locate(change.key)
            check_values(change, zone)  # before any write of the batch
            by_zone.setdefault(zone, []).append((change, sub))
        tasks = []
        for zone, items in by_zone.items():
            task = asyncio.ensure_future(self._apply_zone(zone, items))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
            tasks.append(task)
        try:
            outcomes = await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))
        except asyncio.CancelledError:
            for task in tasks:  # nobody will see their outcome now: say it in the log
                task.add_done_callback(self._log_orphan)
            raise
        errors: list[ProviderError] = []
        refreshed: list[str] = []
        for zone, outcome in zip(by_zone, outcomes, strict=True):
            if isinstance(outcome, ProviderError):
                errors.append(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                refreshed.append(zone)
                errors.extend(outcome)
        if errors:
            raise _combine(errors)
        return Receipt(provider=self.name, change_ids=tuple(refreshed), submitted_at=time.time())

    async def wait_in_sync(self, receipt: Receipt, timeout: float) -> None:
        """Poll each refreshed zone's `GET /domain/zone/{zone}/status` until `isDeployed`.

        A status route that answers 404 or 403 (not granted to this key) is taken as "no
        deployment status to wait for": the refresh succeeded and `verify` checks the servers.
        """

        async def zone_deployed(zone: str) -> None:
            path = f"/domain/zone/{zone}/status"
            while True:
                try:
                    status = await self._call("GET", path)
                except ProviderError as exc:
                    if exc.kind in ("not_found", "auth"):
                        log.debug("ovh %s: no deployment status for %s: %s", self.name, zone, exc)
                        return
                    raise
                if isinstance(status, dict) and status.get("isDeployed") is True:
                    return
                await asyncio.sleep(self.status_poll_interval)

        polls = [asyncio.ensure_future(zone_deployed(zone)) for zone in receipt.change_ids]
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*polls)
        except TimeoutError:
            raise ProviderError(
                f"ovh {self.name}: zones {', '.join(receipt.change_ids)} refreshed but not "
                f"reported deployed after {timeout:g}s",
                kind="timeout",
                retryable=True,
            ) from None
        finally:
            for poll in polls:  # one zone failed: stop polling the others
                poll.cancel()

    # -- apply internals ------------------------------------------------------------------------

    def _zone_lock(self, zone: str) -> asyncio.Lock:
        return self._zone_locks.setdefault(zone, asyncio.Lock())

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here; apply() reports it to its caller

    def _log_orphan(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        failures = [exc] if exc is not None else task.result()
        for failure in failures:
            log.warning("ovh %s: a change whose caller gave up failed: %s", self.name, failure)

    async def _apply_zone(self, zone: str, items: list[tuple[Change, str]]) -> list[ProviderError]:
        """Replace each RRset of one zone, then refresh it once.

        Returns the per-change errors when the refresh succeeded; raises the refresh error
        otherwise. The zone is refreshed even when some changes failed: whatever was stored
        must go live (or be reported), and the failed ones are retried by the engine."""
        async with self._zone_lock(zone):
            per_zone = asyncio.Semaphore(self.config.max_concurrency)  # fairness across zones

            async def one(change: Change, sub: str) -> ProviderError | None:
                async with per_zone:
                    try:
                        await self._replace(zone, sub, change)
                    except ProviderError as exc:
                        return exc
                    return None

            outcomes = await asyncio.gather(*(one(change, sub) for change, sub in items))
            errors = [e for e in outcomes if e is not None]
            if len(errors) == len(items) and zone not in self._unrefreshed:
                raise _combine(errors)  # nothing stored, nothing to publish
            # A no-op change still refreshes: its records may be stored but never published.
            self._unrefreshed.add(zone)
            await self._refresh(zone)
            return errors

    async def _refresh(self, zone: str) -> None:
        try:
            await self._call("POST", f"/domain/zone/{zone}/refresh")
        except ProviderError as exc:
            error = ProviderError(
                f"ovh {self.name}: zone {zone}: records are stored at OVH but NOT live until "
                f"the zone is refreshed (POST /domain/zone/{zone}/refresh failed: {exc})",
                kind="refresh",
                retryable=exc.retryable,
            )
            error.counted = exc.counted  # each failed attempt was already counted by its kind
            raise error from None
        self._unrefreshed.discard(zone)

    async def _replace(self, zone: str, sub: str, change: Change) -> None:
        """Make (sub, type) hold exactly `change.after` with `change.ttl`.

        Existing ids are reused (PUT) before new ones are created (POST), and surplus ids,
        identical duplicates included, are deleted only once every wanted value is stored, so
        a failure half-way never leaves the RRset empty."""
        rtype = change.key.type
        wanted = canonical_values(rtype, change.after)
        existing = await self._records(zone, sub, rtype)
        keep: dict[str, _Record] = {}
        spare: list[_Record] = []
        for record in sorted(existing, key=lambda r: (r.ttl != change.ttl, r.id)):
            value = self._value(rtype, record)
            if value in wanted and value not in keep:
                keep[value] = record
            else:
                spare.append(record)
        base = f"/domain/zone/{zone}/record"
        writes = []
        for value in wanted:
            kept = keep.get(value)
            if kept is None:
                reuse = spare.pop(0) if spare else None
                writes.append(self._put_or_post(zone, sub, rtype, value, change.ttl, reuse))
            elif kept.ttl != change.ttl:
                writes.append(self._put_or_post(zone, sub, rtype, value, change.ttl, kept))
        await gather_all(writes)

        async def delete(record: _Record) -> None:
            self._unrefreshed.add(zone)
            try:
                await self._call("DELETE", f"{base}/{record.id}")
            except ProviderError as exc:
                if exc.kind != "not_found":  # already gone: that is what we wanted
                    raise

        await gather_all([delete(record) for record in spare])

    async def _put_or_post(
        self, zone: str, sub: str, rtype: RecordType, value: str, ttl: int, reuse: _Record | None
    ) -> None:
        target = f"{value}." if rtype is RecordType.CNAME else value
        base = f"/domain/zone/{zone}/record"
        self._unrefreshed.add(zone)
        if reuse is not None:
            try:
                await self._call("PUT", f"{base}/{reuse.id}", subDomain=sub, target=target, ttl=ttl)
                return
            except ProviderError as exc:
                if exc.kind != "not_found":  # deleted under us: create instead
                    raise
        await self._call("POST", base, fieldType=rtype.value, subDomain=sub, target=target, ttl=ttl)


def _combine(errors: list[ProviderError]) -> ProviderError:
    """One error for several failed changes of a batch (the rule is combined_error's)."""
    if len(errors) == 1:
        return errors[0]
    shown = "; ".join(str(e) for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return combined_error(f"{len(errors)} changes failed: {shown}{more}", errors)


def create(config: ProviderConfig, zones: Iterable[str], store: Store) -> OvhProvider:
    """Registry factory (`type: ovh`); OVH keeps the records, so the store is not used."""
    assert isinstance(config, OvhProviderConfig)
    return OvhProvider(config, zones)
