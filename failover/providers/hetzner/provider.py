"""Hetzner Cloud DNS through the official `hcloud` SDK (`type: hetzner`, docs/configuration.md).

hcloud is synchronous (requests), so every call runs in this provider's own thread pool behind
a semaphore of `max_concurrency`, under an asyncio deadline of `timeout` (`calls.py`): a hung
Hetzner API neither blocks the event loop nor starves other providers. The SDK's own retries
are off (its private `_retry_max_retries`, checked at start) so our tenacity policy alone
retries and counts.

- One RRSet per (name, type), names relative to the zone (`@` at the apex).
- apply: read the RRSets (one listing of the zone when there are more than a few), then per
  RRSet `create_rrset` when absent, else `set_rrset_records` when the values differ and
  `change_rrset_ttl` when the TTL differs (a planned switchover lowers TTLs
  through an ordinary change); every returned action is polled on `/actions/{id}` until
  `success`; an `error` action fails the change with its message.
- wait_in_sync: poll the zone until its status is `ok` (published to Hetzner's nameservers).
- Zones are looked up by name on first use and cached; a secondary zone (or a 422
  `incorrect_zone_mode`) is a configuration error naming the zone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from hcloud import Client
from hcloud.zones import ZoneRecord, ZoneRRSet

from failover.config.types import HetznerProviderConfig, ProviderConfig, Secret
from failover.model import Change, RecordKey, RecordSet, normalize_name
from failover.providers.base import (
    ProviderError,
    Receipt,
    check_key,
    check_values,
    gather_all,
    per_zone,
)
from failover.providers.hetzner import wire
from failover.providers.hetzner.calls import SdkCalls
from failover.store import Store

log = logging.getLogger("failover.providers.hetzner")

T = TypeVar("T")
ENV_TOKEN = "HCLOUD_TOKEN"
_LIST_ABOVE = 8  # more keys than this in one zone: list the zone's RRSets instead
_PAGE = 50  # RRSets per listing page (the API's maximum)
_MAX_PAGES = 10_000  # a server whose next_page never ends must not loop us forever


class HetznerProvider:
    """Hetzner Cloud DNS zones in primary mode."""

    poll_initial = 0.5  # action and zone status polls: first wait, then x1.5 up to poll_max
    poll_max = 5.0

    def __init__(
        self,
        config: HetznerProviderConfig,
        zones: Iterable[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.location = config.location
        self.on_error: Callable[[str], None] = lambda kind: None
        self._zones = None if zones is None else frozenset(map(normalize_name, zones))
        self._environ = os.environ if environ is None else environ
        self._token: Secret | None = None
        self._client: Client | None = None
        self._sdk_calls = SdkCalls(
            config,
            lambda kind: self.on_error(kind),
            lambda: self._token.reveal() if self._token is not None else "",
        )
        self._found: dict[str, Any] = {}  # zone name -> BoundZone
        self._zone_locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"HetznerProvider({self.name!r}, {self.config.api_endpoint!r})"

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Resolve the token (config, else $HCLOUD_TOKEN) and build the client; no API call,
        so the daemon starts even while Hetzner is down."""
        if self._client is not None:
            return
        token = self.config.token
        if token is None and self._environ.get(ENV_TOKEN):
            token = Secret(self._environ[ENV_TOKEN])
        if token is None:
            raise ProviderError(
                f"hetzner provider {self.name}: no API token; set `token` in its config "
                f"(e.g. token: ${{file:/run/secrets/hcloud}}) or {ENV_TOKEN} in the environment",
                kind="auth",
            )
        self._token = token
        client = Client(
            token=token.reveal(),
            api_endpoint=self.config.api_endpoint,
            application_name="failover",
            timeout=self.config.timeout,
        )
        for base in (client._client, client._client_hetzner):
            if not hasattr(base, "_retry_max_retries"):  # pragma: no cover - SDK changed
                raise ProviderError(
                    f"hetzner provider {self.name}: this hcloud version has no known way to "
                    "turn its own retries off; install hcloud 2.27 (failover[hetzner])",
                    kind="config",
                )
            base._retry_max_retries = 0  # our policy retries, and counts every attempt
        self._client = client
        self._sdk_calls.open()

    async def aclose(self) -> None:
        """Stop taking work; a thread stuck on a hung API ends by requests' own timeout."""
        self._sdk_calls.close()
        if self._client is not None:
            client, self._client = self._client, None
            client._client._session.close()
            client._client_hetzner._session.close()

    # -- read -----------------------------------------------------------------------------------

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordSet | None]:
        by_zone: dict[str, list[RecordKey]] = {}
        for key in keys:
            zone, _ = check_key(self.name, key, self._zones)
            by_zone.setdefault(zone, []).append(key)
        parts = await per_zone(self._forgetting(self._read_zone), by_zone)
        result: dict[RecordKey, RecordSet | None] = {}
        for part in parts.values():
            result.update(part)
        return {key: result[key] for key in keys}

    async def _read_zone(
        self, zone: str, keys: list[RecordKey]
    ) -> dict[RecordKey, RecordSet | None]:
        bound = await self._zone(zone)
        if len(keys) > _LIST_ABOVE:
            listed = await self._list(bound, zone, sorted({k.type.value for k in keys}))
            found = {(str(r.name).lower(), str(r.type)): r for r in listed}
            return {
                k: self._record_set(k, found.get((self._rel(k, zone), k.type.value))) for k in keys
            }
        currents = await gather_all(self._current(bound, zone, k) for k in keys)
        return dict(zip(keys, currents, strict=True))

    async def _list(self, bound: Any, zone: str, types: list[str]) -> list[Any]:
        """Every RRSet of `types` in the zone, a page per call (each under `timeout` and the
        retry policy, so a big zone is not one long call)."""
        listed: list[Any] = []
        page: int | None = 1
        for _ in range(_MAX_PAGES):
            if page is None:
                return listed
            result = await self._sdk_calls.call(
                f"list RRSets of {zone} (page {page})",
                self._sdk().zones.get_rrset_list,
                bound,
                type=types,
                page=page,
                per_page=_PAGE,
            )
            listed.extend(result.rrsets)
            pagination = result.meta.pagination if result.meta is not None else None
            following = pagination.next_page if pagination is not None else None
            page = following if following and following > page else None
        raise ProviderError(
            f"hetzner {self.name}: list RRSets of {zone}: more than {_MAX_PAGES} pages",
            kind="server",
        )

    async def _current(self, bound: Any, zone: str, key: RecordKey) -> RecordSet | None:
        """The RRSet of `key` as it is now, by a filtered listing: an absent RRSet is an empty
        page, not a 404 that would count as a provider error."""
        rel = self._rel(key, zone)
        page = await self._sdk_calls.call(
            f"read {rel}/{key.type} in {zone}",
            self._sdk().zones.get_rrset_list,
            bound,
            name=rel,
            type=[key.type.value],
        )
        rrsets = [r for r in page.rrsets if (str(r.name).lower(), r.type) == (rel, key.type.value)]
        return self._record_set(key, rrsets[0] if rrsets else None)

    def _record_set(self, key: RecordKey, rrset: Any) -> RecordSet | None:
        if rrset is None or not rrset.records:
            return None
        try:
            values = wire.from_api(key.type, [str(r.value) for r in rrset.records])
        except ValueError as exc:
            raise ProviderError(
                f"hetzner {self.name}: {key}: a record the API holds is not valid: {exc}",
                kind="invalid",
            ) from None
        ttl = rrset.ttl if rrset.ttl is not None else self._found_ttl(key.zone)
        return RecordSet(key.name, key.type, int(ttl), values)

    def _found_ttl(self, zone: str) -> int:
        """An RRSet without its own TTL uses the zone's default."""
        bound = self._found.get(normalize_name(zone))
        return int(bound.ttl or 0) if bound is not None else 0

    # -- apply ----------------------------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> Receipt:
        """Validate everything first; then per zone (in parallel) read the RRSets as they are
        (one listing when there are many), make the calls each needs, and await every action
        until `success`. Re-applying is harmless: each call sets a whole RRSet."""
        by_zone: dict[str, dict[RecordKey, tuple[int, tuple[str, ...]]]] = {}
        for change in changes:
            zone, _ = check_key(self.name, change.key, self._zones)
            by_zone.setdefault(zone, {})[change.key] = (change.ttl, check_values(change, zone))
        await per_zone(self._forgetting(self._apply_zone), by_zone)
        return Receipt(
            provider=self.name, change_ids=tuple(sorted(by_zone)), submitted_at=time.time()
        )

    async def _apply_zone(
        self, zone: str, sets: dict[RecordKey, tuple[int, tuple[str, ...]]]
    ) -> None:
        bound = await self._zone(zone)
        started = time.monotonic()
        found = await self._read_zone(zone, list(sets))
        calls = await gather_all(
            self._set_rrset(bound, zone, key, ttl, values, found[key])
            for key, (ttl, values) in sorted(sets.items())
        )
        log.info(
            "hetzner %s: zone %s: %d RRSet(s) set with %d action(s) (%.0f ms)",
            self.name,
            zone,
            len(sets),
            sum(calls),
            (time.monotonic() - started) * 1000,
        )

    async def _set_rrset(
        self,
        bound: Any,
        zone: str,
        key: RecordKey,
        ttl: int,
        values: tuple[str, ...],
        current: RecordSet | None,
    ) -> int:
        """The calls that make one RRSet `values` with `ttl`; returns how many actions ran."""
        zones = self._sdk().zones
        rel, rtype = self._rel(key, zone), key.type
        what = f"{rel}/{rtype} in {zone}"
        records = [ZoneRecord(value=v) for v in wire.to_api(rtype, values)]
        actions: list[Any] = []
        now: tuple[int | None, tuple[str, ...]] | None = None
        if current is not None:
            now = (current.ttl, current.values)
        else:
            created = await self._sdk_calls.call_or_none(
                f"create {what}",
                wire.EXISTS,
                zones.create_rrset,
                bound,
                name=rel,
                type=rtype.value,
                ttl=ttl,
                records=records,
            )
            if created is not None:
                actions.append(created.action)
            else:  # an earlier attempt created it but its answer was lost: set it instead
                now = (None, ())
        if now is not None:
            rrset = ZoneRRSet(name=rel, type=rtype.value, zone=bound)
            if now[1] != values:
                actions.append(
                    await self._sdk_calls.call(
                        f"set records of {what}", zones.set_rrset_records, rrset, records
                    )
                )
            if now[0] != ttl:
                actions.append(
                    await self._sdk_calls.call(
                        f"change TTL of {what}", zones.change_rrset_ttl, rrset, ttl
                    )
                )
        await gather_all(self._finished(a, what) for a in actions)
        return len(actions)

    async def _finished(self, action: Any, what: str) -> None:
        """Poll `/actions/{id}` until the action is no longer running, within change_timeout."""
        delay = self.poll_initial
        try:
            async with asyncio.timeout(self.config.change_timeout):
                while action.status == "running":
                    await asyncio.sleep(delay)
                    delay = min(delay * 1.5, self.poll_max)
                    action = await self._sdk_calls.call(
                        f"status of action {action.id} ({what})",
                        self._sdk().actions.get_by_id,
                        action.id,
                    )
        except TimeoutError:
            raise self._sdk_calls.counted(
                f"hetzner {self.name}: {what}: action {action.id} still running after "
                f"{self.config.change_timeout:g}s",
                "timeout",
            ) from None
        if action.status != "success":
            error = action.error or {}
            message = error.get("message") or f"status {action.status}"
            code = error.get("code") or "error"
            raise self._sdk_calls.counted(
                self._sdk_calls.redact(
                    f"hetzner {self.name}: {what}: action {action.id} failed: {message} ({code})"
                ),
                "action",
            )

    # -- wait -----------------------------------------------------------------------------------

    async def wait_in_sync(self, receipt: Receipt, timeout: float) -> None:
        """Poll each changed zone until Hetzner reports it `ok` (pushed to its nameservers)."""
        deadline = min(timeout, self.config.change_timeout)
        pending = set(receipt.change_ids)
        try:
            async with asyncio.timeout(deadline):
                await gather_all(self._zone_ok(z, pending) for z in receipt.change_ids)
        except TimeoutError:
            raise self._sdk_calls.counted(
                f"hetzner {self.name}: zone(s) {', '.join(sorted(pending))} still not published "
                f"after {deadline:g}s",
                "timeout",
                retryable=True,
            ) from None

    async def _zone_ok(self, zone: str, pending: set[str]) -> None:
        delay = self.poll_initial
        while True:
            bound = await self._sdk_calls.call(
                f"status of zone {zone}", self._sdk().zones.get, zone
            )
            if bound.status == "ok":
                pending.discard(zone)
                return
            if bound.status == "error":
                raise self._sdk_calls.counted(
                    f"hetzner {self.name}: zone {zone} failed to publish (status error)",
                    "zone_status",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, self.poll_max)

    # -- zones ----------------------------------------------------------------------------------

    async def _zone(self, zone: str) -> Any:
        """The zone's BoundZone, looked up once; a zone not in primary mode is refused."""
        cached = self._found.get(zone)
        if cached is not None:
            return cached
        async with self._zone_locks.setdefault(zone, asyncio.Lock()):
            if zone in self._found:
                return self._found[zone]
            try:
                bound = await self._sdk_calls.call(f"find zone {zone}", self._sdk().zones.get, zone)
            except ProviderError as exc:
                if exc.kind == "not_found":
                    exc.args = (
                        f"hetzner {self.name}: no zone {zone} in this token's project: "
                        "create it in the Hetzner Console or fix the record's zone",
                    )
                raise
            if bound.mode != "primary":
                message = f"hetzner {self.name}: zone {zone}: " + wire.zone_mode(str(bound.mode))
                raise self._sdk_calls.counted(message, "config")
            self._found[zone] = bound
            log.info("hetzner %s: zone %s is zone %s", self.name, zone, bound.id)
            return bound

    def _forgetting(
        self, work: Callable[[str, Any], Awaitable[T]]
    ) -> Callable[[str, Any], Awaitable[T]]:
        """`work` on one zone, forgetting the zone's cached id when the API says it is gone
        (deleted and created again has a new id): the next attempt looks it up by name."""

        async def run(zone: str, item: Any) -> T:
            try:
                return await work(zone, item)
            except ProviderError as exc:
                if exc.kind == "not_found":
                    self._found.pop(zone, None)
                raise

        return run

    # -- calls and errors -----------------------------------------------------------------------

    def _sdk(self) -> Client:
        if self._client is None:
            raise ProviderError(f"hetzner {self.name}: not started", kind="state")
        return self._client

    def _rel(self, key: RecordKey, zone: str) -> str:
        return wire.rrset_name(normalize_name(key.name), zone)


def create(config: ProviderConfig, zones: Iterable[str], store: Store) -> HetznerProvider:
    """Registry factory (`type: hetzner`); Hetzner keeps the records, so no store is used."""
    if not isinstance(config, HetznerProviderConfig):
        raise TypeError(f"expected a hetzner provider config, got {config.type}")
    return HetznerProvider(config, zones)
