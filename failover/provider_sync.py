"""Where each provider of a service stands with the last change it was asked to make.

Why per provider: a service's records may live at several providers, and "the service switched"
says nothing about the one that refused, the one that took the change and kept the old answer,
or the one whose name servers lag. Each of those is a state here, kept until it is resolved
(never forgotten after one check), so `status` shows it truthfully and alarms last exactly as
long as the fault: `not_verified` until every authoritative server serves the answer,
`change_ignored` until the provider serves what it accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from failover.model import Change, RecordKey, RecordSet, canonical_values
from failover.timefmt import rfc3339

if TYPE_CHECKING:
    from failover.submission import Confirmation

ALARM_NOT_VERIFIED = "not_verified"
ALARM_CHANGE_IGNORED = "change_ignored"
ALARM_SPLIT_ANSWER = "split_answer"
MAX_IGNORED_BACKOFF = 30.0  # seconds between re-applies to a provider that ignores them


class SyncState(StrEnum):
    """Stable names (`status --json` shows them)."""

    ACCEPTED = "accepted"  # the provider took the change; not confirmed yet
    IN_SYNC = "in_sync"  # the provider reports it live (verification off, or not done yet)
    VERIFIED = "verified"  # every authoritative server serves it
    NOT_VERIFIED = "not_verified"  # some server does not serve it: re-checked with backoff
    REFUSED = "refused"  # the provider refused or failed the change: retried with backoff
    IGNORED = "ignored"  # accepted, then read back with another answer: re-applied with backoff


@dataclass(eq=False)
class ProviderSync:
    """One provider's part of one change. A newer change replaces the object, so a task that
    holds it can tell that its verdict is stale (`runtime.sync[p] is not mine`)."""

    target: str | None
    changes: tuple[Change, ...]
    state: SyncState
    since: float  # when it entered `state` (wall clock)
    lagging_since: float | None = None  # since when it has not served the latest change
    detail: str = ""
    unverified: str = ""  # the not_verified alarm: why the last verification failed (none since)
    recheck: bool = False  # the re-check loop owes this change a look at the servers
    ignored: int = 0  # changes in a row it accepted and then did not serve
    served: bool = False  # read back as asked: no longer a candidate for `ignored`
    checks: int = 0  # re-checks made (the re-check backoff doubles with each)
    next_check: float | None = None  # when the re-check loop looks again (wall clock)
    confirmation: Confirmation | None = field(default=None, repr=False)

    def successor(
        self, target: str | None, changes: tuple[Change, ...], state: SyncState, now: float
    ) -> ProviderSync:
        """The state for a newer change: what is still wrong carries over until resolved."""
        return ProviderSync(
            target,
            changes,
            state,
            now,
            lagging_since=self.lagging_since,
            unverified=self.unverified,
            ignored=0 if self.served else self.ignored,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "since": rfc3339(self.since),
            "target": self.target,
            "lagging_since": rfc3339(self.lagging_since) if self.lagging_since else None,
            "detail": self.detail or None,
            "ignored": self.ignored,
        }

    # -- transitions ----------------------------------------------------------------------------

    def confirmed(self, confirmation: Confirmation, now: float) -> None:
        """The provider's own sync, then the servers: the first verdict on this change."""
        self.confirmation = confirmation
        if confirmation.in_sync and confirmation.verified is not False:
            self.verified(confirmation, now)
        elif self.state is SyncState.IGNORED:  # known already; the re-apply gets its own check
            self.unverified = confirmation.verify_reason
        else:
            self._move(SyncState.NOT_VERIFIED, now, confirmation.verify_reason)
            self.lagging_since = self.lagging_since or now
            self.unverified, self.recheck = confirmation.verify_reason, True

    def verified(self, confirmation: Confirmation, now: float) -> None:
        """In sync, and verified unless verification is off: nothing lags any more."""
        self.confirmation = confirmation
        state = SyncState.IN_SYNC if confirmation.verified is None else SyncState.VERIFIED
        self._move(state, now, confirmation.verify_reason)
        self.lagging_since, self.unverified, self.recheck = None, "", False
        if state is SyncState.VERIFIED:  # the servers serve it: the provider did not ignore it
            self.served, self.ignored = True, 0

    def refused(self, error: str, now: float) -> None:
        self._move(SyncState.REFUSED, now, error)
        self.lagging_since = self.lagging_since or now

    @property
    def awaiting(self) -> bool:
        """Accepted, and not yet shown served nor found ignored: a read-back would tell."""
        return self.state in _AWAITING

    def read_back(self, found: Mapping[RecordKey, RecordSet | None], now: float) -> bool:
        """Compare a read made after the provider accepted the change; True when it turns out
        ignored (the provider serves something else than what it accepted)."""
        if self.served or self.state not in _AWAITING:
            return False
        if all(_serves(found.get(c.key), c) for c in self.changes):
            self.served, self.ignored = True, 0
            return False
        self.ignored += 1
        served = "; ".join(_describe(c, found.get(c.key)) for c in self.changes)
        self._move(
            SyncState.IGNORED,
            now,
            f"accepted the change to {self.target} and still serves {served} "
            f"({self.ignored} time{'s' if self.ignored > 1 else ''} in a row)",
        )
        self.lagging_since = self.lagging_since or now
        self.recheck = False  # the servers cannot serve what the provider dropped
        return True

    def backoff(self) -> float:
        """Seconds before the next re-apply to a provider that ignored `ignored` changes."""
        return float(min(MAX_IGNORED_BACKOFF, 0.5 * 2 ** max(0, self.ignored - 1)))

    def _move(self, state: SyncState, now: float, detail: str) -> None:
        if state is not self.state:
            self.state, self.since = state, now
        self.detail = detail


_AWAITING = frozenset({SyncState.ACCEPTED, SyncState.IN_SYNC, SyncState.NOT_VERIFIED})


def _serves(rs: RecordSet | None, change: Change) -> bool:
    if rs is None:
        return False
    try:
        values = canonical_values(change.key.type, rs.values)
    except ValueError:
        return False
    return values == change.after and rs.ttl == change.ttl


def _describe(change: Change, rs: RecordSet | None) -> str:
    if rs is None:
        return f"{change.key.name}/{change.key.type} absent"
    values = ", ".join(rs.values) or "(empty)"
    return f"{change.key.name}/{change.key.type} {values} TTL {rs.ttl}"


def _ignoring(provider: str, sync: ProviderSync) -> str:
    if sync.state is SyncState.IGNORED:
        return f"{provider} {sync.detail}"
    return (
        f"{provider} ignored the last {sync.ignored} change(s) it accepted; "
        f"re-applied the change to {sync.target}, waiting to read it back"
    )


def alarms(sync: Mapping[str, ProviderSync], split: Mapping[str, str]) -> dict[str, str]:
    """The alarms the providers' states raise, each with the line naming the providers."""
    raised: dict[str, str] = {}
    unverified = sorted(p for p, s in sync.items() if s.unverified)
    if unverified:
        raised[ALARM_NOT_VERIFIED] = "; ".join(f"{p}: {sync[p].unverified}" for p in unverified)
    ignoring = sorted(p for p, s in sync.items() if s.ignored and not s.served)
    if ignoring:
        raised[ALARM_CHANGE_IGNORED] = "; ".join(_ignoring(p, sync[p]) for p in ignoring)
    if split:
        raised[ALARM_SPLIT_ANSWER] = "; ".join(split[p] for p in sorted(split))
    return raised
