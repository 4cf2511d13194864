"""A reload that replaces a provider waits for the changes in flight there (or gives up)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from failover import daemon as daemon_module
from failover.config.loader import load_config
from failover.daemon import Daemon
from failover.engine import CommandError
from failover.model import ProbeResult
from failover.probes.scheduler import ProbeJob
from tests.providers.fake_ovh import APP_KEY, APP_SECRET, CONSUMER_KEY, FakeOvh

ZONE = "example.test"
REFRESH = f"/domain/zone/{ZONE}/refresh$"
PROBE = "127.0.0.1:9"  # never run: results are fed by hand


def write(tmp: Path, url: str, timeout: str = "5s") -> Path:
    path = tmp / "failover.yaml"
    path.write_text(
        f"""
instance: {{name: inflight, state_dir: "{tmp / "state"}"}}
admin: {{socket: "{tmp / "admin.sock"}"}}
metrics: {{listen: null}}
providers:
  ovh:
    type: ovh
    endpoint: {url}
    application_key: ${{FAILOVER_TEST_OVH_AK}}
    application_secret: ${{FAILOVER_TEST_OVH_AS}}
    consumer_key: ${{FAILOVER_TEST_OVH_CK}}
    verify: false
    timeout: {timeout}
defaults:
  health: {{fall: 1, rise: 1}}
services:
  shop:
    records: [{{provider: ovh, zone: {ZONE}, name: shop.{ZONE}, type: A, ttl: 30}}]
    targets:
      - {{name: a, location: x, values: [192.0.2.1], probes: [{{type: tcp, address: "{PROBE}"}}]}}
      - {{name: b, location: y, values: [192.0.2.2], probes: [{{type: tcp, address: "{PROBE}"}}]}}
"""
    )
    return path


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[FakeOvh]:
    for name in list(os.environ):
        if name.startswith("OVH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FAILOVER_TEST_OVH_AK", APP_KEY)
    monkeypatch.setenv("FAILOVER_TEST_OVH_AS", APP_SECRET)
    monkeypatch.setenv("FAILOVER_TEST_OVH_CK", CONSUMER_KEY)
    server = FakeOvh()
    server.add_zone(ZONE)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def feed(d: Daemon, target: str, ok: bool) -> None:
    assert d.engine is not None
    spec = d.engine.services["shop"].config.target(target).probes[0]  # type: ignore[union-attr]
    d.engine.on_probe_result(ProbeJob("shop", target, spec), ProbeResult(ok, "x", 0.01), 0)


async def switch_in_flight(d: Daemon, fake: FakeOvh, hang: float) -> asyncio.Task[object]:
    """Publish a, then fail it so that the switch to b hangs in OVH's refresh."""
    engine = d.engine
    assert engine is not None
    rt = engine.services["shop"]
    rt.started_at = 0.0  # past the start-up grace
    feed(d, "a", True)
    feed(d, "b", True)
    await engine.cycle()
    assert rt.inflight is not None
    await rt.inflight
    fake.hang("POST", REFRESH, hang)
    feed(d, "a", False)
    await engine.cycle()
    task = rt.inflight
    assert task is not None
    return task


async def test_reload_waits_for_the_change_in_flight_at_a_replaced_provider(
    fake: FakeOvh, tmp_path: Path
) -> None:
    d = Daemon(load_config(write(tmp_path, fake.url)))
    await d.start(schedule_probes=False)
    try:
        task = await switch_in_flight(d, fake, hang=1.0)
        old = d.providers["ovh"]
        write(tmp_path, fake.url, timeout="4s")
        result = await d.reload("test")
        assert task.done()  # the reload waited for the switch to be accepted
        assert result["changes"]["providers"]["changed"] == ["ovh"]
        assert d.providers["ovh"] is not old
        kinds = [(e["kind"], e.get("result")) for e in d.store.history(None, 100)]
        assert kinds.index(("switch", "ok")) < kinds.index(("reload", "ok"))
        assert fake.live(ZONE)[("shop", "A")] == ["192.0.2.2"]
    finally:
        await d.stop()


async def test_reload_gives_up_when_the_change_stays_in_flight(
    fake: FakeOvh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_module, "RELOAD_WAIT", 0.3)
    d = Daemon(load_config(write(tmp_path, fake.url, timeout="3s")))
    await d.start(schedule_probes=False)
    try:
        task = await switch_in_flight(d, fake, hang=2.0)
        before = d.config
        write(tmp_path, fake.url, timeout="4s")
        with pytest.raises(CommandError) as raised:
            await d.reload("test")
        assert raised.value.status == 503
        assert "shop" in str(raised.value) and "in flight" in str(raised.value)
        assert d.config is before
        assert d.metrics.reload_ok._value.get() == 0
        await task  # the switch itself is unharmed
        assert fake.live(ZONE)[("shop", "A")] == ["192.0.2.2"]
    finally:
        await d.stop()
