"""A probe that fails for a local reason (EMFILE …) in the real engine: not counted toward
`fall`, counted as a local fault, decisions held with the `local_fault` alarm, and released
once every faulted probe has reported again (in process: results are fed, cycles run)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from failover.config.loader import load_config
from failover.daemon import Daemon
from failover.model import Health, ProbeResult
from failover.probes.scheduler import ProbeJob

EMFILE = ProbeResult(
    False, "local fault (emfile): too many open files", 0.001, detail={"local_fault": "emfile"}
)


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    probe = '{type: tcp, address: "127.0.0.1:9"}'
    config = tmp_path / "failover.yaml"
    config.write_text(f"""
instance: {{name: lf, state_dir: "{tmp_path / "state"}"}}
admin: {{socket: "{tmp_path / "admin.sock"}"}}
metrics: {{listen: null}}
providers:
  lab: {{type: builtin, listen: "127.0.0.1:0", verify: false}}
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{startup_grace: 0s, cooldown: 0s}}
services:
  shop:
    records: [{{provider: lab, zone: example.test, name: shop.example.test, type: A, ttl: 30}}]
    targets:
      - {{name: a, location: x, values: [192.0.2.1], probes: [{probe}]}}
      - {{name: b, location: y, values: [192.0.2.2], probes: [{probe}]}}
""")
    d = Daemon(load_config(config))
    await d.start(schedule_probes=False)
    try:
        yield d
    finally:
        await d.stop()


def feed(d: Daemon, target: str, result: ProbeResult, at: float, times: int = 1) -> None:
    assert d.engine is not None
    spec = d.engine.services["shop"].config.target(target).probes[0]  # type: ignore[union-attr]
    for _ in range(times):
        d.engine.on_probe_result(ProbeJob("shop", target, spec), result, at)


async def settle(d: Daemon) -> None:
    """One cycle, and the DNS change it started (if any) carried out."""
    assert d.engine is not None
    await d.engine.cycle()
    for rt in d.engine.services.values():
        if rt.inflight is not None:
            await rt.inflight


async def test_local_failures_count_as_a_fault_and_hold_the_switch(daemon: Daemon) -> None:
    engine = daemon.engine
    assert engine is not None
    shop = engine.services["shop"]
    ok, refused = ProbeResult(True, "ok", 0.01), ProbeResult(False, "connect refused", 0.01)
    now = time.time()
    feed(daemon, "a", ok, now, times=2)
    feed(daemon, "b", ok, now, times=2)
    await settle(daemon)
    assert shop.published.target == "a"

    feed(daemon, "a", EMFILE, now - 5, times=5)  # five runs lost to EMFILE
    assert shop.targets["a"].health is Health.UP  # not evidence against a
    await settle(daemon)
    assert engine.status()["local_fault"].startswith("shop/a/tcp: local fault (emfile)")
    assert shop.decision is not None and "local_fault" in shop.decision.alarms
    assert engine.metrics.local_faults.labels("emfile")._value.get() == 5
    feed(daemon, "b", EMFILE, now - 5)  # b has not reported since its own fault

    feed(daemon, "a", refused, time.time(), times=2)  # a really dies
    assert shop.targets["a"].health is Health.DOWN
    await settle(daemon)
    assert shop.published.target == "a", "a decision taken while b's health was not current"
    assert engine.status()["local_fault"] is not None

    feed(daemon, "b", ok, time.time())  # every faulted probe has reported: the hold ends
    await settle(daemon)
    assert engine.status()["local_fault"] is None
    assert shop.published.target == "b"
    await engine.journal.sync()
    kinds = [e["kind"] for e in daemon.store.history(None, 100)]
    assert kinds.index("local_fault") < kinds.index("local_fault_cleared") < kinds.index("switch")
