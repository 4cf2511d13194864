"""Several instances, one leader: election, views and intents in etcd (SPEC §6, HA.md).

Keys, under `coordination.etcd.prefix` (P):

- `P/leader`: the leader's instance name, put under its lease by a transaction that succeeds
  only if the key does not exist (`create_revision == 0`). Its create revision is the fencing
  token: a new leadership always has a larger one.
- `P/views/<instance>`: each instance's `View` (JSON), under its own lease, so the view of an
  instance that dies or loses etcd vanishes with it.
- `P/intents/<service>`: pins, pauses, acks and flap counters (JSON), without a lease: they
  outlive every instance. One key per service, so instances that act on different services
  never overwrite each other; the last writer of one service wins.

Three tasks keep the picture current:

- the keeper grants the lease and renews it every TTL/3. It keeps a local monotonic deadline,
  the time the last successful keepalive was *sent* plus the TTL etcd returned: etcd counts the
  lease from when it received the request, so etcd's expiry is never earlier. `is_leader()` is
  false from `deadline - margin` on, whether or not etcd answers, so a leader cut off from etcd
  (or frozen) stops writing before anyone else can be elected. It keeps renewing the same lease
  until etcd says it is gone (a new etcd leader extends every lease, so a short outage need not
  cost the leadership), then grants a new one.
- the syncer reads the whole prefix (one linearizable range) when woken and at least every
  TTL/3, derives leader, views and intents from that snapshot, campaigns when the leader key is
  absent and republishes this instance's view when it is missing from the snapshot. Deriving
  everything from full snapshots, never from a stream of deltas, means a missed event cannot
  leave the picture wrong for longer than TTL/3.
- the watcher keeps a streaming watch on the prefix and only wakes the syncer: a leader's
  revoked lease (clean stop) is noticed in milliseconds instead of TTL/3. It follows the client
  to another endpoint when the syncer's requests move there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from failover.config.types import EtcdConfig
from failover.coord.base import ChangeKind, View
from failover.coord.etcd_client import EtcdClient, EtcdError, KeyValue, b64
from failover.store import Store
from failover.units import format_duration

log = logging.getLogger(__name__)

__all__ = ["CoordinationError", "EtcdCoordinator"]

VIEW_MAX_AGE_TTLS = 3  # a view older than this many lease TTLs (by its `at`) is not counted


class CoordinationError(OSError):
    """The shared store did not take a write (an OSError so callers that persist state see it
    like a failed disk write)."""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class EtcdCoordinator:
    """The `Coordinator` for several instances sharing one etcd cluster (see the module doc)."""

    def __init__(
        self,
        instance: str,
        store: Store,
        config: EtcdConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.instance = instance
        self.on_change: Callable[[ChangeKind], None] | None = None
        self.config = config
        self._store = store
        self._clock = clock
        self._wall = wall
        self._client = EtcdClient(
            config.endpoints,
            timeout=config.timeout,
            tls=config.tls,
            username=config.username,
            password=config.password,
        )
        prefix = config.prefix.rstrip("/")
        self._root = prefix + "/"
        self._leader_key = f"{prefix}/leader"
        self._views_dir = f"{prefix}/views/"
        self._intents_dir = f"{prefix}/intents/"
        self.ttl = int(config.lease_ttl)  # as granted by etcd once the lease exists
        # stop acting this long before the lease deadline: covers a provider call already
        # started and the clock difference between here and etcd's leader
        self.margin = max(1.0, config.lease_ttl / 5)
        # lease and leadership
        self._lease = 0
        self._deadline = 0.0  # monotonic; meaningful while _lease
        self._next_keepalive = 0.0  # monotonic
        self._token = 0  # create revision of the leader key while it holds our lease
        self._leader_kv: KeyValue | None = None
        self._synced_at: float | None = None  # monotonic time of the last good snapshot
        self._problem: str | None = None  # the last etcd failure, until a request succeeds
        self._last_leader_state: tuple[bool, str | None, int] = (False, None, 0)
        # views
        self._my_view: View | None = None
        self._views: dict[str, View] = {}
        self._views_signature: str = _canonical({})
        # intents: canonical JSON per service
        self._intents: dict[str, str] = {}
        self._intent_revs: dict[str, int] = {}  # mod revision last seen or written, per service
        self._base: dict[str, str] = {}  # what the engine last loaded or saved, per service
        self._loaded_from_etcd = False
        # machinery
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._watcher: asyncio.Task[None] | None = None
        self._watch_endpoint: str | None = None
        self._step_down: asyncio.TimerHandle | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the shared intents (or fall back to the local copy) and start campaigning in
        the background: returns without waiting for a lease or the election."""
        self._loop = asyncio.get_running_loop()
        await self._client.open()
        try:
            await self._sync()
        except EtcdError as exc:
            self._note_problem(exc)
            local = await asyncio.to_thread(self._local_intents)
            self._intents = {s: _canonical(v) for s, v in local.items()}
            log.warning(
                "etcd: not reachable at start (%s); using the intents of the local state file "
                "until it answers, and not leading",
                exc,
            )
        self._tasks = [
            asyncio.create_task(self._keeper(), name="etcd-keeper"),
            asyncio.create_task(self._syncer(), name="etcd-syncer"),
        ]
        self._restart_watcher()

    async def aclose(self, *, revoke: bool = True) -> None:
        """Stop. With `revoke` (the normal stop) the lease is revoked: the leader key and this
        instance's view vanish at once, and another instance takes over within milliseconds.
        `revoke=False` leaves the lease to expire, as a crash would (tests, bench)."""
        if self._step_down is not None:
            self._step_down.cancel()
        tasks = [*self._tasks, *([self._watcher] if self._watcher else [])]
        self._tasks, self._watcher = [], None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        lease, self._lease, self._token = self._lease, 0, 0
        if revoke and lease:
            try:
                await self._client.lease_revoke(lease)
                log.info("etcd: lease revoked; another instance may lead at once")
            except EtcdError as exc:
                log.warning("etcd: could not revoke the lease (%s); it expires within its TTL", exc)
        await self._client.aclose()

    # --- reads (synchronous, from what was last learnt) ------------------------------------------

    def is_leader(self) -> bool:
        return bool(self._token and self._lease and self._clock() < self._deadline - self.margin)

    def lease_deadline(self) -> float:
        """The monotonic time until which the lease is surely valid (0: no lease)."""
        return self._deadline if self._lease else 0.0

    def leader_name(self) -> str | None:
        if self._token and self.is_leader():
            return self.instance
        if self._leader_kv is None or not self._fresh():
            return None
        return self._leader_kv.value.decode("utf-8", "replace")

    def fencing_token(self) -> int:
        return self._token if self.is_leader() else 0

    def token_valid(self, token: int) -> bool:
        return token != 0 and token == self._token and self.is_leader()

    def condition(self) -> str:
        if self.is_leader():
            return "leader"
        if self._token and self._lease:
            why = f"etcd unreachable ({self._problem})" if self._problem else "lease renewal late"
            return f"no leader: {why}; this instance stopped writing at its lease deadline"
        name = self.leader_name()
        if self._problem is not None and name is None:
            return f"no leader: etcd unreachable ({self._problem})"
        if name == self.instance:
            return "no leader: the leader key still names this instance under a lost lease"
        if name is not None:
            suffix = f" (etcd unreachable from here: {self._problem})" if self._problem else ""
            return f"follower of {name}{suffix}"
        if not self._lease:
            return "no leader: waiting for a lease"
        return "no leader: election in progress"

    def views(self) -> dict[str, View]:
        oldest = self._wall() - VIEW_MAX_AGE_TTLS * self.ttl
        out = {name: v for name, v in self._views.items() if v.at >= oldest}
        if self._my_view is not None and self._my_view.at >= oldest:
            out[self.instance] = self._my_view
        return out

    def load_intents(self) -> dict[str, Any]:
        """The shared intents as last read; what is returned becomes the base that
        `save_intents` compares with, so only services changed here are written back."""
        self._base = dict(self._intents)
        return {s: json.loads(v) for s, v in self._intents.items()}

    # --- writes -----------------------------------------------------------------------------------

    async def publish_view(self, view: View) -> None:
        """Put this instance's view under its lease. Never raises for etcd trouble: without a
        lease (or on failure) the view is kept and the syncer publishes it when it can."""
        self._my_view = view
        lease = self._lease
        if not lease:
            return
        try:
            await self._client.put(
                self._views_dir + self.instance, _canonical(view.as_json()), lease=lease
            )
        except EtcdError as exc:
            self._note_problem(exc)
            log.debug("etcd: view not published (%s); retried by the next sync", exc)

    def save_intents(self, intents: dict[str, Any]) -> None:
        """Write the services whose intents changed here to etcd, then the local copy.

        Blocking (called from a worker thread); raises CoordinationError when etcd did not take
        the write in time."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise CoordinationError("the etcd coordinator is not running; intents not saved")
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:  # it would wait for itself
            raise RuntimeError("save_intents blocks: call it from a worker thread")
        wait = self.config.timeout * len(self.config.endpoints) + 1.0
        future = asyncio.run_coroutine_threadsafe(self._save_intents(intents), loop)
        try:
            merged = future.result(timeout=wait)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise CoordinationError(
                f"etcd did not store the intents within {format_duration(wait)}"
            ) from None
        except EtcdError as exc:
            raise CoordinationError(f"etcd did not store the intents: {exc}") from None
        self._store.save_state({"version": 1, "services": merged})

    async def _save_intents(self, intents: Mapping[str, Any]) -> dict[str, Any]:
        encoded = {s: _canonical(v) for s, v in intents.items()}
        changed = {s: v for s, v in encoded.items() if self._base.get(s) != v}
        if changed:
            ops = [
                {"request_put": {"key": b64(self._intents_dir + s), "value": b64(v)}}
                for s, v in sorted(changed.items())
            ]
            _, responses = await self._client.txn([], ops)
            revision = _revision(responses[0].get("response_put", {})) if responses else 0
            for service, value in changed.items():
                self._intents[service] = value
                self._base[service] = value
                self._intent_revs[service] = revision
            log.debug("etcd: intents of %s saved", ", ".join(sorted(changed)))
        return {s: json.loads(v) for s, v in self._intents.items()}

    # --- the keeper: lease and deadline -----------------------------------------------------------

    async def _keeper(self) -> None:
        while True:
            try:
                await self._keep()
            except Exception:  # a bug must not end the renewals: is_leader() goes false anyway
                log.exception("etcd: the lease keeper failed")
                await asyncio.sleep(min(1.0, self.ttl / 3))

    async def _keep(self) -> None:
        backoff = 0.2
        while True:
            if not self._lease:
                if not await self._grant():
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.ttl / 3)
                    continue
                backoff = 0.2
                self._next_keepalive = self._clock() + self.ttl / 3
            await self._sleep_until(self._next_keepalive)
            lease = self._lease
            if not lease:
                continue  # the syncer found it gone
            sent = self._clock()
            try:
                ttl = await self._client.lease_keepalive(lease)
            except EtcdError as exc:
                self._note_problem(exc)
                self._check_leader()
                self._next_keepalive = self._clock() + min(0.5, self.ttl / 10)
                continue
            self._problem = None
            self._next_keepalive = sent + self.ttl / 3
            if lease != self._lease:
                continue
            if ttl <= 0:
                log.warning("etcd: the lease expired before it was renewed; granting a new one")
                self._lease_lost()
                continue
            self._deadline = max(self._deadline, sent + ttl)
            self._check_leader()

    async def _grant(self) -> bool:
        sent = self._clock()
        try:
            lease, ttl = await self._client.lease_grant(self.ttl)
        except EtcdError as exc:
            self._note_problem(exc)
            return False
        self._problem = None
        self._lease, self._deadline, self.ttl = lease, sent + ttl, max(ttl, 2)
        log.debug("etcd: lease %x granted for %ss", lease, ttl)
        self._wake.set()  # campaign and publish the view under it
        return True

    def _lease_lost(self) -> None:
        self._lease, self._token = 0, 0
        self._check_leader()

    async def _sleep_until(self, due: float) -> None:
        await asyncio.sleep(max(0.0, due - self._clock()))

    def _arm_step_down(self) -> None:
        """Announce the step-down (on_change) at `deadline - margin` even while the keeper
        waits on an endpoint that does not answer."""
        if self._step_down is not None:
            self._step_down.cancel()
            self._step_down = None
        if self._loop is not None and self._token and self._lease:
            delay = self._deadline - self.margin - self._clock()
            self._step_down = self._loop.call_later(max(0.0, delay) + 0.001, self._check_leader)

    # --- the syncer: snapshot, campaign, view -----------------------------------------------------

    async def _syncer(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.ttl / 3)
            self._wake.clear()
            try:
                await self._sync()
            except EtcdError as exc:
                self._note_problem(exc)
                self._check_leader()
            except Exception:  # a bug or a broken state file must not end the coordination
                log.exception("etcd: the sync failed")
            if self._client.endpoint != self._watch_endpoint:
                self._restart_watcher()

    async def _sync(self) -> None:
        kvs, revision = await self._client.range(self._root, prefix=True)
        self._synced_at = self._clock()
        self._problem = None
        by_key = {kv.key: kv for kv in kvs}
        await self._apply_intents(by_key, revision)
        self._apply_views(by_key)
        self._leader_kv = by_key.get(self._leader_key)
        lease = self._lease
        if self._leader_kv is None and lease:
            self._leader_kv = await self._campaign(lease)
        held = self._leader_kv is not None and lease != 0 and self._leader_kv.lease == lease
        self._token = self._leader_kv.create_revision if held and self._leader_kv else 0
        self._check_leader()
        mine = by_key.get(self._views_dir + self.instance)
        if self._my_view is not None and lease and (mine is None or mine.lease != lease):
            await self.publish_view(self._my_view)

    async def _campaign(self, lease: int) -> KeyValue | None:
        key = b64(self._leader_key)
        try:
            _, responses = await self._client.txn(
                [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
                [
                    {"request_put": {"key": key, "value": b64(self.instance), "lease": str(lease)}},
                    {"request_range": {"key": key}},
                ],
                [{"request_range": {"key": key}}],
            )
        except EtcdError as exc:
            if exc.code != 5:  # NOT_FOUND: the lease expired meanwhile
                raise
            if lease == self._lease:
                self._lease_lost()
            return None
        kvs = responses[-1].get("response_range", {}).get("kvs", []) if responses else []
        return KeyValue.from_json(kvs[0]) if kvs else None

    async def _apply_intents(self, by_key: Mapping[str, KeyValue], revision: int) -> None:
        """Take in the snapshot's intents. A snapshot read before one of our own saves may
        arrive after it: a key changes here only when etcd's revision moved past what we know."""
        found: dict[str, KeyValue] = {
            key[len(self._intents_dir) :]: kv
            for key, kv in by_key.items()
            if key.startswith(self._intents_dir) and len(key) > len(self._intents_dir)
        }
        if not self._loaded_from_etcd:
            self._loaded_from_etcd = True
            if not found and await self._seed_intents():
                return  # the snapshot is older than the seed; the next sync reads it back
        changed = False
        for service, kv in found.items():
            try:
                value = _canonical(json.loads(kv.value))
            except ValueError:
                log.warning("etcd: %s is not JSON; ignored", kv.key)
                continue
            if kv.mod_revision > self._intent_revs.get(service, 0):
                changed = changed or self._intents.get(service) != value
                self._intents[service] = value
                self._intent_revs[service] = kv.mod_revision
        for service in [s for s in self._intents if s not in found]:
            if revision > self._intent_revs.get(service, 0):
                del self._intents[service]  # deleted in etcd (by hand): back to the defaults
                self._intent_revs.pop(service, None)
                changed = True
        if changed:
            self._emit("intents")

    async def _seed_intents(self) -> bool:
        """etcd holds no intents: carry over the local state file's (a move from standalone
        keeps its pins). Only if no other instance seeded first."""
        local = await asyncio.to_thread(self._local_intents)
        if not local:
            return False
        encoded = {s: _canonical(v) for s, v in local.items()}
        keys = {s: b64(self._intents_dir + s) for s in encoded}
        ok, _ = await self._client.txn(
            [
                {"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
                for k in keys.values()
            ],
            [{"request_put": {"key": keys[s], "value": b64(v)}} for s, v in encoded.items()],
        )
        if ok:
            self._intents = dict(encoded)
            log.info(
                "etcd: no shared intents yet; seeded them from the local state file (%s)",
                ", ".join(sorted(encoded)),
            )
        return ok

    def _local_intents(self) -> dict[str, Any]:
        services = self._store.load_state().get("services", {})
        return services if isinstance(services, dict) else {}

    def _apply_views(self, by_key: Mapping[str, KeyValue]) -> None:
        views: dict[str, View] = {}
        for key, kv in by_key.items():
            name = key[len(self._views_dir) :]
            if not key.startswith(self._views_dir) or not name or name == self.instance:
                continue
            try:
                views[name] = View.from_json(json.loads(kv.value))
            except (ValueError, KeyError, TypeError):
                log.debug("etcd: %s is not a view; ignored", key)
        self._views = views
        oldest = self._wall() - VIEW_MAX_AGE_TTLS * self.ttl
        signature = _canonical(
            {
                n: [v.location, v.isolated, v.as_json()["targets"]]
                for n, v in views.items()
                if v.at >= oldest
            }
        )
        if signature != self._views_signature:
            self._views_signature = signature
            self._emit("views")

    # --- the watcher ------------------------------------------------------------------------------

    def _restart_watcher(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        self._watch_endpoint = self._client.endpoint
        self._watcher = asyncio.create_task(self._watch(), name="etcd-watcher")

    async def _watch(self) -> None:
        backoff = 0.1
        while True:
            try:
                async for _ in self._client.watch(self._root, prefix=True):
                    self._wake.set()  # the first batch (created) covers the gap before it
                    backoff = 0.1
            except EtcdError as exc:
                log.debug("etcd: watch broken (%s)", exc)
            except Exception:
                log.exception("etcd: the watch failed")
            self._watch_endpoint = self._client.endpoint
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.ttl / 3)

    # --- changes ----------------------------------------------------------------------------------

    def _fresh(self) -> bool:
        return self._synced_at is not None and self._clock() - self._synced_at <= self.ttl

    def _note_problem(self, exc: Exception) -> None:
        if self._problem is None:
            log.warning("etcd: %s", exc)
        self._problem = str(exc)

    def _check_leader(self) -> None:
        self._arm_step_down()
        state = (self.is_leader(), self.leader_name(), self.fencing_token())
        if state == self._last_leader_state:
            return
        was_leader = self._last_leader_state[0]
        self._last_leader_state = state
        if state[0] and not was_leader:
            log.info("etcd: %s leads (fencing token %d)", self.instance, state[2])
        elif was_leader and not state[0]:
            log.warning("etcd: %s stopped leading: %s", self.instance, self.condition())
        self._emit("leader")

    def _emit(self, kind: ChangeKind) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(kind)
        except Exception:
            log.exception("etcd: the %s change handler failed", kind)


def _revision(response: Mapping[str, Any]) -> int:
    return int(response.get("header", {}).get("revision", 0))
