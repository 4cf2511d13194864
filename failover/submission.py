"""What one service's changes at one provider report back (`Submission`): acceptance first
(`ProviderOutcome`, all its zones), then the confirmation (`Confirmation`: in sync at the
provider, then verified on the authoritative servers). Plain data and the two futures the
decision loop awaits; the queue that resolves them is `failover.apply`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from failover.model import Change
from failover.providers.base import Receipt


@dataclass
class Confirmation:
    """How a provider's batch ended: in sync at the provider, then verified on the servers."""

    in_sync: bool
    in_sync_after: float | None
    verified: bool | None  # None: verification disabled
    verify_reason: str
    verify_after: float | None
    error: str = ""
    receipt: Receipt | None = field(default=None, repr=False)  # to ask the provider again
    verified_by: str = "dns"  # "api": read back through the provider's API (`verify: api`)

    def as_json(self) -> dict[str, Any]:
        return {
            "in_sync": self.in_sync,
            "in_sync_seconds": self.in_sync_after,
            "verified": self.verified,
            "verified_by": self.verified_by if self.verified is not None else None,
            "verify_seconds": self.verify_after,
            "verify_reason": self.verify_reason,
            "error": self.error or None,
        }


@dataclass
class ProviderOutcome:
    """Whether one provider accepted a service's changes (all its zones), and how fast."""

    provider: str
    ok: bool
    error: str = ""
    kind: str = ""
    accepted_after: float | None = None
    batch_size: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "ok": self.ok,
            "error": self.error or None,
            "accepted_seconds": self.accepted_after,
            "batch_size": self.batch_size,
        }


@dataclass
class Submission:
    """One service's changes at one provider, and the futures that report on them."""

    changes: list[Change]
    accepted: asyncio.Future[ProviderOutcome]
    confirmed: asyncio.Future[Confirmation]
    token: int = 0  # the leadership the plan was built under (fencing)
    zone_outcomes: dict[str, ProviderOutcome] = field(default_factory=dict)
    zone_confirmations: dict[str, Confirmation] = field(default_factory=dict)

    @property
    def zones(self) -> set[str]:
        return {c.key.zone for c in self.changes}

    def zone_accepted(self, zone: str, outcome: ProviderOutcome) -> None:
        self.zone_outcomes[zone] = outcome
        if not outcome.ok:
            self.zone_confirmations[zone] = Confirmation(False, None, None, "not applied", None)
        if set(self.zone_outcomes) == self.zones:
            failed = [o for z, o in sorted(self.zone_outcomes.items()) if not o.ok]
            if failed:
                _resolve(self.accepted, failed[0])
            else:
                outcomes = list(self.zone_outcomes.values())
                after = max(o.accepted_after or 0.0 for o in outcomes)
                provider = outcomes[0].provider
                total = sum(o.batch_size for o in outcomes)
                _resolve(
                    self.accepted,
                    ProviderOutcome(provider, True, accepted_after=after, batch_size=total),
                )
        self._maybe_confirmed()

    def zone_confirmed(self, zone: str, confirmation: Confirmation) -> None:
        self.zone_confirmations[zone] = confirmation
        self._maybe_confirmed()

    def _maybe_confirmed(self) -> None:
        if set(self.zone_confirmations) != self.zones:
            return
        results = [c for _, c in sorted(self.zone_confirmations.items())]
        bad = [c for c in results if not c.in_sync or c.verified is False]
        _resolve(self.confirmed, bad[0] if bad else results[-1])


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
