"""The lease and the leadership it carries: the part of the etcd coordinator that decides
whether this instance may write DNS now (README "Fencing").

- The keeper grants the lease and renews it every TTL/3. It keeps a local monotonic deadline,
  the time the last successful keepalive was *sent* plus the TTL etcd returned: etcd counts the
  lease from when it received the request, so etcd's expiry is never earlier. `is_leader()` is
  false from `deadline - margin` on, whether or not etcd answers, so a leader cut off from etcd
  (or frozen) stops writing before anyone else can be elected. It keeps renewing the same lease
  until etcd says it is gone (a new etcd leader extends every lease, so a short outage need not
  cost the leadership), then grants a new one.
- The election: `P/leader` holds the leader's instance name, put under its lease by a
  transaction that succeeds only if the key does not exist (`create_revision == 0`). Its create
  revision is the fencing token: a new leadership always has a larger one. The coordinator's
  syncer hands each snapshot's leader key to `settle`, which campaigns when it is absent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from failover.coord.etcd_client import EtcdClient, EtcdError, KeyValue, b64

log = logging.getLogger("failover.coord.etcd")


class Link:
    """The client both halves of the coordinator share, and its last failure: `status` says
    why nobody leads with it, and it is logged once per outage, not once per request."""

    def __init__(self, client: EtcdClient) -> None:
        self.client = client
        self.problem: str | None = None  # the last etcd failure, until a request succeeds

    def failed(self, exc: Exception) -> None:
        if self.problem is None:
            log.warning("etcd: %s", exc)
        self.problem = str(exc)

    def answered(self) -> None:
        self.problem = None


class Leadership:
    """This instance's lease, its local deadline, and the leadership held under it."""

    def __init__(
        self,
        instance: str,
        link: Link,
        leader_key: str,
        lease_ttl: float,
        *,
        clock: Callable[[], float],
        changed: Callable[[], None],
        granted: Callable[[], None],
    ) -> None:
        """`changed` is called when who leads (or the token) changes; `granted` when a new
        lease exists (campaign and publish under it)."""
        self.instance = instance
        self.link = link
        self.leader_key = leader_key
        self.ttl = int(lease_ttl)  # as granted by etcd once the lease exists
        # stop acting this long before the lease deadline: covers a provider call already
        # started and the clock difference between here and etcd's leader
        self.margin = max(1.0, lease_ttl / 5)
        self._clock = clock
        self._changed = changed
        self._granted = granted
        self.lease = 0
        self.deadline = 0.0  # monotonic; meaningful while `lease`
        self._next_keepalive = 0.0  # monotonic
        self.token = 0  # create revision of the leader key while it holds our lease
        self.leader_kv: KeyValue | None = None
        self.synced_at: float | None = None  # monotonic time of the last good snapshot
        self._last_state: tuple[bool, str | None, int] = (False, None, 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._step_down: asyncio.TimerHandle | None = None

    @property
    def client(self) -> EtcdClient:
        return self.link.client

    # --- reads ------------------------------------------------------------------------------------

    def is_leader(self) -> bool:
        return bool(self.token and self.lease and self._clock() < self.deadline - self.margin)

    def lease_deadline(self) -> float:
        return self.deadline if self.lease else 0.0

    def leader_name(self) -> str | None:
        if self.token and self.is_leader():
            return self.instance
        if self.leader_kv is None or not self.fresh():
            return None
        return self.leader_kv.value.decode("utf-8", "replace")

    def fencing_token(self) -> int:
        return self.token if self.is_leader() else 0

    def token_valid(self, token: int) -> bool:
        return token != 0 and token == self.token and self.is_leader()

    def condition(self) -> str:
        problem = self.link.problem
        if self.is_leader():
            return "leader"
        if self.token and self.lease:
            why = f"etcd unreachable ({problem})" if problem else "lease renewal late"
            return f"no leader: {why}; this instance stopped writing at its lease deadline"
        name = self.leader_name()
        if problem is not None and name is None:
            return f"no leader: etcd unreachable ({problem})"
        if name == self.instance:
            return "no leader: the leader key still names this instance under a lost lease"
        if name is not None:
            suffix = f" (etcd unreachable from here: {problem})" if problem else ""
            return f"follower of {name}{suffix}"
        if not self.lease:
            return "no leader: waiting for a lease"
        return "no leader: election in progress"

    def fresh(self) -> bool:
        return self.synced_at is not None and self._clock() - self.synced_at <= self.ttl

    # --- the election, from each snapshot ---------------------------------------------------------

    def snapshot_read(self) -> None:
        """A snapshot of the prefix was just read: what it says of the leader is fresh."""
        self.synced_at = self._clock()

    async def settle(self, leader_kv: KeyValue | None) -> None:
        """Take in the snapshot's leader key; campaign when it is absent."""
        self.leader_kv = leader_kv
        lease = self.lease
        if self.leader_kv is None and lease:
            self.leader_kv = await self._campaign(lease)
        held = self.leader_kv is not None and lease != 0 and self.leader_kv.lease == lease
        self.token = self.leader_kv.create_revision if held and self.leader_kv else 0
        self.check()

    async def _campaign(self, lease: int) -> KeyValue | None:
        key = b64(self.leader_key)
        try:
            _, responses = await self.client.txn(
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
            if lease == self.lease:
                self.lease_lost()
            return None
        kvs = responses[-1].get("response_range", {}).get("kvs", []) if responses else []
        return KeyValue.from_json(kvs[0]) if kvs else None

    # --- the keeper: lease and deadline -----------------------------------------------------------

    async def keeper(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                await self._keep()
            except Exception:  # a bug must not end the renewals: is_leader() goes false anyway
                log.exception("etcd: the lease keeper failed")
                await asyncio.sleep(min(1.0, self.ttl / 3))

    async def _keep(self) -> None:
        backoff = 0.2
        while True:
            if not self.lease:
                if not await self._grant():
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.ttl / 3)
                    continue
                backoff = 0.2
                self._next_keepalive = self._clock() + self.ttl / 3
            await asyncio.sleep(max(0.0, self._next_keepalive - self._clock()))
            lease = self.lease
            if not lease:
                continue  # the syncer found it gone
            sent = self._clock()
            try:
                ttl = await self.client.lease_keepalive(lease)
            except EtcdError as exc:
                self.link.failed(exc)
                self.check()
                self._next_keepalive = self._clock() + min(0.5, self.ttl / 10)
                continue
            self.link.answered()
            self._next_keepalive = sent + self.ttl / 3
            if lease != self.lease:
                continue
            if ttl <= 0:
                log.warning("etcd: the lease expired before it was renewed; granting a new one")
                self.lease_lost()
                continue
            self.deadline = max(self.deadline, sent + ttl)
            self.check()

    async def _grant(self) -> bool:
        sent = self._clock()
        try:
            lease, ttl = await self.client.lease_grant(self.ttl)
        except EtcdError as exc:
            self.link.failed(exc)
            return False
        self.link.answered()
        self.lease, self.deadline, self.ttl = lease, sent + ttl, max(ttl, 2)
        log.debug("etcd: lease %x granted for %ss", lease, ttl)
        self._granted()
        return True

    def lease_lost(self) -> None:
        self.lease, self.token = 0, 0
        self.check()

    def release(self) -> int:
        """Stop acting (the coordinator stops): no lease, no leadership, no step-down timer.
        Returns the lease, for `revoke`."""
        if self._step_down is not None:
            self._step_down.cancel()
            self._step_down = None
        lease, self.lease, self.token = self.lease, 0, 0
        return lease

    async def revoke(self, lease: int) -> None:
        """Give the lease back (a clean stop): the leader key and this instance's view vanish
        at once. Never raises: unrevoked, the lease expires within its TTL."""
        try:
            await self.client.lease_revoke(lease)
            log.info("etcd: lease revoked; another instance may lead at once")
        except EtcdError as exc:
            log.warning("etcd: could not revoke the lease (%s); it expires within its TTL", exc)

    # --- changes ----------------------------------------------------------------------------------

    def _arm_step_down(self) -> None:
        """Announce the step-down (`changed`) at `deadline - margin` even while the keeper
        waits on an endpoint that does not answer."""
        if self._step_down is not None:
            self._step_down.cancel()
            self._step_down = None
        if self._loop is not None and self.token and self.lease:
            delay = self.deadline - self.margin - self._clock()
            self._step_down = self._loop.call_later(max(0.0, delay) + 0.001, self.check)

    def check(self) -> None:
        """Tell `changed` when who leads changed since the last call."""
        self._arm_step_down()
        state = (self.is_leader(), self.leader_name(), self.fencing_token())
        if state == self._last_state:
            return
        was_leader = self._last_state[0]
        self._last_state = state
        if state[0] and not was_leader:
            log.info("etcd: %s leads (fencing token %d)", self.instance, state[2])
        elif was_leader and not state[0]:
            log.warning("etcd: %s stopped leading: %s", self.instance, self.condition())
        self._changed()
