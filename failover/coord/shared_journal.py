"""The history of several instances, shared: journal entries copied to etcd, with bounded retention.

Each instance keeps its complete journal in its own state dir (`journal.py`); the decisions of
a leader live there. So that `history` on any instance shows them, every instance also copies
each entry to etcd, one key per entry under `<prefix>.journal/`:
`<microseconds since the epoch, 16 digits>-<instance>-<sequence>`, so keys sort by time across
instances. The keys sit beside `<prefix>/`, not under it, on purpose: the coordinator reads and
watches the whole of `<prefix>/` on every change, and the history must not weigh on the
election. At most `retain` entries are kept (every instance deletes the oldest beyond that after
its writes); the full history of each instance stays in its own journal.

Copying never blocks or fails what is being journalled: entries wait in a bounded queue (beyond
it the oldest are dropped, and counted) and one task sends them in batches, retrying with
backoff while etcd does not answer. Reading merges etcd's copy with this instance's journal;
when etcd does not answer, the reader says so and shows this instance's journal alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Iterable
from typing import Any

from failover.config.types import EtcdConfig
from failover.coord.etcd_client import EtcdClient, EtcdError, KeyValue, b64

log = logging.getLogger(__name__)

RETAIN = 1000  # entries kept in etcd, all instances together
PENDING_MAX = 1000  # entries waiting for etcd in memory; beyond, the oldest are dropped
BATCH = 64  # puts per transaction (etcd allows 128 operations per transaction by default)
TRIM_EVERY = 50  # entries written between two retention checks
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0
CLOSE_WAIT = 2.0  # seconds `aclose` spends sending what still waits


def journal_dir(prefix: str) -> str:
    return prefix.rstrip("/") + ".journal/"


def _range_end(prefix: str) -> str:
    raw = prefix.encode()
    return b64(raw[:-1] + bytes([raw[-1] + 1]))


def entry_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies one entry in both copies (this instance's journal and etcd's)."""
    return (entry.get("instance"), entry.get("ts"), entry.get("kind"), entry.get("service"))


def merge(*sources: Iterable[dict[str, Any]], limit: int | None = None) -> list[dict[str, Any]]:
    """Every entry once, in time order; the last `limit`."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for source in sources:
        for entry in source:
            seen.setdefault(entry_key(entry), entry)
    ordered = sorted(seen.values(), key=lambda e: float(e.get("ts") or 0.0))
    return ordered[-limit:] if limit else ordered


class SharedJournal:
    """`start()`, then `publish(entry)` from the journal's hook; `read()`; `aclose()`."""

    def __init__(self, etcd: EtcdConfig, instance: str, *, retain: int = RETAIN) -> None:
        self.instance = instance
        self.retain = retain
        self.dir = journal_dir(etcd.prefix)
        self.client = EtcdClient(
            etcd.endpoints,
            timeout=etcd.timeout,
            tls=etcd.tls,
            username=etcd.username,
            password=etcd.password,
        )
        self.problem: str | None = None  # the last failure to write, until a write succeeds
        self.dropped = 0  # entries never copied (the queue was full)
        self._pending: deque[tuple[str, str]] = deque()
        self._inflight = 0  # entries of the transaction being sent
        self._seq = 0
        self._since_trim = TRIM_EVERY  # check the retention after the first write
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()  # nothing waits, or the last attempt failed
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.open()
        self._task = asyncio.create_task(self._run(), name="shared-journal")

    def publish(self, entry: dict[str, Any]) -> None:
        """Queue a copy of `entry` for etcd. Never blocks, never raises."""
        try:
            value = json.dumps(entry, separators=(",", ":"), default=str, ensure_ascii=False)
            micros = int(float(entry.get("ts") or 0.0) * 1_000_000)
        except (TypeError, ValueError) as exc:
            log.debug("shared journal: entry not copied (%s)", exc)
            return
        self._seq += 1
        if len(self._pending) >= PENDING_MAX:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append((f"{self.dir}{micros:016d}-{self.instance}-{self._seq:08d}", value))
        self._wake.set()

    @property
    def waiting(self) -> int:
        return len(self._pending) + self._inflight

    async def read(self, service: str | None = None) -> list[dict[str, Any]]:
        """Every instance's entries kept in etcd (of `service`, or all), in time order.
        Raises EtcdError when etcd does not answer."""
        answer = await self.client.call(
            "kv/range", {"key": b64(self.dir), "range_end": _range_end(self.dir)}
        )
        entries = []
        for raw in answer.get("kvs", []):
            kv = KeyValue.from_json(raw)
            try:
                entry = json.loads(kv.value)
            except ValueError:
                continue
            if isinstance(entry, dict) and service in (None, entry.get("service")):
                entries.append(entry)
        return merge(entries)

    async def aclose(self) -> None:
        """Send what waits (for at most CLOSE_WAIT seconds), then stop."""
        if self._task is not None:
            if self.waiting:
                self._wake.set()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CLOSE_WAIT):
                        self._settled.clear()
                        await self._settled.wait()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._pending:
            log.warning(
                "shared journal: %d entries not copied to etcd (they are in this instance's "
                "journal)",
                len(self._pending),
            )
        await self.client.aclose()

    # --- the sender -------------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            if not self._pending:
                self._settled.set()
                await self._wake.wait()
            self._wake.clear()
            try:
                await self._send()
            except EtcdError as exc:
                if self.problem is None:
                    log.warning("shared journal: etcd did not take the entries (%s); retrying", exc)
                self.problem = str(exc)
                self._settled.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            except Exception:  # a bug must not end the copies
                log.exception("shared journal: sending failed")
                await asyncio.sleep(backoff)
                continue
            backoff = BACKOFF_FIRST

    async def _send(self) -> None:
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            ops = [{"request_put": {"key": b64(k), "value": b64(v)}} for k, v in batch]
            self._inflight = len(batch)
            try:
                await self.client.txn([], ops)
            except BaseException:
                self._inflight = 0
                room = PENDING_MAX - len(self._pending)
                self.dropped += max(0, len(batch) - room)
                self._pending.extendleft(reversed(batch[len(batch) - max(0, room) :]))
                raise
            self._inflight = 0
            self.problem = None
            self._since_trim += len(batch)
        if self._since_trim >= TRIM_EVERY:
            self._since_trim = 0
            await self.trim()

    async def trim(self) -> None:
        """Delete the oldest entries beyond `retain` (all instances' together)."""
        span = {"key": b64(self.dir), "range_end": _range_end(self.dir)}
        answer = await self.client.call("kv/range", {**span, "count_only": True})
        excess = int(answer.get("count", 0)) - self.retain
        if excess <= 0:
            return
        answer = await self.client.call("kv/range", {**span, "keys_only": True, "limit": excess})
        kvs = answer.get("kvs", [])
        if not kvs:
            return
        last = KeyValue.from_json(kvs[-1]).key
        await self.client.call(
            "kv/deleterange", {"key": b64(self.dir), "range_end": b64(last + "\0")}
        )
        log.debug("shared journal: %d oldest entries deleted (retention %d)", excess, self.retain)
