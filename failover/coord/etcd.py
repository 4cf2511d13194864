"""Several instances, one leader: election, views and intents in etcd.

Keys, under `coordination.etcd.prefix` (P): `P/leader` (the leader's name under its lease; the
key's create revision is the fencing token), `P/views/<instance>` and `P/intents/<service>`.
The coordinator is two halves and the tasks that keep them current:

- `etcd_lease.Leadership`: the lease, its local deadline and the leadership held under it
  (the keeper task renews the lease every TTL/3); it alone says whether this instance may write.
- `etcd_shared.SharedState`: the views of every instance and the intents of every service.
- the syncer reads the whole prefix (one linearizable range) when woken and at least every
  TTL/3, and hands that snapshot to both halves: the leader key to the election (which
  campaigns when it is absent), the views and the intents to the shared state (which publishes
  this instance's view again when the snapshot lacks it). Deriving everything from full
  snapshots, never from a stream of deltas, means a missed event cannot leave the picture wrong
  for longer than TTL/3.
- the watcher keeps a streaming watch on the prefix and only wakes the syncer: a leader's
  revoked lease (clean stop) is noticed in milliseconds instead of TTL/3. It follows the client
  to another endpoint when the syncer's requests move there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from failover.config.types import EtcdConfig
from failover.coord.base import ChangeKind, View
from failover.coord.etcd_client import EtcdClient, EtcdError
from failover.coord.etcd_lease import Leadership, Link
from failover.coord.etcd_shared import CoordinationError, SharedState
from failover.store import Store

log = logging.getLogger(__name__)

__all__ = ["CoordinationError", "EtcdCoordinator"]


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
        self._client = EtcdClient(
            config.endpoints,
            timeout=config.timeout,
            tls=config.tls,
            username=config.username,
            password=config.password,
        )
        self._link = Link(self._client)
        prefix = config.prefix.rstrip("/")
        self._root = prefix + "/"
        self._wake = asyncio.Event()
        self.leadership = Leadership(
            instance,
            self._link,
            f"{prefix}/leader",
            config.lease_ttl,
            clock=clock,
            changed=lambda: self._emit("leader"),
            granted=self._wake.set,  # campaign and publish the view under the new lease
        )
        self.shared = SharedState(
            instance, self._link, self.leadership, store, config, prefix, wall=wall, emit=self._emit
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._watcher: asyncio.Task[None] | None = None
        self._watch_endpoint: str | None = None

    @property
    def ttl(self) -> int:
        return self.leadership.ttl

    @property
    def margin(self) -> float:
        return self.leadership.margin

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the shared intents (or fall back to the local copy) and start campaigning in
        the background: returns without waiting for a lease or the election."""
        self.shared.loop = asyncio.get_running_loop()
        await self._client.open()
        try:
            await self._sync()
        except EtcdError as exc:
            self._link.failed(exc)
            await self.shared.use_local_intents()
            log.warning(
                "etcd: not reachable at start (%s); using the intents of the local state file "
                "until it answers, and not leading",
                exc,
            )
        self._tasks = [
            asyncio.create_task(self.leadership.keeper(), name="etcd-keeper"),
            asyncio.create_task(self._syncer(), name="etcd-syncer"),
        ]
        self._restart_watcher()

    async def aclose(self, *, revoke: bool = True) -> None:
        """Stop. With `revoke` (the normal stop) the lease is revoked: the leader key and this
        instance's view vanish at once, and another instance takes over within milliseconds.
        `revoke=False` leaves the lease to expire, as a crash would (tests, bench)."""
        lease = self.leadership.release()
        tasks = [*self._tasks, *([self._watcher] if self._watcher else [])]
        self._tasks, self._watcher = [], None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if revoke and lease:
            await self.leadership.revoke(lease)
        await self._client.aclose()

    # --- the Coordinator interface: leadership ----------------------------------------------------

    def is_leader(self) -> bool:
        return self.leadership.is_leader()

    def lease_deadline(self) -> float:
        """The monotonic time until which the lease is surely valid (0: no lease)."""
        return self.leadership.lease_deadline()

    def leader_name(self) -> str | None:
        return self.leadership.leader_name()

    def fencing_token(self) -> int:
        return self.leadership.fencing_token()

    def token_valid(self, token: int) -> bool:
        return self.leadership.token_valid(token)

    def condition(self) -> str:
        return self.leadership.condition()

    # --- the Coordinator interface: shared state --------------------------------------------------

    def views(self) -> dict[str, View]:
        return self.shared.views()

    def load_intents(self) -> dict[str, Any]:
        return self.shared.load_intents()

    async def publish_view(self, view: View) -> None:
        await self.shared.publish_view(view)

    def save_intents(self, intents: dict[str, Any]) -> None:
        self.shared.save_intents(intents)

    # --- the syncer: one snapshot for both halves -------------------------------------------------

    async def _syncer(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # arrives as the event is set, and aclose() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ttl / 3):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._sync()
            except EtcdError as exc:
                self._link.failed(exc)
                self.leadership.check()
            except Exception:  # a bug or a broken state file must not end the coordination
                log.exception("etcd: the sync failed")
            if self._client.endpoint != self._watch_endpoint:
                self._restart_watcher()

    async def _sync(self) -> None:
        kvs, revision = await self._client.range(self._root, prefix=True)
        self.leadership.snapshot_read()
        self._link.answered()
        by_key = {kv.key: kv for kv in kvs}
        await self.shared.apply_intents(by_key, revision)
        self.shared.apply_views(by_key)
        await self.leadership.settle(by_key.get(self.leadership.leader_key))
        await self.shared.republish(by_key)

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

    def _emit(self, kind: ChangeKind) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(kind)
        except Exception:
            log.exception("etcd: the %s change handler failed", kind)
