"""Reload in process: what survives a swap (probe history, decision state, providers), what is
rebuilt, and what a rejected file leaves untouched. The real daemon over SIGHUP is in
test_reload.py."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.message
import pytest

from failover.config.loader import load_config
from failover.daemon import Daemon
from failover.engine import CommandError
from failover.model import Health, ProbeResult
from failover.probes.scheduler import ProbeJob
from tests.support import free_port

TARGETS = """
      - {{name: a, location: x, values: [{a}], probes: [{{type: tcp, address: "{probe_a}"}}]}}
      - {{name: b, location: y, values: [192.0.2.2], probes: [{{type: tcp, address: "{probe_b}"}}]}}
"""


def write(
    tmp: Path,
    *,
    listen: str = "127.0.0.1:0",
    services: tuple[str, ...] = ("shop", "api", "old"),
    api_a: str = "192.0.2.1",
    api_probe: str = "127.0.0.1:9",
    fall: int = 3,
    extra: str = "",
    provider_extra: str = "",
    state: str = "state",
) -> Path:
    body = ""
    for name in services:
        a, probe = (api_a, api_probe) if name == "api" else ("192.0.2.1", "127.0.0.1:9")
        body += f"""
  {name}:
    records: [{{provider: lab, zone: example.test, name: {name}.example.test, type: A, ttl: 30}}]
    targets:{TARGETS.format(a=a, probe_a=probe, probe_b="127.0.0.1:9")}"""
    path = tmp / "failover.yaml"
    path.write_text(
        f"""
instance: {{name: reload-test, state_dir: "{tmp / state}"}}
admin: {{socket: "{tmp / "admin.sock"}"}}
metrics: {{listen: null}}
providers:
  lab: {{type: builtin, listen: "{listen}", verify: false{provider_extra}}}
defaults:
  probe: {{interval: 1s, timeout: 500ms}}
  health: {{fall: {fall}, rise: 2}}
{extra}
services:{body}
"""
    )
    return path


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    d = Daemon(load_config(write(tmp_path)))
    await d.start(schedule_probes=False)
    try:
        yield d
    finally:
        await d.stop()


def feed(d: Daemon, service: str, target: str, ok: bool, times: int = 1) -> None:
    assert d.engine is not None
    spec = d.engine.services[service].config.target(target).probes[0]  # type: ignore[union-attr]
    for _ in range(times):
        d.engine.on_probe_result(
            ProbeJob(service, target, spec), ProbeResult(ok, "ok" if ok else "refused", 0.01), 0
        )


async def dns_a(port: int, name: str) -> list[str]:
    """Asynchronously: the builtin server answers on this test's own event loop."""
    query = dns.message.make_query(name, "A")
    response = await dns.asyncquery.udp(query, "127.0.0.1", timeout=5, port=port)
    return sorted(rr.to_text() for rrset in response.answer for rr in rrset)


def history(d: Daemon) -> list[dict]:  # type: ignore[type-arg]
    return d.store.history(None, 1000)


async def test_unchanged_services_keep_their_runtime_and_probe_history(
    daemon: Daemon, tmp_path: Path
) -> None:
    engine = daemon.engine
    assert engine is not None
    feed(daemon, "shop", "a", ok=False, times=2)  # one failure short of DOWN (fall 3)
    feed(daemon, "api", "b", ok=True, times=2)  # UP (rise 2)
    feed(daemon, "api", "a", ok=False, times=2)
    shop = engine.services["shop"]

    write(tmp_path, services=("shop", "api", "new"), api_a="192.0.2.9", api_probe="127.0.0.1:7")
    result = await daemon.reload("test")

    assert result["result"] == "ok"
    assert result["changes"]["services"] == {
        "added": ["new"],
        "removed": ["old"],
        "changed": ["api"],
    }
    assert set(engine.services) == {"shop", "api", "new"}
    assert engine.services["shop"] is shop  # untouched
    assert shop.probes[("a", "tcp")].failures == 2
    feed(daemon, "shop", "a", ok=False)
    assert shop.targets["a"].health is Health.DOWN  # the third failure counts: history kept

    api = engine.services["api"]
    assert api.targets["b"].health is Health.UP  # target b unchanged: health kept
    assert api.probes[("a", "tcp")].failures == 0  # a's probe changed: fresh counters
    assert api.config.target("a").values == ("192.0.2.9",)  # type: ignore[union-attr]
    assert api.started_at is not None  # its re-probed target gets the start-up grace
    assert engine.services["new"].targets["a"].health is Health.UNKNOWN
    assert daemon.scheduler is not None
    assert {j.service for j in daemon.scheduler.jobs} == {"shop", "api", "new"}
    assert daemon.metrics.reload_ok._value.get() == 1
    entry = history(daemon)[-1]
    assert (entry["service"], entry["kind"], entry["result"]) == ("*", "reload", "ok")
    assert entry["actor"] == "test"


async def test_a_bad_file_changes_nothing_and_sets_the_gauge(
    daemon: Daemon, tmp_path: Path
) -> None:
    engine = daemon.engine
    assert engine is not None
    before = daemon.config
    stamp = daemon.metrics.reload_success_time._value.get()
    path = write(tmp_path, services=("shop",), extra="bogus: 1")

    with pytest.raises(CommandError) as raised:
        await daemon.reload("test")
    assert raised.value.status == 400
    assert "bogus" in str(raised.value)
    assert "the running configuration stays" in str(raised.value)
    assert daemon.config is before and engine.config is before
    assert set(engine.services) == {"shop", "api", "old"}
    assert daemon.metrics.reload_ok._value.get() == 0
    entry = history(daemon)[-1]
    assert (entry["kind"], entry["result"]) == ("reload", "error")
    assert any("bogus" in e for e in entry["errors"])

    path.write_text(path.read_text().replace("bogus: 1", ""))
    await daemon.reload("test")
    assert daemon.metrics.reload_ok._value.get() == 1
    assert daemon.metrics.reload_success_time._value.get() >= stamp
    assert set(engine.services) == {"shop"}


async def test_keys_that_need_a_restart_are_named(daemon: Daemon, tmp_path: Path) -> None:
    write(tmp_path, state="elsewhere")
    with pytest.raises(CommandError) as raised:
        await daemon.reload("test")
    assert "instance.state_dir" in str(raised.value)
    assert "restart" in str(raised.value)
    assert daemon.config.instance.state_dir == tmp_path / "state"


async def test_a_changed_builtin_server_is_restarted_with_its_records(
    daemon: Daemon, tmp_path: Path
) -> None:
    engine = daemon.engine
    assert engine is not None
    feed(daemon, "shop", "a", ok=True, times=2)
    feed(daemon, "shop", "b", ok=True, times=2)
    engine.services["shop"].started_at = 0.0  # past the start-up grace
    await engine.cycle()
    rt = engine.services["shop"]
    while rt.inflight is not None:
        await rt.inflight
    old = daemon.providers["lab"]
    old_port = old.bound.port  # type: ignore[attr-defined]
    assert await dns_a(old_port, "shop.example.test") == ["192.0.2.1"]

    write(tmp_path, provider_extra=", timeout: 3s", fall=4)  # health thresholds change too
    result = await daemon.reload("test")

    assert result["changes"]["providers"]["changed"] == ["lab"]
    new = daemon.providers["lab"]
    assert new is not old and engine.providers["lab"] is new
    assert engine.queues["lab"].provider is new
    new_port = new.bound.port  # type: ignore[attr-defined]
    assert await dns_a(new_port, "shop.example.test") == ["192.0.2.1"]
    # fall/rise changed: probe counters start again, health is recomputed, nothing published
    assert rt.probes[("a", "tcp")].successes == 0
    assert rt.current is not None  # records unchanged: the published answer is still known
    await engine.cycle()
    assert rt.inflight is None  # a reload never flips anything by itself


async def test_a_provider_that_cannot_start_rejects_the_reload(tmp_path: Path) -> None:
    port = free_port()
    d = Daemon(load_config(write(tmp_path, listen=f"127.0.0.1:{port}")))
    await d.start(schedule_probes=False)
    try:
        old = d.providers["lab"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
            squatter.bind(("127.0.0.1", 0))
            taken = squatter.getsockname()[1]
            write(tmp_path, listen=f"127.0.0.1:{taken}")
            with pytest.raises(CommandError) as raised:
                await d.reload("test")
        assert raised.value.status == 400
        assert f"127.0.0.1:{taken}" in str(raised.value)
        assert d.providers["lab"] is old and d.engine is not None
        assert d.engine.providers["lab"] is old
        assert d.config.providers["lab"].listen.port == port  # type: ignore[union-attr]
        assert await dns_a(port, "shop.example.test") == []  # the old server answers again
        assert d.metrics.reload_ok._value.get() == 0
    finally:
        await d.stop()
