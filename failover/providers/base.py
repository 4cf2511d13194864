"""The provider interface every DNS backend implements (read, apply, wait_in_sync, aclose)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from failover.model import Change, RecordKey, RecordSet


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
