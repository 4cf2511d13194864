"""One service's live state: an explicit phase, and the only transitions that change it.

Why a type: the engine used to imply a service's phase from a mix of flags (a task in flight, a
pending target, a drill name) and an error string that decisions matched by prefix. Here the
phase is one `Phase` value, changed only by the methods below, so every decision reads it and
`status` shows it. Everything else a runtime holds is either configuration, what the probes
said (health) or what the providers serve (records read back), and each of those has its own
update method too. Only `state` (pin, mode, flap counters) is persisted, by the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from failover import provider_sync
from failover.core import decide as core
from failover.core.health import ProbeState, TargetHealth
from failover.core.published import (
    Published,
    classify_changing,
    served_by,
    serves_no_target,
)
from failover.core.values import FALLBACK
from failover.model import (
    Change,
    Health,
    Phase,
    RecordKey,
    RecordSet,
)
from failover.provider_sync import ProviderSync, SyncState

if TYPE_CHECKING:
    from failover.config.types import ServiceConfig
    from failover.submission import Confirmation

Verdicts = Mapping[str, tuple[ProviderSync, "Confirmation"]]  # by provider

MAX_BACKOFF = 30.0  # seconds between two attempts of a change that keeps failing
READ_BACK_AFTER = 5.0
"""Seconds after a provider accepted a change before it is read back, unless the change's
verification showed it served by then (a verification that fails asks for the read at once)."""


BUSY = frozenset({Phase.SWITCHING})  # a change in flight: not decided again until it ends
HELD = frozenset({Phase.REFUSED, Phase.DRY_RUN})  # a wanted change that is not being made
# nothing to act on: timer sweeps may skip the service (a failed verification wakes it)
QUIET = frozenset({Phase.STEADY, Phase.CONFIRMING})


@dataclass(eq=False)
class ServiceRuntime:
    """Live, in-memory view of one service. Read the fields; change them through methods."""

    config: ServiceConfig
    state: core.ServiceState
    probes: dict[tuple[str, str], ProbeState] = field(default_factory=dict)
    targets: dict[str, TargetHealth] = field(default_factory=dict)
    # pool targets only: each value's own health (core/pool.py), target -> value -> health
    members: dict[str, dict[str, TargetHealth]] = field(default_factory=dict)
    # the all-down fallback's health from its own probes (None: it has none, it is trusted)
    fallback_health: TargetHealth | None = None
    # records as read back from the providers (None until every provider answered once)
    current: dict[RecordKey, RecordSet | None] | None = None
    partial: dict[RecordKey, RecordSet | None] = field(default_factory=dict)  # first read
    read_error: str = ""
    provider_errors: dict[str, str] = field(default_factory=dict)
    last_read: float = float("-inf")
    # when the last accepted change is read back, unless its verification showed it served
    # first (`assume_applied`, `verification_ended`); inf: no read-back owed
    read_back_at: float = float("inf")
    changed_at: float = float("-inf")  # last time a provider accepted a change of ours
    # bumped whenever the records read so far stop counting (`forget_records`): a read begun
    # under an older generation is dropped, whatever it says
    records_generation: int = 0
    published: Published = field(default_factory=lambda: Published("unknown"))
    decision: core.Decision | None = None
    # the change cycle: one phase, and what it concerns
    phase: Phase = Phase.STARTING
    detail: str = ""  # the refusal, dry-run plan or provider errors behind the phase
    pending: str | None = None  # target of a change not yet applied at every provider
    pending_from: str | None = None
    inflight: asyncio.Task[dict[str, Any]] | None = None
    retry_at: float = float("-inf")
    failures: int = 0
    last_error: str = ""  # shown by status; kept after the phase moves on, until a success
    last_switch: dict[str, Any] | None = None
    confirming: asyncio.Task[dict[str, Any]] | None = None
    sync: dict[str, ProviderSync] = field(default_factory=dict)  # the last change, by provider
    split: dict[str, str] = field(default_factory=dict)  # providers serving a DOWN target alone
    told: set[str] = field(default_factory=set)  # provider alarms already journalled
    drill: str | None = None  # the drill target while a drill holds the service
    drill_info: dict[str, Any] | None = None  # what `status` shows of that drill (drill.py)
    started_at: float | None = None  # start-up grace of a service a reload added or reset
    # until when the last decision stands if nothing wakes the service, and the state it was
    # made with: timer sweeps skip it meanwhile (`stays_quiet`, engine/decider.py)
    quiet_until: float = float("-inf")
    quiet_state: core.ServiceState | None = None

    @classmethod
    def fresh(cls, svc: ServiceConfig, state: core.ServiceState) -> ServiceRuntime:
        """A runtime that knows nothing yet: every target UNKNOWN, records unread."""
        runtime = cls(svc, state)
        if svc.fallback is not None and svc.fallback.probes:
            runtime.fallback_health = TargetHealth(
                Health.UNKNOWN, None, None, "no probe result yet"
            )
        for target in svc.targets:
            reason = "no probe result yet" if target.probes else "no probes configured"
            runtime.targets[target.name] = TargetHealth(Health.UNKNOWN, None, None, reason)
            for probe in target.probes:
                runtime.probes[(target.name, probe.name)] = ProbeState()
            if target.pool is not None:
                runtime.members[target.name] = {
                    v: TargetHealth(Health.UNKNOWN, None, None, reason)
                    for v, _ in target.pool.members
                }
        return runtime

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def busy(self) -> bool:
        return self.phase in BUSY

    def stays_quiet(self, now: float) -> bool:
        """A timer sweep may skip this service at `now`: its last decision stands, and
        nothing it was made on moved since without a wake-up (a command that changes the
        state without deciding, such as a drain of a target that is not active)."""
        return (
            now < self.quiet_until
            and self.state is self.quiet_state
            and self.phase in QUIET
            and self.pending is None
            and self.drill is None
        )

    @property
    def unverified(self) -> bool:
        return any(s.unverified for s in self.sync.values())

    def alarms(self) -> dict[str, str]:
        """The alarms raised by the providers' states (not by the decision), with details."""
        return provider_sync.alarms(self.sync, self.split)

    # ------------------------------------------------------------ records read

    def records_read(
        self, provider: str, found: Mapping[RecordKey, RecordSet | None], now: float = 0.0
    ) -> None:
        """Fold one provider's answer in; the first complete reading ends STARTING. A provider
        that accepted our last change and serves something else ignored it: re-apply it, after
        a backoff that grows with every change it ignores in a row."""
        self.provider_errors.pop(provider, None)
        keys = [r.key for r in self.config.records if r.provider == provider]
        into = self.current if self.current is not None else self.partial
        for key in keys:
            into[key] = found.get(key)
        sync = self.sync.get(provider)
        # a value no target has was written by someone else (by hand): that is drift, reported
        # and never overwritten automatically, not a provider that ignored our change
        if (
            sync is not None
            and not serves_no_target(self.config, keys, found)
            and sync.read_back(found, now)
        ):
            self._ignored(provider, sync, now)
        if self.current is None and {r.key for r in self.config.records} <= set(self.partial):
            self.current, self.partial = dict(self.partial), {}
        self.read_error = "; ".join(sorted(self.provider_errors.values()))
        if self.current is not None and self.phase is Phase.STARTING:
            self._settle()
        self.classify()

    def read_failed(self, provider: str, message: str, now: float) -> None:
        """A failed read keeps the values last read (stale, flagged by `read_error`)."""
        self.provider_errors[provider] = message
        self.read_error = "; ".join(sorted(self.provider_errors.values()))
        if self.current is None:
            self._backoff(now)
        self.classify()

    def assume_applied(
        self, changes: Collection[Change], providers: Collection[str], now: float
    ) -> None:
        """A provider that accepted a change serves it: show it now. It is read back
        `READ_BACK_AFTER` seconds later (did the provider keep it?) unless its verification
        answers that first: a change every authoritative server serves was kept, and at
        10,000 services the read-backs of a mass failover were zone transfers of the whole
        zone, again and again, on the loop the decisions wait for."""
        self.changed_at = now
        for provider in providers:
            mine = tuple(c for c in changes if c.key.provider == provider)
            sync = self.sync.get(provider)
            if not mine or (sync and sync.changes == mine and sync.state is SyncState.ACCEPTED):
                continue  # the same acceptance told twice (as it comes, then with the rest)
            if sync is None:
                sync = ProviderSync(self.pending, (), SyncState.ACCEPTED, now)
            self.sync[provider] = sync.successor(self.pending, mine, SyncState.ACCEPTED, now)
        if self.current is None:
            return
        for change in changes:
            if change.key.provider in providers:
                self.current[change.key] = RecordSet(
                    change.key.name, change.key.type, change.ttl, change.after
                )
        self.read_back_at = min(self.read_back_at, now + READ_BACK_AFTER)

    def providers_refused(
        self, changes: Collection[Change], errors: Mapping[str, str], now: float
    ) -> None:
        """Providers that refused (or failed) their part: they lag until a retry lands."""
        for provider, error in errors.items():
            mine = tuple(c for c in changes if c.key.provider == provider)
            sync = self.sync.get(provider)
            if sync is None or sync.changes != mine or sync.state is not SyncState.REFUSED:
                base = sync or ProviderSync(self.pending, (), SyncState.REFUSED, now)
                sync = base.successor(self.pending, mine, SyncState.REFUSED, now)
                self.sync[provider] = sync
            sync.refused(error, now)

    def forget_records(self) -> None:
        """The records themselves changed (reload), or someone else may have written them
        (this instance just became the leader): read them again before deciding. A read
        already in flight does not count: it may have been answered before that."""
        self.records_generation += 1
        self.current, self.partial, self.read_error, self.provider_errors = None, {}, "", {}
        self.last_read, self.read_back_at = float("-inf"), float("inf")
        self.sync, self.split = {}, {}
        self._clear_change()
        self.phase, self.detail = Phase.STARTING, ""
        self.classify()

    def classify(self) -> Published:
        """What DNS serves, against the targets, a change in progress counted as that change
        (`classify_changing`)."""
        self.published = classify_changing(
            self.config, self.current, self.pending, self.pending_from
        )
        return self.published

    # ------------------------------------------------------------ change cycle

    def begin_change(
        self,
        target: str,
        from_target: str | None,
        start: Callable[[tuple[str | None, str | None]], asyncio.Task[dict[str, Any]]],
    ) -> None:
        """A change to `target` goes out: `start` gets what to restore if every provider
        fails (what was pending before) and returns the task that makes the change."""
        restore = (self.pending, self.pending_from)
        self.pending, self.pending_from = target, from_target
        self.inflight = start(restore)
        self.phase, self.detail = Phase.SWITCHING, ""

    def change_applied(self, confirming: bool) -> None:
        """Every provider accepted: nothing pending; verification may still be running."""
        self.pending = self.pending_from = None
        self.failures, self.retry_at, self.last_error = 0, float("-inf"), ""
        if confirming:
            self.phase, self.detail = Phase.CONFIRMING, ""
        else:
            self._settle()
        self.classify()

    def change_failed(
        self,
        errors: str,
        now: float,
        *,
        restore: tuple[str | None, str | None] | None = None,
        fresh_backoff: bool = False,
    ) -> None:
        """Some providers (or all) refused: retry after a backoff. `restore` puts back what
        was pending before a change that no provider accepted; `fresh_backoff` restarts the
        backoff when some provider did accept (progress was made)."""
        if restore is not None:
            self.pending, self.pending_from = restore
        if fresh_backoff:
            self.failures, self.retry_at = 0, float("-inf")
        self._backoff(now)
        self.last_error = errors
        self.phase, self.detail = Phase.RETRYING, errors
        self.classify()

    def change_ended(self) -> None:
        """The change task is over (whatever its outcome): the service is decided again."""
        self.inflight = None
        if self.phase is Phase.SWITCHING:  # cancelled before an outcome was recorded
            self._settle()

    def verification_started(self, task: asyncio.Task[dict[str, Any]]) -> None:
        self.confirming = task

    def verification_ended(
        self, task: asyncio.Task[Any] | None, verdicts: Verdicts, now: float
    ) -> list[str]:
        """The first verdict on a change, per provider; returns the providers it still concerns
        (the others have a newer change since: their verdict is history, not state)."""
        if task is None or task is self.confirming:
            self.confirming = None
            if self.phase is Phase.CONFIRMING:
                self._settle()
        current = [p for p, (sync, _) in verdicts.items() if self.sync.get(p) is sync]
        for provider in current:
            sync, confirmation = verdicts[provider]
            sync.confirmed(confirmation, now)
        self._read_back_owed(current, now)
        return current

    def rechecked(self, verdicts: Verdicts, now: float) -> list[str]:
        """Re-checks of lagging providers; returns those now verified (their alarm cleared)."""
        cleared = []
        for provider, (sync, confirmation) in verdicts.items():
            if self.sync.get(provider) is not sync:
                continue  # superseded by a newer change while it was checked
            sync.recheck = False
            if confirmation.in_sync and confirmation.verified is not False:
                sync.verified(confirmation, now)
                cleared.append(provider)
            else:
                sync.confirmed(confirmation, now)
        self._read_back_owed([p for p, (s, _) in verdicts.items() if self.sync.get(p) is s], now)
        return cleared

    def verification_abandoned(self) -> None:
        self.confirming = None
        self.read_back_at = float("-inf")  # no verdict will come: the read is the truth
        if self.phase is Phase.CONFIRMING:
            self._settle()

    def verification_interrupted(self, providers: Collection[str]) -> list[str]:
        """A reload reopened these providers mid-verification: check their change again."""
        self.confirming = None
        self.read_back_at = float("-inf")
        if self.phase is Phase.CONFIRMING:
            self._settle()
        owed = [
            p
            for p in providers
            if p in self.sync and self.sync[p].state in (SyncState.ACCEPTED, SyncState.IN_SYNC)
        ]
        for provider in owed:
            self.sync[provider].recheck = True
        return owed

    def rechecks_owed(self) -> dict[str, ProviderSync]:
        return {p: s for p, s in self.sync.items() if s.recheck}

    def observe_split(self, split: Mapping[str, str]) -> None:
        self.split = dict(split)

    def alarms_told(self, raised: Collection[str]) -> tuple[set[str], set[str]]:
        """(new, cleared) since the last call: each alarm is journalled once per episode."""
        new, cleared = set(raised) - self.told, self.told - set(raised)
        self.told = set(raised)
        return new, cleared

    def nothing_left(self) -> None:
        """The pending change turned out to be in place already (read back)."""
        self.pending = self.pending_from = None
        self.failures, self.retry_at, self.last_error = 0, float("-inf"), ""
        if self.phase is Phase.RETRYING:
            self._settle()

    def retry_due(self, now: float) -> bool:
        return self.pending is not None and now >= self.retry_at

    def retry_now(self) -> None:
        """An operator acted: the next decision may act at once, whatever the backoff."""
        self.retry_at = float("-inf")

    def drop_pending(self) -> None:
        """The pending target no longer exists (reload removed it)."""
        self.pending = self.pending_from = None
        if self.phase is Phase.RETRYING:
            self._settle()

    def refuse(self, message: str) -> bool:
        """The decision's change breaks a safety rule. True when this refusal is new."""
        new = not (self.phase is Phase.REFUSED and self.detail == message)
        self.phase, self.detail, self.last_error = Phase.REFUSED, message, message
        return new

    def hold_dry_run(self, summary: str) -> bool:
        """Dry-run: the change is shown, not made. True when this plan is new."""
        text = f"dry-run: {summary}"
        new = not (self.phase is Phase.DRY_RUN and self.detail == text)
        self.phase, self.detail, self.last_error = Phase.DRY_RUN, text, text
        return new

    def nothing_wanted(self) -> None:
        """The decision needs no change: a refusal, a dry-run plan or a failed change that was
        never applied anywhere no longer applies (its backoff timer stays, to spare the API)."""
        if self.phase in HELD or (self.phase is Phase.RETRYING and self.pending is None):
            self._settle()

    def internal_error(self, text: str) -> None:
        self.last_error = text

    def start_drill(self, target: str, info: dict[str, Any] | None = None) -> None:
        self.drill, self.drill_info = target, info
        if self.phase is Phase.STEADY:
            self.phase, self.detail = Phase.DRILLING, f"drill to {target}"

    def end_drill(self) -> None:
        self.drill = self.drill_info = None
        if self.phase is Phase.DRILLING:
            self._settle()

    # ------------------------------------------------------------ reload

    def adopt(
        self,
        svc: ServiceConfig,
        probes: dict[tuple[str, str], ProbeState],
        targets: dict[str, TargetHealth],
        state: core.ServiceState,
    ) -> None:
        """A reload changed this service's config: carry health over, re-read if records moved."""
        records_changed = self.config.records != svc.records
        self.config, self.probes, self.targets, self.state = svc, probes, targets, state
        if records_changed:
            self.forget_records()
        elif (
            self.pending is not None
            and svc.target(self.pending) is None
            and not (self.pending == FALLBACK and svc.fallback is not None)
        ):
            self.drop_pending()
        self.classify()

    def restart_grace(self, now: float) -> None:
        self.started_at = now

    def reread_soon(self) -> None:
        self.last_read = float("-inf")

    def reading(self, now: float) -> None:
        """A read of every record of this service begins: it is the read-back owed, if any."""
        self.last_read, self.read_back_at = now, float("inf")

    def _read_back_owed(self, providers: Collection[str], now: float) -> None:
        """After a verdict on the change these providers hold: read back at once when one of
        them is not shown serving it (verification off or failed: the read says whether the
        provider kept the change, `ProviderSync.read_back`); no read-back once every provider
        is known to serve its change. A verdict on a change superseded everywhere says nothing:
        a newer change keeps its own deadline."""
        concerned = [self.sync[p] for p in providers]
        if any(sync.awaiting and not sync.served for sync in concerned):
            self.read_back_at = min(self.read_back_at, now)
        elif concerned and all(s.served or not s.awaiting for s in self.sync.values()):
            self.read_back_at = float("inf")

    # ------------------------------------------------------------ internals

    def _settle(self) -> None:
        if self.current is None:
            self.phase, self.detail = Phase.STARTING, ""
        elif self.drill is not None:
            self.phase, self.detail = Phase.DRILLING, f"drill to {self.drill}"
        elif self.pending is not None:
            self.phase = Phase.RETRYING
        else:
            self.phase, self.detail = Phase.STEADY, ""

    def _ignored(self, provider: str, sync: ProviderSync, now: float) -> None:
        """The provider dropped what it accepted: owe the change again, after its backoff."""
        if self.pending is None and sync.target is not None:
            served = served_by(self.config, provider, self.current or {})
            self.pending, self.pending_from = sync.target, served
        self.retry_at = max(self.retry_at, now + sync.backoff())
        if self.pending is not None and self.phase in (Phase.STEADY, Phase.CONFIRMING):
            self.phase = Phase.RETRYING
        if self.phase is Phase.RETRYING:
            self.detail = f"{provider} {sync.detail}"

    def _backoff(self, now: float) -> None:
        self.failures += 1
        self.retry_at = now + min(MAX_BACKOFF, 0.5 * 2 ** (self.failures - 1))

    def _clear_change(self) -> None:
        self.pending = self.pending_from = None
        self.failures, self.retry_at, self.last_error = 0, float("-inf"), ""
