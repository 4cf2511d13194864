"""The provider interface every DNS backend implements (read, apply, wait_in_sync, aclose),
and the rules they all share: which zone a name is in, what a valid change is, how several
failures become one error. Each is written here once so the backends cannot drift apart.

This is the public interface of provider plugins too (docs/providers.md): a third-party
package implements `Provider`, raises `ProviderError`, and may use the shared rules below."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, runtime_checkable

from failover.model import (
    Change,
    RecordKey,
    RecordSet,
    RecordType,
    canonical_values,
    normalize_name,
)

MAX_TTL = 2**31 - 1  # RFC 2181 §8
T = TypeVar("T")
K = TypeVar("K")


class ProviderError(Exception):
    """A provider call failed. `kind` feeds `failover_provider_errors_total{kind}`."""

    def __init__(self, message: str, *, kind: str = "error", retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.counted = False  # already counted in failover_provider_errors_total


@dataclass(frozen=True)
class Receipt:
    """What `apply` returns so `wait_in_sync` can poll the provider (a Route 53 change id)."""

    provider: str
    change_ids: tuple[str, ...] = ()
    submitted_at: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)


class Provider(Protocol):
    """A DNS backend. Error kinds of every failed attempt go to `on_error` (set by the daemon)
    so they are counted; a provider raises ProviderError with `retryable` set truthfully."""

    name: str
    location: str | None
    on_error: Callable[[str], None]

    async def start(self) -> None:
        """Open sessions or listeners. Called once before any other method."""

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordSet | None]:
        """Current RRsets for `keys` (None where absent), values in canonical form."""

    async def apply(self, changes: Sequence[Change]) -> Receipt:
        """Replace each RRset with `change.after` (never empty: the engine refuses that).

        All changes belong to this provider and may span several zones and services (a mass
        failover sends them in one call so the provider can batch per zone)."""

    async def wait_in_sync(self, receipt: Receipt, timeout: float) -> None:
        """Return once the provider reports the change live on its servers; raise on timeout."""

    async def aclose(self) -> None:
        """Release sessions, threads and listeners."""


@runtime_checkable
class PacedWrites(Protocol):
    """Optional, for a provider whose API allows few requests a second (Route 53: 5 per
    account by default). The daemon enters `write_turn(zone)` before it makes up a batch for
    `zone`: entering returns once the provider's next write request to `zone` may be sent and
    keeps that turn for it; leaving gives the turn back if no request used it (the batch was
    refused by fencing, or failed before any request). Then `one_request(changes)` says how
    many of the leading `changes` one write request carries, and the batch holds that many.
    So the changes decided while a write waited for the rate go in that request, instead of
    in one more request (and one more status poll)."""

    def write_turn(self, zone: str) -> AbstractAsyncContextManager[None]: ...

    def one_request(self, changes: Sequence[Change]) -> int: ...


# -- rules every provider shares ----------------------------------------------------------------


def zone_of(name: str, zones: Iterable[str]) -> str | None:
    """The zone among `zones` that holds `name`, or None.

    A zone holds its apex and every name ending in "." + zone (so `xexample.com` is not in
    `example.com`); case and trailing dots do not matter; when zones nest (`example.com` and
    `sub.example.com`), the longest one wins, because records below a zone cut are never
    served from the parent. The root zone ("") is never a provider's zone: it holds nothing.
    """
    name = normalize_name(name)
    found: str | None = None
    for zone in map(normalize_name, zones):
        inside = zone and (name == zone or name.endswith("." + zone))
        if inside and (found is None or len(zone) > len(found)):
            found = zone
    return found


def check_key(
    provider: str, key: RecordKey, zones: Collection[str] | None = None
) -> tuple[str, str]:
    """(zone, name) of `key`, normalized, once it is known to be `provider`'s, in one of its
    `zones` (normalized; the registry passes those of the provider's records, and the provider
    is rebuilt when they change) and its name in that zone rather than in a more specific one
    of them. `zones` None: not known (a provider built by hand), only the name is checked.
    Raises ProviderError(kind="invalid") otherwise."""
    if key.provider != provider:
        raise ProviderError(f"{key} belongs to provider {key.provider!r}", kind="invalid")
    zone, name = normalize_name(key.zone), normalize_name(key.name)
    if zones is not None and zone not in zones:
        raise ProviderError(
            f"{key}: zone {zone} is not one of the zones of provider {provider} "
            f"({', '.join(sorted(zones)) or 'none'})",
            kind="invalid",
        )
    found = zone_of(name, (zone, *(zones or ())))
    if found != zone:
        inner = f" but in zone {found}" if found else ""
        raise ProviderError(f"{key}: {name} is not in zone {zone}{inner}", kind="invalid")
    return zone, name


def relative_name(name: str, zone: str) -> str:
    """`name` relative to `zone` ("" at the apex), as zone-file APIs (OVH, Scaleway) spell it;
    `name` must be in `zone` (see check_key)."""
    return "" if name == zone else name[: -len(zone) - 1]


def check_values(change: Change, zone: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    """The canonical values of `change.after`, once the change is one every DNS server takes:
    values that fit the type, a TTL in range, a CNAME alone and not at the zone apex. An empty
    `after` is refused unless `allow_empty` (the builtin server deletes the RRset then)."""
    key = change.key
    try:
        values = canonical_values(key.type, change.after)
    except ValueError as exc:
        raise ProviderError(f"{key}: {exc}", kind="invalid") from None
    if not values and not allow_empty:
        raise ProviderError(f"{key}: refusing to publish an empty record set", kind="invalid")
    if not 0 <= change.ttl <= MAX_TTL:
        raise ProviderError(f"{key}: TTL {change.ttl} out of range", kind="invalid")
    if key.type is RecordType.CNAME and (len(values) > 1 or normalize_name(key.name) == zone):
        raise ProviderError(
            f"{key}: a CNAME holds one value and cannot sit at the zone apex", kind="invalid"
        )
    return values


def combined_error(message: str, errors: Sequence[ProviderError]) -> ProviderError:
    """One error standing for several (zones or changes of one batch): the first one's kind,
    retryable only if all are, and marked counted only if all were (the engine counts an
    unmarked error in `failover_provider_errors_total` itself)."""
    error = ProviderError(message, kind=errors[0].kind, retryable=all(e.retryable for e in errors))
    error.counted = all(e.counted for e in errors)
    return error


async def gather_all(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Run `calls` together and let every one finish before raising the first error, so no
    call is left running unseen (a write half-done while the caller already moved on)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]  # all of them, typed


async def per_zone(
    work: Callable[[str, K], Awaitable[T]],
    by_zone: Mapping[str, K],
    *,
    label: str = "",
    done_word: str = "done",
) -> dict[str, T]:
    """Run `work(zone, item)` for every zone at once; one slow or failing zone neither delays
    nor hides the others. Raises one ProviderError naming each failed zone (and those done),
    or the zone's own error when there is only one. `label` (e.g. "scaleway ovh-main") starts
    the combined message with how many of the zones failed."""
    zones = list(by_zone)
    outcomes = await asyncio.gather(*(work(z, by_zone[z]) for z in zones), return_exceptions=True)
    errors: list[tuple[str, ProviderError]] = []
    done: dict[str, T] = {}
    for zone, outcome in zip(zones, outcomes, strict=True):
        if isinstance(outcome, ProviderError):
            errors.append((zone, outcome))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            done[zone] = outcome
    if not errors:
        return done
    if len(errors) == 1 and len(zones) == 1:
        raise errors[0][1]
    message = "; ".join(f"{zone}: {exc}" for zone, exc in errors)
    if label:
        message = f"{label}: {len(errors)} of {len(zones)} zones failed: {message}"
    if done:
        message += f" ({done_word}: {', '.join(done)})"
    raise combined_error(message, [e for _, e in errors])
