"""What the instances share through etcd besides the leadership: views and intents.

- `P/views/<instance>`: each instance's `View` (JSON), under its own lease, so the view of an
  instance that dies or loses etcd vanishes with it.
- `P/intents/<service>`: pins, pauses, acks and flap counters (JSON), without a lease: they
  outlive every instance. One key per service, so instances that act on different services
  never overwrite each other; the last writer of one service wins.

Both are taken in from the coordinator's full snapshots (`apply_views`, `apply_intents`), never
from a stream of deltas.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from failover.config.types import EtcdConfig
from failover.coord.base import ChangeKind, View
from failover.coord.etcd_client import EtcdError, KeyValue, b64
from failover.coord.etcd_lease import Leadership, Link
from failover.store import Store
from failover.units import format_duration

log = logging.getLogger("failover.coord.etcd")

VIEW_MAX_AGE_TTLS = 3  # a view older than this many lease TTLs (by its `at`) is not counted


class CoordinationError(OSError):
    """The shared store did not take a write (an OSError so callers that persist state see it
    like a failed disk write)."""


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class SharedState:
    """This instance's view and everyone's, and the intents of every service."""

    def __init__(
        self,
        instance: str,
        link: Link,
        leadership: Leadership,
        store: Store,
        config: EtcdConfig,
        prefix: str,
        *,
        wall: Callable[[], float] = time.time,
        emit: Callable[[ChangeKind], None],
    ) -> None:
        self.instance = instance
        self.link = link
        self.leadership = leadership  # the lease the view is published under, and its TTL
        self.config = config
        self._store = store
        self._wall = wall
        self._emit = emit
        self.views_dir = f"{prefix}/views/"
        self.intents_dir = f"{prefix}/intents/"
        # views
        self._my_view: View | None = None
        self._views: dict[str, View] = {}
        self._views_signature: str = canonical({})
        # intents: canonical JSON per service
        self._intents: dict[str, str] = {}
        self._intent_revs: dict[str, int] = {}  # mod revision last seen or written, per service
        self._base: dict[str, str] = {}  # what the engine last loaded or saved, per service
        # per service: the body last handed to `save_intents` and its canonical text, and the
        # text last read back with its parsed body (unchanged services cost a lookup, not JSON)
        self._encoded: dict[str, tuple[Any, str]] = {}
        self._parsed: dict[str, tuple[str, Any]] = {}
        self._loaded_from_etcd = False
        self.loop: asyncio.AbstractEventLoop | None = None  # save_intents' bridge to it

    # --- views ------------------------------------------------------------------------------------

    def views(self) -> dict[str, View]:
        oldest = self._wall() - VIEW_MAX_AGE_TTLS * self.leadership.ttl
        out = {name: v for name, v in self._views.items() if v.at >= oldest}
        if self._my_view is not None and self._my_view.at >= oldest:
            out[self.instance] = self._my_view
        return out

    async def publish_view(self, view: View) -> None:
        """Put this instance's view under its lease. Never raises for etcd trouble: without a
        lease (or on failure) the view is kept and the syncer publishes it when it can."""
        self._my_view = view
        lease = self.leadership.lease
        if not lease:
            return
        try:
            await self.link.client.put(
                self.views_dir + self.instance, canonical(view.as_json()), lease=lease
            )
        except EtcdError as exc:
            self.link.failed(exc)
            log.debug("etcd: view not published (%s); retried by the next sync", exc)

    async def republish(self, by_key: Mapping[str, KeyValue]) -> None:
        """Publish this instance's view again when the snapshot lacks it under our lease."""
        lease = self.leadership.lease
        mine = by_key.get(self.views_dir + self.instance)
        if self._my_view is not None and lease and (mine is None or mine.lease != lease):
            await self.publish_view(self._my_view)

    def apply_views(self, by_key: Mapping[str, KeyValue]) -> None:
        views: dict[str, View] = {}
        for key, kv in by_key.items():
            name = key[len(self.views_dir) :]
            if not key.startswith(self.views_dir) or not name or name == self.instance:
                continue
            try:
                views[name] = View.from_json(json.loads(kv.value))
            except (ValueError, KeyError, TypeError):
                log.debug("etcd: %s is not a view; ignored", key)
        self._views = views
        oldest = self._wall() - VIEW_MAX_AGE_TTLS * self.leadership.ttl
        signature = canonical(
            {
                n: [v.location, v.isolated, v.as_json()["targets"]]
                for n, v in views.items()
                if v.at >= oldest
            }
        )
        if signature != self._views_signature:
            self._views_signature = signature
            self._emit("views")

    # --- intents ----------------------------------------------------------------------------------

    def load_intents(self) -> dict[str, Any]:
        """The shared intents as last read; what is returned becomes the base that
        `save_intents` compares with, so only services changed here are written back."""
        self._base = dict(self._intents)
        return {s: self._loaded(s, v) for s, v in self._intents.items()}

    def _canonical(self, service: str, body: Any) -> str:
        """`canonical(body)`, kept while the engine hands over the same body object: it does
        for every service it did not change, and at 10,000 services re-encoding them all on
        each group commit of a mass failover is most of a core."""
        cached = self._encoded.get(service)
        if cached is None or cached[0] is not body:
            cached = (body, canonical(body))
            self._encoded[service] = cached
        return cached[1]

    def _loaded(self, service: str, text: str) -> Any:
        """`json.loads(text)`, kept while the text is the same (the same object back, so the
        local state file's writer keeps its fragment too)."""
        cached = self._parsed.get(service)
        if cached is None or cached[0] != text:
            cached = (text, json.loads(text))
            self._parsed[service] = cached
        return cached[1]

    async def use_local_intents(self) -> None:
        """etcd did not answer at start: go by the local state file's until it does."""
        local = await asyncio.to_thread(self._local_intents)
        self._intents = {s: canonical(v) for s, v in local.items()}

    def save_intents(self, intents: dict[str, Any]) -> None:
        """Write the services whose intents changed here to etcd, then the local copy.

        Blocking (called from a worker thread); raises CoordinationError when etcd did not take
        the write in time."""
        loop = self.loop
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
        self._store.save_services_state(1, merged)

    async def _save_intents(self, intents: Mapping[str, Any]) -> dict[str, Any]:
        encoded = {s: self._canonical(s, v) for s, v in intents.items()}
        if len(self._encoded) > len(encoded):  # services a reload removed
            self._encoded = {s: c for s, c in self._encoded.items() if s in encoded}
        changed = {s: v for s, v in encoded.items() if self._base.get(s) != v}
        if changed:
            ops = [
                {"request_put": {"key": b64(self.intents_dir + s), "value": b64(v)}}
                for s, v in sorted(changed.items())
            ]
            _, responses = await self.link.client.txn([], ops)
            revision = _revision(responses[0].get("response_put", {})) if responses else 0
            for service, value in changed.items():
                self._intents[service] = value
                self._base[service] = value
                self._intent_revs[service] = revision
            log.debug("etcd: intents of %s saved", ", ".join(sorted(changed)))
        return {s: self._loaded(s, v) for s, v in self._intents.items()}

    async def apply_intents(self, by_key: Mapping[str, KeyValue], revision: int) -> None:
        """Take in the snapshot's intents. A snapshot read before one of our own saves may
        arrive after it: a key changes here only when etcd's revision moved past what we know."""
        found: dict[str, KeyValue] = {
            key[len(self.intents_dir) :]: kv
            for key, kv in by_key.items()
            if key.startswith(self.intents_dir) and len(key) > len(self.intents_dir)
        }
        if not self._loaded_from_etcd:
            self._loaded_from_etcd = True
            if not found and await self._seed_intents():
                return  # the snapshot is older than the seed; the next sync reads it back
        changed = False
        for service, kv in found.items():
            try:
                value = canonical(json.loads(kv.value))
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
        encoded = {s: canonical(v) for s, v in local.items()}
        keys = {s: b64(self.intents_dir + s) for s in encoded}
        ok, _ = await self.link.client.txn(
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


def _revision(response: Mapping[str, Any]) -> int:
    return int(response.get("header", {}).get("revision", 0))
