"""Journal entries: one shape for every decision and action (`failover history`).

Why entries may wait in memory: a failover must never wait for, nor fail on, the state disk.
Every entry is encoded when it is made and queued; one committer task appends the queue in
order (a group commit: one write and one fsync for many entries) and saves the state snapshot
with it. When the disk refuses (full, read-only, I/O error), entries stay queued in order, at
most `max_pending` of them (beyond, the oldest are dropped and summarised by one `journal_lost`
entry), and the committer retries with backoff. `write` and `sync` return all the same and
never raise: DNS changes go out, and the `journal_unwritable` alarm (status, `/readyz`,
metrics, one log line, a journal entry that notifies) says the journal is behind until every
waiting entry is on disk. This holds for an intent written ahead of a provider call too:
availability wins over write-ahead when the disk refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from asyncio import FIRST_COMPLETED
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from failover.model import Trigger
from failover.store import JournalWriteError, Store, encode_entry
from failover.timefmt import rfc3339

log = logging.getLogger("failover.journal")

MAX_PENDING = 5000  # entries kept in memory while the disk refuses them (a few MB at most)
CHUNK = 256  # entries per write+fsync when catching up: progress even when space is tight
RETRY_FIRST, RETRY_MAX = 0.25, 2.0  # seconds between attempts while the disk refuses
StateSave = tuple[Callable[[], Any], Callable[[Any], None]]


@dataclass(frozen=True)
class JournalHealth:
    """What status, `/readyz` and the metrics say about the state directory's writes."""

    unwritable: bool
    since: float | None
    errors: tuple[str, ...]  # "path: reason" per file whose last write failed
    pending: int  # entries waiting in memory
    lost: int  # entries dropped from memory since start (summarised in the journal)
    directory: str

    def reason(self) -> str:
        """One line: what fails, what waits, what to do."""
        lost = f", {self.lost} oldest dropped (summarised)" if self.lost else ""
        return (
            f"journal unwritable: {'; '.join(self.errors) or 'writes failing'}; "
            f"{self.pending} entries wait in memory{lost}; free space in {self.directory}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "unwritable": self.unwritable,
            "since": rfc3339(self.since) if self.since is not None else None,
            "errors": list(self.errors),
            "pending": self.pending,
            "lost": self.lost,
            "reason": self.reason() if self.unwritable else None,
        }


@dataclass
class _Lost:
    """Entries dropped from memory, remembered as counts for the `journal_lost` entry."""

    first: float
    last: float
    count: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    services: Counter[str] = field(default_factory=Counter)

    def add(self, body: dict[str, Any]) -> None:
        self.count += 1
        self.last = float(body.get("ts", self.last))
        self.kinds[str(body.get("kind"))] += 1
        self.services[str(body.get("service"))] += 1


class Journal:
    """Builds entries and appends them to the store's fsynced journal, off the event loop.

    `on_entry` sees every entry once, after its first write attempt (written, or waiting in
    memory because the disk refused it): the daemon wires notifications to it, and an incident
    on a full disk must still page someone. It must not block.
    """

    def __init__(
        self,
        store: Store,
        instance: str,
        on_entry: Callable[[dict[str, Any]], None] | None = None,
        *,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.store = store
        self.instance = instance
        self.on_entry = on_entry
        self.max_pending = max_pending
        self._pending: deque[tuple[dict[str, Any], bytes]] = deque()  # made, not on disk
        self._fresh: list[dict[str, Any]] = []  # made, not yet handed to on_entry
        self._state: StateSave | None = None
        self._seq = 0  # items (entries or state saves) queued so far
        self._done = 0  # of which attempted (on disk, or waiting in memory)
        self._committer: asyncio.Task[None] | None = None
        self._round: asyncio.Future[None] | None = None  # resolved as each commit round ends
        self._background: set[asyncio.Task[dict[str, Any]]] = set()
        self._retry_at = float("-inf")  # loop time of the next attempt while the disk refuses
        self._delay = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._behind_since: float | None = None  # this episode of refused writes
        self._lost: _Lost | None = None  # dropped entries not summarised on disk yet
        self.lost_total = 0

    def entry(
        self,
        service: str,
        kind: str,
        trigger: Trigger,
        reason: str,
        now: float,
        *,
        frm: str | None = None,
        to: str | None = None,
        actor: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "time": rfc3339(now),
            "ts": now,
            "instance": self.instance,
            "service": service,
            "kind": kind,
            "trigger": trigger.value,
            "actor": actor or f"failover@{self.instance}",
            "from": frm,
            "to": to,
            "reason": reason,
        }
        body.update({k: v for k, v in extra.items() if v is not None})
        return body

    async def write(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Append an entry and return once it is on disk, or waiting in memory because the
        disk refused it (through the group commit, so the journal keeps the order)."""
        body = self.enqueue(*args, **kwargs)
        await self.sync()
        return body

    # -- group commit: many entries and one state snapshot per write+fsync ---------------------

    def enqueue(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Queue an entry for the next group commit; `sync()` waits for its write attempt.

        Used where many writes happen under the engine's lock (a mass failover): the lock is
        released before anyone waits for the disk, so 1,000 switches cost a few fsyncs instead
        of 1,000 serialised ones."""
        body = self.entry(*args, **kwargs)
        self._append(body)
        return body

    def mark_state(self, snapshot: Callable[[], Any], write: Callable[[Any], None]) -> None:
        """Have the next group commit save the state (snapshot taken at commit time)."""
        self._state = (snapshot, write)
        self._seq += 1
        self._kick()

    async def sync(self) -> None:
        """Return once everything queued before this call is on disk, or waits in memory
        because the disk refused it. Never raises: the disk must not fail a failover."""
        target = self._seq
        while self._done < target:
            self._kick()
            assert self._committer is not None
            if self._round is None or self._round.done():
                self._round = asyncio.get_running_loop().create_future()
            # The end of the round in progress, not of the committer: under a steady flow of
            # entries the committer runs for seconds, and a mass failover's decisions waited
            # for the journal to fall quiet (hundreds of ms) instead of for their own write.
            await asyncio.wait([self._round, self._committer], return_when=FIRST_COMPLETED)

    def _append(self, body: dict[str, Any]) -> None:
        self._pending.append((body, self._encode(body)))
        self._fresh.append(body)
        self._seq += 1
        self._kick()

    @staticmethod
    def _encode(body: dict[str, Any]) -> bytes:
        """Encode now, so a bad value (a bug) costs its own details, never the queue."""
        try:
            return encode_entry(body)
        except (TypeError, ValueError) as exc:
            log.error(
                "journal: a %s entry is not JSON (%s); keeping its summary", body["kind"], exc
            )
            core = {k: body.get(k) for k in ("time", "ts", "instance", "service", "kind")}
            return encode_entry(
                {**core, "reason": str(body.get("reason")), "unencodable": repr(exc)}
            )

    def _kick(self) -> None:
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit(), name="journal")

    async def _commit(self) -> None:
        while True:
            target = self._seq
            fresh, self._fresh = self._fresh, []
            self._trim()
            if (self._pending or self._state is not None) and self._due():
                try:
                    await self._attempt()
                except Exception as exc:  # a bug: never into the engine; back off, retry
                    log.exception("journal: write attempt failed")
                    self._refused(OSError(errno.EIO, f"internal error: {exc!r}"))
            self._done = target
            if self._round is not None and not self._round.done():
                self._round.set_result(None)
            for body in fresh:
                self._notify(body)
            if self._done >= self._seq:
                return

    def _due(self) -> bool:
        return asyncio.get_running_loop().time() >= self._retry_at

    async def _attempt(self) -> None:
        """Save the state and append what waits, in order; park what the disk refuses."""
        state, self._state = self._state, None
        snapshot = None
        if state is not None:
            try:
                snapshot = state[0]()
            except Exception:  # a bug: the next save may work, the entries must go on
                log.exception("journal: cannot take the state snapshot")
                state = None
        summary = self._summary()
        lines = ([summary] if summary else []) + [line for _, line in self._pending]
        saved, written, error = await asyncio.to_thread(self._flush, state, snapshot, lines)
        if state is not None and not saved and self._state is None:
            self._state = state  # the next attempt takes a fresh snapshot
        if summary and written:
            self._lost, written = None, written - 1
        for _ in range(written):
            self._pending.popleft()
        if error is not None:
            self._refused(error)
        elif self._behind_since is not None:
            self._caught_up()

    def _flush(
        self, state: StateSave | None, snapshot: Any, lines: list[bytes]
    ) -> tuple[bool, int, OSError | None]:
        """In a worker thread: (state saved, lines written, the disk's error). Stops at the
        first refused chunk, so what lands stays in order."""
        saved, error = state is None, None
        if state is not None:
            try:
                state[1](snapshot)
                saved = True
            except OSError as exc:
                error = exc
            except Exception:  # not serialisable (a bug): retrying cannot help
                log.exception("journal: the state cannot be saved")
                saved = True
        written = 0
        for start in range(0, len(lines), CHUNK):
            chunk = lines[start : start + CHUNK]
            try:
                self.store.append_lines(chunk)
            except JournalWriteError as exc:
                return saved, written + exc.landed, exc
            written += len(chunk)
        return saved, written, error

    def _refused(self, error: OSError) -> None:
        """Back off (the timer retries even if nothing new is journalled); alarm once."""
        first = self._behind_since is None
        self._delay = RETRY_FIRST if first else min(RETRY_MAX, self._delay * 2)
        loop = asyncio.get_running_loop()
        self._retry_at = loop.time() + self._delay
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(self._delay, self._kick)
        if not first:
            return
        self._behind_since = time.time()
        reason = (
            f"cannot write to {error.filename or self.store.state_dir}: "
            f"{error.strerror or error}; journal entries and state wait in memory (up to "
            f"{self.max_pending} entries, then the oldest are summarised) and are written in "
            f"order once the disk accepts them; free space in {self.store.state_dir}"
        )
        log.error("journal unwritable: %s", reason)
        self._append(self.entry("*", "journal_unwritable", Trigger.AUTO, reason, time.time()))

    def _caught_up(self) -> None:
        since = self._behind_since or time.time()
        self._behind_since, self._delay, self._retry_at = None, 0.0, float("-inf")
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waited = time.time() - since
        reason = f"journal writable again after {waited:.1f}s; every waiting entry is written"
        if self.lost_total:
            reason += (
                f" except {self.lost_total} dropped from memory (see the journal_lost entries)"
            )
        log.warning("%s", reason)
        self._append(self.entry("*", "journal_recovered", Trigger.AUTO, reason, time.time()))

    def _trim(self) -> None:
        """While the disk refuses writes, keep at most `max_pending` entries: drop the oldest
        into the `journal_lost` count. A disk that accepts writes takes any burst (10,000
        services failing over at once journal 20,000 entries in a second): nothing dropped."""
        excess = len(self._pending) - self.max_pending
        if excess <= 0 or self._behind_since is None:
            return
        if self._lost is None:
            first = float(self._pending[0][0].get("ts", time.time()))
            self._lost = _Lost(first, first)
            log.error(
                "journal: more than %d entries wait in memory; dropping the oldest (counted in "
                "a journal_lost entry written first once the disk accepts writes)",
                self.max_pending,
            )
        for _ in range(excess):
            self._lost.add(self._pending.popleft()[0])
        self.lost_total += excess

    def _summary(self) -> bytes | None:
        lost = self._lost
        if lost is None:
            return None
        kinds = ", ".join(f"{n} {k}" for k, n in lost.kinds.most_common())
        body = self.entry(
            "*",
            "journal_lost",
            Trigger.AUTO,
            f"{lost.count} entries made from {rfc3339(lost.first)} to {rfc3339(lost.last)} were "
            f"dropped from memory while {self.store.state_dir} refused writes ({kinds})",
            lost.first,
            result="error",
            lost=lost.count,
            kinds=dict(lost.kinds),
            services=dict(lost.services),
        )
        return self._encode(body)

    def _notify(self, body: dict[str, Any]) -> None:
        if self.on_entry is not None:
            try:
                self.on_entry(body)
            except Exception:  # a hook's bug must never fail the action being journalled
                log.exception("journal hook failed on a %s entry", body.get("kind"))

    def spawn(self, *args: Any, **kwargs: Any) -> None:
        """Write from synchronous code; the task is kept referenced until it is done."""
        task = asyncio.create_task(self.write(*args, **kwargs))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- reading and reporting -----------------------------------------------------------------

    def health(self) -> JournalHealth:
        failing = dict(self.store.failing)
        starts = [since for since, _ in failing.values()]
        if self._behind_since is not None:
            starts.append(self._behind_since)
        return JournalHealth(
            unwritable=bool(failing) or self._behind_since is not None,
            since=min(starts) if starts else None,
            errors=tuple(error for _, error in sorted(failing.values())),
            pending=len(self._pending) + (self._lost is not None),
            lost=self.lost_total,
            directory=str(self.store.state_dir),
        )

    async def history(
        self, service: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Like `Store.history`, plus the entries still waiting in memory (last, in order)."""
        waiting = [(b, line) for b, line in self._pending if service in (None, b.get("service"))]
        entries = await asyncio.to_thread(self.store.history, service, limit)
        if not waiting:
            return entries
        # Entries written while the file was read are on disk already: do not show them twice.
        landed = {encode_entry(e) for e in entries[-len(waiting) :]}
        merged = entries + [body for body, line in waiting if line not in landed]
        return merged[-limit:] if limit else merged

    async def close(self) -> None:
        """At shutdown: one last attempt whatever the backoff; what still cannot be written is
        logged in full (the process memory holding it is about to go)."""
        for _ in range(2):
            if not (self._pending or self._state is not None or self._lost):
                break
            self._retry_at = float("-inf")
            self._kick()
            assert self._committer is not None
            with contextlib.suppress(Exception):
                await asyncio.shield(self._committer)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending or self._lost:
            lines = b"".join(line for _, line in self._pending).decode(errors="replace")
            lost = f" (and {self._lost.count} dropped before)" if self._lost else ""
            log.error(
                "journal: %d entries%s could not be written to %s and are lost with this "
                "process; here they are, one JSON line each:\n%s",
                len(self._pending),
                lost,
                self.store.journal_path,
                lines.rstrip("\n"),
            )
