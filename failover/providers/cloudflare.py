"""Cloudflare DNS through the official `cloudflare` SDK's async client (`AsyncCloudflare`).

- The client lives on the daemon's loop (created in `start`), with the SDK's own retries off
  (`max_retries=0`): our retry policy owns them, so every failed attempt is counted. Each call
  also runs under `asyncio.timeout(config.timeout)`, whatever httpx's per-read timeouts allow.
- Zone ids are looked up by name (`GET /zones?name=`) once and cached.
- read: `GET /zones/{id}/dns_records?name.exact=&type=`, paged until a short page.
- apply: per zone, the current records of the changed names are read and the difference is
  sent as `POST /zones/{id}/dns_records/batch` calls of at most `batch_size` operations
  (`cloudflare_batch`), zones in parallel. An attempt is read-then-write, so a retry after a
  lost answer re-reads instead of posting a value twice.
- Proxied records answer with Cloudflare's addresses: no authoritative query can verify them.
  A name is published proxied only when listed under `proxied` (which the config accepts only
  with `verify: api`), and a record found proxied at Cloudflare but not listed is refused
  rather than silently unproxied. Their TTL is Cloudflare's "automatic" (1): read() reports
  the TTL last asked for instead, so the engine does not see a TTL to correct at every read
  (after a restart it sees one once, and the apply that follows sends nothing).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

try:
    import cloudflare
except ModuleNotFoundError:  # an optional extra: the error says how to install it, at start
    cloudflare = None  # type: ignore[assignment]

from failover.config.types import CloudflareProviderConfig, ProviderConfig, Secret
from failover.model import Change, RecordKey, RecordSet, RecordType, canonical_values
from failover.model import normalize_name as _norm
from failover.providers.base import (
    Provider,
    ProviderError,
    Receipt,
    check_key,
    check_values,
    gather_all,
    per_zone,
)
from failover.providers.cloudflare_batch import AUTO_TTL, Batch, Existing, Wanted, plan_batches
from failover.providers.retry import kind_of_status, with_retries
from failover.retrying import parse_retry_after
from failover.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
ENV_TOKEN = "CLOUDFLARE_API_TOKEN"
_MAX_PAGES = 1000  # a server that never returns a short page must not loop us forever
_FEW_NAMES = 8  # above this many names in one zone's change, list the zone once instead
_GONE = 81044  # "Record does not exist.": changed behind our back since we read the zone


class CloudflareError(ProviderError):
    """A failed Cloudflare call; `retry_after` is the server's Retry-After in seconds, if any."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retryable: bool,
        retry_after: float | None = None,
        codes: tuple[int, ...] = (),
    ) -> None:
        super().__init__(message, kind=kind, retryable=retryable)
        self.retry_after = retry_after
        self.codes = codes  # Cloudflare's error codes, from the envelope's `errors`


class CloudflareProvider:
    """Cloudflare zones; one instance per configured `type: cloudflare` provider."""

    def __init__(
        self,
        config: CloudflareProviderConfig,
        zones: Iterable[str] | None = None,
        store: object = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.location = config.location
        self.on_error: Callable[[str], None] = lambda kind: None
        self.batches = 0  # batch calls sent (benchmarks and tests report it)
        self._zones = None if zones is None else frozenset(map(_norm, zones))
        self._environ = os.environ if environ is None else environ
        self._token: Secret | None = None
        self._client: cloudflare.AsyncCloudflare | None = None
        self._zone_ids: dict[str, str] = {}
        self._asked: dict[tuple[str, RecordType], int] = {}  # TTL asked of proxied RRsets
        self._slots = asyncio.Semaphore(config.max_concurrency)

    def __repr__(self) -> str:
        return f"CloudflareProvider({self.name!r}, base_url={self.config.base_url!r})"

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Resolve the token (config, else $CLOUDFLARE_API_TOKEN) and build the client; no API
        call, so the daemon starts even while Cloudflare is unreachable."""
        if self._client is not None:
            return
        if cloudflare is None:
            raise ProviderError(
                f"cloudflare provider {self.name}: the `cloudflare` package is not installed; "
                "install it with: pip install 'failover[cloudflare]'",
                kind="config",
            )
        token = self.config.api_token
        if token is None and self._environ.get(ENV_TOKEN):
            token = Secret(self._environ[ENV_TOKEN])
        if token is None:
            raise ProviderError(
                f"cloudflare provider {self.name}: no API token; set `api_token` in its config "
                f"(e.g. api_token: ${{file:/run/secrets/cloudflare}}) or {ENV_TOKEN} in the "
                "environment",
                kind="auth",
            )
        self._token = token
        client = cloudflare.AsyncCloudflare(
            api_token=token.reveal(),
            base_url=self.config.base_url,
            timeout=self.config.timeout,
            max_retries=0,
        )
        # The SDK also reads CLOUDFLARE_EMAIL, CLOUDFLARE_API_KEY and a user service key from
        # the environment, and an email there would replace the token in every request (and
        # send a global API key along): the token is the only credential we use.
        client.api_email = client.api_key = client.user_service_key = None
        self._client = client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- provider interface ---------------------------------------------------------------------

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordSet | None]:
        """One filtered, paged listing per (zone, name); the types of a name share it."""
        groups: dict[tuple[str, str], list[RecordKey]] = {}
        for key in keys:
            groups.setdefault(check_key(self.name, key, self._zones), []).append(key)
        found = await gather_all(self._read_retried(zone, name) for zone, name in groups)
        result: dict[RecordKey, RecordSet | None] = {}
        for group, records in zip(groups.values(), found, strict=True):
            for key in group:
                result[key] = self._record_set(key, records.get(key.type, []))
        return {key: result[key] for key in keys}

    async def apply(self, changes: Sequence[Change]) -> Receipt:
        """Validate everything first, then each zone's batches, zones in parallel. A failed
        zone does not stop the others; the error names those that failed and those applied."""
        by_zone: dict[str, dict[tuple[str, RecordType], Wanted]] = {}
        for change in changes:
            zone, name = check_key(self.name, change.key, self._zones)
            values = check_values(change, zone)
            proxied = self._proxied(name)
            if proxied and change.key.type not in (RecordType.A, RecordType.AAAA, RecordType.CNAME):
                raise ProviderError(
                    f"{change.key}: only A, AAAA and CNAME records can be proxied", kind="invalid"
                )
            wanted = Wanted(name, change.key.type, change.ttl, values, proxied)
            by_zone.setdefault(zone, {})[(name, change.key.type)] = wanted
        zones = sorted(by_zone)

        async def apply_zone(zone: str, wanted: dict[tuple[str, RecordType], Wanted]) -> None:
            await self._apply_zone(zone, list(wanted.values()))
            # applied: remember the TTL asked of its proxied record sets
            self._asked.update({(w.name, w.type): w.ttl for w in wanted.values() if w.proxied})

        await per_zone(
            apply_zone,
            {zone: by_zone[zone] for zone in zones},
            label=f"cloudflare {self.name}",
            done_word="applied",
        )
        return Receipt(provider=self.name, change_ids=tuple(zones), submitted_at=time.time())

    async def wait_in_sync(self, receipt: Receipt, timeout: float) -> None:
        """Nothing to wait for: a batch returns once committed, and Cloudflare's API has no
        propagation status to poll (its edge updates each record on its own, within seconds).
        What the servers answer is established by verification."""

    # -- the calls ------------------------------------------------------------------------------

    async def _apply_zone(self, zone: str, wanted: list[Wanted]) -> None:
        async with self._slots:
            await self._call(lambda: self._write_zone(zone, wanted), zone)

    async def _write_zone(self, zone: str, wanted: list[Wanted]) -> None:
        """One attempt: read what is there, send the difference in batches. Re-run as a whole
        by the retry policy, so batches already committed are not sent again."""
        started = time.monotonic()
        types: dict[str, set[RecordType]] = {}
        for w in wanted:
            types.setdefault(w.name, set()).add(w.type)
        if len(types) <= _FEW_NAMES:
            parts = await gather_all(
                self._list(zone, {"name": {"exact": n}, **_only(ts)}) for n, ts in types.items()
            )
            records = [r for part in parts for r in part]
        else:  # a mass failover: the whole zone (of the changed types) in a few pages
            records = await self._list(zone, _only({w.type for w in wanted}))
        existing: dict[tuple[str, RecordType], list[Existing]] = {}
        keys = {(w.name, w.type): w for w in wanted}
        for record in records:
            name, rtype = _norm(str(record.get("name", ""))), _type(record.get("type"))
            if rtype is None or (name, rtype) not in keys:
                continue
            existing.setdefault((name, rtype), []).append(self._existing(name, rtype, record))
        for (name, rtype), found in existing.items():
            if any(r.proxied for r in found) and not keys[(name, rtype)].proxied:
                raise ProviderError(
                    f"cloudflare {self.name}: {name} {rtype.value} is proxied at Cloudflare, so "
                    "no authoritative server can verify a change to it; list it under "
                    "`proxied` with `verify: api` on this provider, or turn its proxy off",
                    kind="invalid",
                )
        batches = plan_batches(wanted, existing, self.config.batch_size)
        zone_id = await self._zone_id(zone)
        for number, batch in enumerate(batches, 1):
            try:
                await self._send(zone, zone_id, batch, f"batch {number}/{len(batches)}")
            except CloudflareError as exc:
                if number > 1:  # each batch is its own transaction: say what went through
                    exc.args = (f"{exc} ({number - 1} of {len(batches)} batches applied)",)
                raise
        log.info(
            "cloudflare %s: zone %s: %d record set(s) in %d batch call(s) (%.0f ms)",
            self.name,
            zone,
            len(wanted),
            len(batches),
            (time.monotonic() - started) * 1000,
        )

    async def _send(self, zone: str, zone_id: str, batch: Batch, what: str) -> None:
        client = self._need_client()
        self.batches += 1
        try:
            await self._send_once(client, zone, zone_id, batch, what)
        except CloudflareError as exc:
            if _GONE in exc.codes:  # a record we read was deleted since: read again, retry
                exc.retryable = True
            raise

    async def _send_once(
        self,
        client: cloudflare.AsyncCloudflare,
        zone: str,
        zone_id: str,
        batch: Batch,
        what: str,
    ) -> None:
        await self._attempt(
            client.dns.records.batch(
                zone_id=zone_id,
                deletes=batch.deletes,  # type: ignore[arg-type]
                patches=batch.patches,  # type: ignore[arg-type]
                posts=batch.posts,  # type: ignore[arg-type]
            ),
            f"{what} of {zone} ({len(batch.deletes)} deletes, {len(batch.patches)} patches, "
            f"{len(batch.posts)} posts)",
        )

    async def _read_retried(self, zone: str, name: str) -> dict[RecordType, list[Existing]]:
        return await self._call(lambda: self._read_name(zone, name), zone)

    async def _read_name(self, zone: str, name: str) -> dict[RecordType, list[Existing]]:
        by_type: dict[RecordType, list[Existing]] = {}
        for record in await self._list(zone, {"name": {"exact": name}}):
            rtype = _type(record.get("type"))
            if rtype is None or _norm(str(record.get("name", ""))) != name:
                continue  # MX, TXT… of the same name, or a filter looser than asked
            by_type.setdefault(rtype, []).append(self._existing(name, rtype, record))
        return by_type

    async def _list(self, zone: str, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Every record matching `query`, page after page (until a short or empty one)."""
        zone_id = await self._zone_id(zone)
        client = self._need_client()
        per_page = self.config.page_size
        out: list[dict[str, Any]] = []
        for page in range(1, _MAX_PAGES + 1):
            found = await self._attempt(
                client.dns.records.list(zone_id=zone_id, page=page, per_page=per_page, **query),
                f"list records of {zone}",
            )
            items = [_as_dict(r) for r in found.result or []]
            out.extend(items)
            info = found.result_info
            total_pages = getattr(info, "total_pages", None) if info is not None else None
            if len(items) < per_page or (isinstance(total_pages, int) and page >= total_pages):
                return out
        raise ProviderError(
            f"cloudflare {self.name}: list records of {zone}: more than {_MAX_PAGES} pages",
            kind="server",
            retryable=True,
        )

    async def _zone_id(self, zone: str) -> str:
        cached = self._zone_ids.get(zone)
        if cached is not None:
            return cached
        client = self._need_client()
        page = await self._attempt(client.zones.list(name=zone), f"look up zone {zone}")
        for item in page.result or []:
            if _norm(str(getattr(item, "name", ""))) == zone and getattr(item, "id", None):
                self._zone_ids[zone] = str(item.id)
                return self._zone_ids[zone]
        raise ProviderError(
            f"cloudflare {self.name}: zone {zone} not found; check that it is in the token's "
            "account and that the token has Zone:Read and DNS:Edit on it",
            kind="not_found",
        )

    def _existing(self, name: str, rtype: RecordType, record: dict[str, Any]) -> Existing:
        try:
            (value,) = canonical_values(rtype, [str(record.get("content", ""))])
            return Existing(
                str(record["id"]), value, int(record.get("ttl", 1)), bool(record.get("proxied"))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError(
                f"cloudflare {self.name}: {name} {rtype.value}: unexpected record from the API: "
                f"{exc}",
                kind="invalid",
            ) from None

    def _record_set(self, key: RecordKey, records: list[Existing]) -> RecordSet | None:
        if not records:
            return None
        values = canonical_values(key.type, (r.value for r in records))
        ttl = min(r.ttl for r in records)
        if ttl == AUTO_TTL and all(r.proxied for r in records):
            ttl = self._asked.get((_norm(key.name), key.type), AUTO_TTL)
        return RecordSet(key.name, key.type, ttl, values)

    def _proxied(self, name: str) -> bool:
        proxied = self.config.proxied
        return proxied if isinstance(proxied, bool) else name in proxied

    # -- errors and retries ---------------------------------------------------------------------

    async def _call(self, call: Callable[[], Awaitable[T]], zone: str) -> T:
        """`call` under the retry policy (waiting at least a 429's Retry-After). A zone that
        is not found any more is looked up again next time (deleted and re-added: a new id)."""
        try:
            return await with_retries(
                call,
                self.config.retry,
                self.on_error,
                retry_after=lambda exc: getattr(exc, "retry_after", None),
            )
        except ProviderError as exc:
            if exc.kind == "not_found":
                self._zone_ids.pop(zone, None)
            raise

    async def _attempt(self, request: Awaitable[T], what: str) -> T:
        """One API call under the per-call timeout, its failure as a ProviderError marked
        retryable or not and never carrying the token."""
        prefix = f"cloudflare {self.name}: {what}"
        try:
            async with asyncio.timeout(self.config.timeout):
                return await request
        except (TimeoutError, cloudflare.APITimeoutError):
            error = ProviderError(
                f"{prefix}: no answer within {self.config.timeout:g}s",
                kind="timeout",
                retryable=True,
            )
        except cloudflare.APIStatusError as exc:
            error = self._status_error(prefix, exc)
        except cloudflare.APIConnectionError as exc:
            problem = self._redact(str(exc.__cause__ or exc)) or type(exc).__name__
            error = ProviderError(f"{prefix}: {problem}", kind="connection", retryable=True)
        except cloudflare.APIError as exc:  # a body the SDK could not read
            error = ProviderError(
                f"{prefix}: unexpected answer from the API: {self._redact(exc.message)}",
                kind="server",
                retryable=True,
            )
        log.warning("%s%s", error, " (retryable)" if error.retryable else "")
        raise error

    def _status_error(self, prefix: str, exc: cloudflare.APIStatusError) -> CloudflareError:
        status = exc.status_code
        kind, retryable = kind_of_status(status, "invalid")
        details = "; ".join(f"{e.code}: {e.message}" for e in exc.errors or [])
        if not details:
            body = exc.body if isinstance(exc.body, str) else ""
            details = body.strip()[:300] or "(no error details)"
        message = f"{prefix}: HTTP {status}: {self._redact(details)}"
        if status in (401, 403):
            message += " (the token is invalid, or lacks DNS:Edit on this zone)"
        retry_after = parse_retry_after(exc.response.headers.get("Retry-After"))
        if status == 429 and retry_after is not None:
            message += f" (Retry-After {retry_after:g}s)"
            if retry_after > self.config.retry.deadline:
                retryable = False
                message += f", beyond the retry deadline of {self.config.retry.deadline:g}s"
        codes = tuple(e.code for e in exc.errors or [] if isinstance(e.code, int))
        return CloudflareError(
            message, kind=kind, retryable=retryable, retry_after=retry_after, codes=codes
        )

    def _redact(self, text: str) -> str:
        token = self._token.reveal() if self._token is not None else ""
        return text.replace(token, "***") if token else text

    def _need_client(self) -> cloudflare.AsyncCloudflare:
        if self._client is None:
            raise ProviderError(f"cloudflare {self.name}: used before start()", kind="internal")
        return self._client


def create(config: ProviderConfig, zones: Iterable[str], store: Store) -> Provider:
    """The registry's factory for `type: cloudflare`."""
    if not isinstance(config, CloudflareProviderConfig):
        raise TypeError(f"expected a cloudflare provider config, got {config.type}")
    return CloudflareProvider(config, zones, store)


def _only(types: set[RecordType]) -> dict[str, str]:
    """The listing filter for `types`: one type is filtered by the API, several locally."""
    return {"type": next(iter(types)).value} if len(types) == 1 else {}


def _type(raw: object) -> RecordType | None:
    try:
        return RecordType(str(raw))
    except ValueError:
        return None


def _as_dict(record: Any) -> dict[str, Any]:
    """An SDK record model (a union over record types) as the plain fields we use."""
    return {
        k: getattr(record, k, None) for k in ("id", "name", "type", "content", "ttl", "proxied")
    }
