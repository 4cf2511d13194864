"""Views and intents shared through a real etcd: published, read, notified, gone with the lease."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from failover.coord import etcd_shared
from failover.coord.base import ChangeKind, View
from failover.coord.etcd import CoordinationError, EtcdCoordinator
from failover.store import Store
from tests.coord.conftest import TTL, MakeCoordinator, eventually
from tests.coord.etcd_cluster import EtcdCluster


def view(instance: str, health: str = "up", *, at: float | None = None) -> View:
    return View(
        instance,
        "ovh",
        False,
        time.time() if at is None else at,
        {"shop": {"primary": health, "backup": "up"}},  # type: ignore[dict-item]
    )


async def leased(coord: EtcdCoordinator) -> None:
    await coord.start()
    await eventually(coord.lease_deadline, what="a lease")


async def test_views_are_shared_and_vanish_with_their_instance(make: MakeCoordinator) -> None:
    a, b, c = make("fo-a"), make("fo-b"), make("fo-c")
    changes: list[ChangeKind] = []
    a.on_change = changes.append
    for coord in (a, b, c):
        await leased(coord)
    for coord in (a, b, c):
        await coord.publish_view(view(coord.instance))
    await eventually(lambda: set(a.views()) == {"fo-a", "fo-b", "fo-c"}, what="three views")
    assert a.views()["fo-b"] == view("fo-b", at=a.views()["fo-b"].at)
    assert "views" in changes

    changes.clear()
    await b.publish_view(view("fo-b", "down"))
    await eventually(lambda: a.views()["fo-b"].targets["shop"]["primary"] == "down", what="DOWN")
    assert changes == ["views"]

    await b.aclose()  # clean stop: the lease and its view go at once
    await eventually(lambda: "fo-b" not in a.views(), timeout=10, what="b's view to go")
    await c.aclose(revoke=False)  # crash: the view goes when the lease expires
    await eventually(lambda: "fo-c" not in a.views(), timeout=TTL * 5, what="c's view to go")
    assert set(a.views()) == {"fo-a"}


async def test_a_stale_view_is_not_counted(make: MakeCoordinator) -> None:
    a, b = make("fo-a"), make("fo-b")
    for coord in (a, b):
        await leased(coord)
    await b.publish_view(view("fo-b", at=time.time() - 4 * TTL))  # a frozen prober's view
    await a.publish_view(view("fo-a"))
    await eventually(lambda: "fo-a" in b.views(), what="a's view")
    await asyncio.sleep(0.5)
    assert "fo-b" not in a.views() and "fo-b" not in b.views()


async def test_a_view_published_before_the_lease_is_published_with_it(
    make: MakeCoordinator,
) -> None:
    a, b = make("fo-a"), make("fo-b")
    await a.start()
    await a.publish_view(view("fo-a"))  # no lease yet: kept, published once there is one
    await b.start()
    await eventually(lambda: "fo-a" in b.views(), what="a's view at b")


async def test_intents_saved_on_one_are_loaded_and_notified_on_another(
    make: MakeCoordinator,
) -> None:
    a, b = make("fo-a"), make("fo-b")
    for coord in (a, b):
        await coord.start()
    assert a.load_intents() == {} and b.load_intents() == {}
    changes: list[ChangeKind] = []
    b.on_change = changes.append
    pin = {"mode": "pinned", "pinned_to": "backup", "reason": "maintenance"}
    await asyncio.to_thread(a.save_intents, {"shop": pin, "api": {"mode": "auto"}})
    await eventually(lambda: "intents" in changes, what="b notified")
    assert b.load_intents() == {"shop": pin, "api": {"mode": "auto"}}

    # b changes api only; its unchanged (older) view of shop must not overwrite a newer shop
    await asyncio.to_thread(a.save_intents, {"shop": {"mode": "paused"}, "api": {"mode": "auto"}})
    await asyncio.to_thread(b.save_intents, {"shop": pin, "api": {"mode": "paused"}})
    await eventually(lambda: a.load_intents().get("api") == {"mode": "paused"}, what="api at a")
    await eventually(lambda: b.load_intents().get("shop") == {"mode": "paused"}, what="shop at b")
    assert a.load_intents()["shop"] == {"mode": "paused"}
    # and the local state file holds a copy (the fallback when etcd is down at start)
    saved = Store(b._store.state_dir).load_state()
    assert saved["services"]["api"] == {"mode": "paused"}


async def test_saving_unchanged_intents_writes_nothing(
    cluster: EtcdCluster, make: MakeCoordinator
) -> None:
    a = make("fo-a")
    await a.start()
    await asyncio.to_thread(a.save_intents, {"shop": {"mode": "auto"}})
    key = f"{a.config.prefix}/intents/shop"

    def version() -> int:
        return int(
            json.loads(cluster.etcdctl("get", key, "-w", "json").stdout)["kvs"][0]["version"]
        )

    assert version() == 1
    await asyncio.to_thread(a.save_intents, {"shop": {"mode": "auto"}})
    assert version() == 1
    await asyncio.to_thread(a.save_intents, {"shop": {"mode": "paused"}})
    assert version() == 2


async def test_unchanged_bodies_are_not_encoded_again_and_the_local_copy_is_exact(
    make: MakeCoordinator, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = make("fo-a")
    await a.start()
    shop, api = {"mode": "auto"}, {"mode": "pinned", "pinned_to": "b"}
    await asyncio.to_thread(a.save_intents, {"shop": shop, "api": api})
    encoded: list[object] = []
    real = etcd_shared.canonical

    def counting(value: object) -> str:
        encoded.append(value)
        return real(value)

    monkeypatch.setattr(etcd_shared, "canonical", counting)
    fragments = a.shared._store._service_texts  # the local copy's writer: body -> its JSON
    api_read_back = fragments["api"][0]
    paused = {"mode": "paused"}
    await asyncio.to_thread(a.save_intents, {"shop": paused, "api": api})  # api: same object
    assert any(v is paused for v in encoded)
    assert not any(v is api for v in encoded)  # the unchanged body kept its canonical text
    # ...and its parsed copy: the local state file's writer kept its fragment too
    assert a.shared._store._service_texts["api"][0] is api_read_back
    local = Store(a.shared._store.state_dir).load_state()  # the local copy, read back
    assert local == {"version": 1, "services": {"shop": paused, "api": api}}


async def test_a_move_from_standalone_keeps_the_pins(tmp_path: Path, make: MakeCoordinator) -> None:
    store = Store(tmp_path / "standalone")
    pin = {"mode": "pinned", "pinned_to": "backup"}
    store.save_state({"version": 1, "services": {"shop": pin}})
    a = make("fo-a", store=store)
    await a.start()
    await eventually(lambda: a.load_intents() == {"shop": pin}, what="seeded")
    b = make("fo-b")  # a fresh instance with no local state reads them from etcd
    await b.start()
    assert b.load_intents() == {"shop": pin}


async def test_etcd_unreachable_at_start(tmp_path: Path, make: MakeCoordinator) -> None:
    """start() returns; the local intents stand in; nothing leads; a save is refused."""
    store = Store(tmp_path / "alone")
    store.save_state({"version": 1, "services": {"shop": {"mode": "paused"}}})
    closed = "http://127.0.0.1:9"  # discard port: nothing listens
    a = make("fo-a", endpoints=[closed], store=store)
    await a.start()
    assert a.load_intents() == {"shop": {"mode": "paused"}}
    assert not a.is_leader() and a.leader_name() is None and a.views() == {}
    assert a.condition().startswith("no leader: etcd unreachable (no etcd endpoint answered")
    with pytest.raises(CoordinationError, match="etcd did not store the intents") as info:
        await asyncio.to_thread(a.save_intents, {"shop": {"mode": "auto"}})
    assert isinstance(info.value, OSError)
    await a.publish_view(view("fo-a"))  # never raises
    assert set(a.views()) == {"fo-a"}


async def test_save_intents_refuses_to_block_the_event_loop(make: MakeCoordinator) -> None:
    a = make("fo-a")
    await a.start()
    with pytest.raises(RuntimeError, match="worker thread"):
        a.save_intents({})


async def test_keys_are_readable_with_etcdctl(cluster: EtcdCluster, make: MakeCoordinator) -> None:
    """The layout operators see: <prefix>/leader, /views/<instance>, /intents/<service>."""
    a = make("fo-a")
    await a.start()
    await eventually(a.is_leader, what="leading")
    await a.publish_view(view("fo-a"))
    await asyncio.to_thread(a.save_intents, {"shop": {"mode": "auto"}})
    prefix = a.config.prefix
    out = cluster.etcdctl("get", "--prefix", f"{prefix}/").stdout.splitlines()
    pairs = dict(zip(out[::2], out[1::2], strict=True))
    assert pairs[f"{prefix}/leader"] == "fo-a"
    assert json.loads(pairs[f"{prefix}/views/fo-a"])["targets"]["shop"]["primary"] == "up"
    assert json.loads(pairs[f"{prefix}/intents/shop"]) == {"mode": "auto"}


async def test_a_stop_that_races_a_wake_up_still_stops(make: MakeCoordinator) -> None:
    """On Python 3.11 `asyncio.wait_for` swallows a cancel that arrives just as its event is
    set; the syncer then looped on and `aclose()` waited forever (a CI run hung here)."""
    for round_ in range(5):
        coord = make(f"fo-{round_}")
        await leased(coord)
        await asyncio.sleep(0.05)  # the syncer is idle, waiting for a wake-up
        coord._wake.set()
        await asyncio.sleep(0)  # the wake-up is delivered, the syncer not yet resumed
        await asyncio.wait_for(coord.aclose(revoke=False), timeout=10)
