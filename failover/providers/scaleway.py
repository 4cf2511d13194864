"""Scaleway Domains and DNS (`/domain/v2beta1`) over plain aiohttp.

Not the `scaleway` SDK: its async flavour calls blocking `requests` and sets no timeout, so one
slow API call would freeze probes and every other provider. Here every request has
`ClientTimeout(total=config.timeout)`, at most `max_concurrency` requests are in flight, and each
call runs under the provider's retry policy.

- read: `GET …/dns-zones/{zone}/records?name=&type=`, paged until `total_count`. Results are
  filtered again locally: an empty `name` (the apex) is "no filter" to the API, and we do not
  rely on the filter being an exact match.
- apply: one `PATCH …/dns-zones/{zone}/records` per zone carrying one `set` (by `id_fields`
  name+type) per RRset, zones in parallel; `disallow_new_zone_creation` so a typo in a zone
  name fails instead of silently creating a zone that nobody serves.
- wait_in_sync: poll `GET …/dns-zones?dns_zone=` until the zone is `active` again.
- 429: `Retry-After` is honoured by holding every request of this provider until it has passed
  (one throttled zone pauses its siblings, which would be throttled too), on top of the retry
  policy's own backoff; a Retry-After longer than the policy's deadline fails at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp

from failover.config.types import ProviderConfig, ScalewayProviderConfig, Secret
from failover.model import Change, RecordKey, RecordSet, RecordType, canonical_values
from failover.model import normalize_name as _norm
from failover.providers.base import (
    Provider,
    ProviderError,
    Receipt,
    check_key,
    check_values,
    per_zone,
    relative_name,
)
from failover.providers.retry import kind_of_status, with_retries
from failover.retrying import parse_retry_after
from failover.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
API = "/domain/v2beta1"
ENV_SECRET = "SCW_SECRET_KEY"
_MAX_PAGES = 1000  # a server that never reaches total_count must not loop us forever
_REASONS = {
    "required": "is required",
    "format": "is wrongly formatted",
    "constraint": "does not respect a constraint",
    "unknown": "is invalid",
}
_FAILED_ZONE = frozenset({"error", "locked"})


class ScalewayError(ProviderError):
    """A failed Scaleway call; `retry_after` is the server's Retry-After in seconds, if any."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, kind=kind, retryable=retryable)
        self.status = status
        self.retry_after = retry_after


def describe_error(body: str) -> tuple[str | None, str]:
    """(type, human text) from Scaleway's error shape `{"message", "type", "details"…}`."""
    try:
        data = json.loads(body)
    except ValueError:
        return None, body.strip()[:300] or "(empty body)"
    if not isinstance(data, dict):
        return None, body.strip()[:300]
    raw_type, raw_details = data.get("type"), data.get("details")
    etype = raw_type if isinstance(raw_type, str) else None
    text = str(data.get("message") or etype or "error")
    details: list[Any] = raw_details if isinstance(raw_details, list) else []
    parts: list[str] = []
    for d in details:
        if not isinstance(d, dict):
            continue
        if etype == "invalid_arguments":
            part = str(d.get("argument_name") or "an argument")
            part += " " + _REASONS.get(str(d.get("reason")), str(d.get("reason") or "is invalid"))
            if d.get("help_message"):
                part += f" ({d['help_message']})"
        elif etype == "permissions_denied":
            part = f"{d.get('action', '?')} on {d.get('resource', '?')} denied"
        elif etype == "quotas_exceeded":
            part = f"{d.get('resource', '?')} quota {d.get('current', '?')}/{d.get('quota', '?')}"
        else:
            part = json.dumps(d, sort_keys=True)
        parts.append(part)
    if etype in ("not_found", "transient_state") and data.get("resource"):
        state = f" is {data['current_state']}" if data.get("current_state") else ""
        parts.append(f"{data['resource']} {data.get('resource_id', '')}".strip() + state)
    if parts:
        text += ": " + "; ".join(parts)
    return etype, text


def classify(status: int, etype: str | None) -> tuple[str, bool]:
    """(kind, retryable) of an HTTP error: the status first (throttling and 5xx are retried),
    then Scaleway's error `type` where it says more than the status."""
    kind, retryable = kind_of_status(status, "invalid")
    if retryable:
        return kind, retryable
    if etype == "transient_state":
        return "server", True  # the zone is busy with another change: try again shortly
    if etype in ("permissions_denied", "denied_authentication"):
        return "auth", False
    if etype == "not_found":
        return "not_found", False
    return kind, retryable


class ScalewayProvider:
    """Scaleway DNS zones; one instance per configured `type: scaleway` provider."""

    poll_interval = 1.0  # first wait between zone status polls; grows to poll_max
    poll_max = 5.0

    def __init__(
        self,
        config: ScalewayProviderConfig,
        zones: Iterable[str] | None = None,
        store: object = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.location = config.location
        self.on_error: Callable[[str], None] = lambda kind: None
        self._zones = None if zones is None else frozenset(map(_norm, zones))
        self._environ = os.environ if environ is None else environ
        self._base = config.api_url.rstrip("/") + API
        self._secret: Secret | None = None
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._not_before = 0.0  # monotonic time before which no request goes out (Retry-After)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Resolve the secret (config, else $SCW_SECRET_KEY) and open the session; no API call,
        so the daemon starts even while Scaleway is down."""
        if self._session is not None:
            return
        secret = self.config.secret_key
        if secret is None and self._environ.get(ENV_SECRET):
            secret = Secret(self._environ[ENV_SECRET])
        if secret is None:
            raise ProviderError(
                f"scaleway provider {self.name}: no secret key; set `secret_key` in its config "
                f"(e.g. secret_key: ${{file:/run/secrets/scw}}) or {ENV_SECRET} in the environment",
                kind="auth",
            )
        self._secret = secret
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            headers={"Accept": "application/json", "User-Agent": "failover"},
            raise_for_status=False,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- provider interface ---------------------------------------------------------------------

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordSet | None]:
        """One filtered, paged listing per (zone, name); several types of a name share it."""
        groups: dict[tuple[str, str], list[RecordKey]] = {}
        for key in keys:
            groups.setdefault(self._locate(key), []).append(key)
        found = await _all_or_first_error(
            self._read_name(zone, rel, group) for (zone, rel), group in groups.items()
        )
        result: dict[RecordKey, RecordSet | None] = {}
        for part in found:
            result.update(part)
        return {key: result[key] for key in keys}

    async def apply(self, changes: Sequence[Change]) -> Receipt:
        """Validate everything first, then one atomic PATCH per zone, zones in parallel.

        A failed zone does not stop the others; the error names the zones that failed and those
        that were applied (re-applying is harmless: `set` is idempotent)."""
        by_zone: dict[str, dict[tuple[str, RecordType], tuple[int, tuple[str, ...]]]] = {}
        for change in changes:
            zone, rel = self._locate(change.key)
            values = check_values(change, zone)
            by_zone.setdefault(zone, {})[(rel, change.key.type)] = (change.ttl, values)
        zones = sorted(by_zone)
        await per_zone(
            self._patch_zone,
            {zone: by_zone[zone] for zone in zones},
            label=f"scaleway {self.name}",
            done_word="applied",
        )
        return Receipt(provider=self.name, change_ids=tuple(zones), submitted_at=time.time())

    async def wait_in_sync(self, receipt: Receipt, timeout: float) -> None:
        """Poll each changed zone until Scaleway reports it `active` (pending while it pushes)."""
        pending = set(receipt.change_ids)
        try:
            async with asyncio.timeout(timeout):
                await _all_or_first_error(self._wait_zone(z, pending) for z in receipt.change_ids)
        except TimeoutError:
            raise ProviderError(
                f"scaleway {self.name}: zone(s) {', '.join(sorted(pending))} still not active "
                f"after {timeout:g}s",
                kind="timeout",
            ) from None

    # -- the calls ------------------------------------------------------------------------------

    async def _read_name(
        self, zone: str, rel: str, keys: list[RecordKey]
    ) -> dict[RecordKey, RecordSet | None]:
        types = {k.type for k in keys}
        params: dict[str, str] = {"order_by": "name_asc"}
        if rel:
            params["name"] = rel
        if len(types) == 1:
            params["type"] = next(iter(types)).value
        records = await self._list_records(zone, params)
        by_type: dict[RecordType, list[dict[str, Any]]] = {}
        for record in records:
            if str(record.get("name", "")).rstrip(".").lower() != rel:
                continue
            try:
                rtype = RecordType(str(record.get("type")))
            except ValueError:
                continue  # MX, TXT… of the same name: not ours
            by_type.setdefault(rtype, []).append(record)
        return {k: self._record_set(k, by_type.get(k.type, [])) for k in keys}

    async def _list_records(self, zone: str, params: dict[str, str]) -> list[dict[str, Any]]:
        path = f"/dns-zones/{_quote(zone)}/records"
        records: list[dict[str, Any]] = []
        for page in range(1, _MAX_PAGES + 1):
            query = {**params, "page": str(page), "page_size": str(self.config.page_size)}
            data = await self._call("GET", path, f"list records of {zone}", params=query)
            batch, total = data.get("records"), data.get("total_count")
            if not isinstance(batch, list) or not isinstance(total, int):
                raise self._malformed(f"list records of {zone}", "no records/total_count")
            records.extend(r for r in batch if isinstance(r, dict))
            if not batch or len(records) >= total:
                return records
        raise self._malformed(f"list records of {zone}", f"more than {_MAX_PAGES} pages")

    def _record_set(self, key: RecordKey, records: list[dict[str, Any]]) -> RecordSet | None:
        if not records:
            return None
        try:
            values = canonical_values(key.type, (str(r.get("data", "")) for r in records))
            ttl = min(int(r.get("ttl", 0)) for r in records)
        except (TypeError, ValueError) as exc:
            raise ProviderError(
                f"scaleway {self.name}: {key}: unexpected record data from the API: {exc}",
                kind="invalid",
            ) from None
        return RecordSet(key.name, key.type, ttl, values)

    async def _patch_zone(
        self, zone: str, sets: Mapping[tuple[str, RecordType], tuple[int, tuple[str, ...]]]
    ) -> None:
        changes = []
        for (rel, rtype), (ttl, values) in sorted(sets.items()):
            data = [f"{v}." if rtype is RecordType.CNAME else v for v in values]
            records = [{"name": rel, "type": rtype.value, "data": d, "ttl": ttl} for d in data]
            changes.append(
                {"set": {"id_fields": {"name": rel, "type": rtype.value}, "records": records}}
            )
        body = {
            "changes": changes,
            "return_all_records": False,
            "disallow_new_zone_creation": True,
        }
        started = time.monotonic()
        await self._call("PATCH", f"/dns-zones/{_quote(zone)}/records", f"update {zone}", body=body)
        log.info(
            "scaleway %s: zone %s: %d record set(s) replaced in one PATCH (%.0f ms)",
            self.name,
            zone,
            len(changes),
            (time.monotonic() - started) * 1000,
        )

    async def _wait_zone(self, zone: str, pending: set[str]) -> None:
        params = {"dns_zone": zone}
        if self.config.project_id:
            params["project_id"] = self.config.project_id
        delay = self.poll_interval
        while True:
            data = await self._call("GET", "/dns-zones", f"status of zone {zone}", params=params)
            status, message = self._zone_status(zone, data)
            if status == "active":
                pending.discard(zone)
                return
            if status in _FAILED_ZONE:
                raise ProviderError(
                    f"scaleway {self.name}: zone {zone} is {status} after the change"
                    + (f": {message}" if message else ""),
                    kind="zone_status",
                )
            log.debug("scaleway %s: zone %s is %s; polling again", self.name, zone, status)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, self.poll_max)

    def _zone_status(self, zone: str, data: dict[str, Any]) -> tuple[str, str]:
        listed = data.get("dns_zones")
        if not isinstance(listed, list):
            raise self._malformed(f"status of zone {zone}", "no dns_zones")
        for item in listed:
            if not isinstance(item, dict):
                continue
            sub, domain = str(item.get("subdomain") or ""), str(item.get("domain") or "")
            if _norm(f"{sub}.{domain}" if sub else domain) == zone:
                return str(item.get("status") or "unknown"), str(item.get("message") or "")
        raise ProviderError(
            f"scaleway {self.name}: zone {zone} is not among the zones this key can see",
            kind="not_found",
        )

    async def _call(
        self, method: str, path: str, what: str, *, params: Any = None, body: Any = None
    ) -> dict[str, Any]:
        return await with_retries(
            lambda: self._request(method, path, what, params, body),
            self.config.retry,
            self.on_error,
        )

    async def _request(
        self, method: str, path: str, what: str, params: Any, body: Any
    ) -> dict[str, Any]:
        """One attempt. Errors are ScalewayErrors marked retryable or not, never carrying the
        token (it is only in a header, and redacted from any text echoed back)."""
        if self._session is None or self._secret is None:
            raise ProviderError(f"scaleway {self.name}: used before start()", kind="internal")
        wait = self._not_before - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        prefix = f"scaleway {self.name}: {what}"
        started = time.monotonic()
        async with self._slots:
            try:
                async with self._session.request(
                    method,
                    self._base + path,
                    params=params,
                    json=body,
                    headers={"X-Auth-Token": self._secret.reveal()},
                ) as resp:
                    status, text = resp.status, await resp.text()
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            except (TimeoutError, aiohttp.ClientError) as exc:
                timed_out = isinstance(exc, TimeoutError)
                problem = self._redact(str(exc)) or type(exc).__name__
                error = ScalewayError(
                    f"{prefix}: no answer within {self.config.timeout:g}s"
                    if timed_out
                    else f"{prefix}: {problem}",
                    kind="timeout" if timed_out else "connection",
                    retryable=True,
                )
                self._log_failure(error)
                raise error from None
        elapsed = (time.monotonic() - started) * 1000
        log.debug("scaleway %s: %s %s -> %d (%.0f ms)", self.name, method, path, status, elapsed)
        if 200 <= status < 300:
            try:
                data = json.loads(text) if text.strip() else {}
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise self._malformed(what, "the body is not a JSON object")
            return data
        raise self._http_error(prefix, status, text, retry_after)

    def _http_error(
        self, prefix: str, status: int, text: str, retry_after: float | None
    ) -> ScalewayError:
        etype, detail = describe_error(self._redact(text))
        kind, retryable = classify(status, etype)
        message = f"{prefix}: HTTP {status}" + (f" {etype}" if etype else "") + f": {detail}"
        if status == 403:
            message += " (the key lacks DNS rights, or the zone is not in its project)"
        if status == 429 and retry_after is not None:
            message += f" (Retry-After {retry_after:g}s)"
            if retry_after > self.config.retry.deadline:
                retryable = False
                message += f", beyond the retry deadline of {self.config.retry.deadline:g}s"
            else:
                self._not_before = max(self._not_before, time.monotonic() + retry_after)
        error = ScalewayError(
            message, kind=kind, retryable=retryable, status=status, retry_after=retry_after
        )
        self._log_failure(error)
        return error

    def _log_failure(self, error: ScalewayError) -> None:
        log.warning("%s%s", error, " (retryable)" if error.retryable else "")

    def _malformed(self, what: str, problem: str) -> ScalewayError:
        return ScalewayError(
            f"scaleway {self.name}: {what}: unexpected answer from the API: {problem}",
            kind="server",
            retryable=True,
        )

    def _redact(self, text: str) -> str:
        secret = self._secret.reveal() if self._secret is not None else ""
        return text.replace(secret, "***") if secret else text

    def _locate(self, key: RecordKey) -> tuple[str, str]:
        """(zone, name relative to the zone, "" for the apex); refuses keys not ours."""
        zone, name = check_key(self.name, key, self._zones)
        return zone, relative_name(name, zone)


def create(config: ProviderConfig, zones: Iterable[str], store: Store) -> Provider:
    """The registry's factory for `type: scaleway`."""
    if not isinstance(config, ScalewayProviderConfig):
        raise TypeError(f"expected a scaleway provider config, got {config.type}")
    return ScalewayProvider(config, zones, store)


def _quote(zone: str) -> str:
    return urllib.parse.quote(zone, safe="")


async def _all_or_first_error(coros: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently; on the first failure cancel the rest and raise that failure."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    if not tasks:
        return []
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            error = None if task not in done or task.cancelled() else task.exception()
            if error is not None:
                raise error
        return [t.result() for t in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
