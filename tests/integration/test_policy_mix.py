"""Pools, switchovers, drains and the fallback together, end to end: the real daemon, real HTTP
targets on 127.0.0.x, a real BIND read straight (values and TTL), the CLI.

One scenario: a switchover to a pool with a dead value publishes its UP values with the short
TTL and restores the TTL on that subset; with the other target dead, draining the pool is
refused (`last-up`); forced, the pool stays served (a drain never brings the fallback in); its
values dying then make every target DOWN and the fallback is served.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_switchover_drain import Watch, served
from tests.providers.bind import BindServer
from tests.providers.peers import bind_peer
from tests.support import Lab, TargetServer, free_port, wait_until

POOL = ("127.0.0.71", "127.0.0.72", "127.0.0.73")
CANARY, SOLO, FALLBACK = "127.0.0.74", "127.0.0.75", "127.0.0.76"
RECORD_TTL = 6


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[BindServer]:
    server = BindServer(tmp_path / "bind").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pool() -> Iterator[list[TargetServer]]:
    port = free_port(POOL[0])
    servers = [TargetServer(host, port).start() for host in POOL]
    try:
        yield servers
    finally:
        for server in servers:
            server.close()


def config(port: int, solo_url: str, canary_url: str) -> dict[str, str]:
    service = f"""
  shop:
    records:
      - {{provider: bind, zone: example.test, name: shop.example.test, type: A, ttl: {RECORD_TTL}}}
    policy: {{all_down: fallback, cooldown: 0s}}
    fallback:
      values: [{FALLBACK}]
      location: static-host
    targets:
      - name: solo
        location: cloud-b
        values: [{SOLO}]
        probes: [{{type: http, url: "{solo_url}"}}]
      - name: paris
        location: cloud-a
        values: [{", ".join(POOL)}]
        pool: {{min_up: 2}}
        probes: [{{type: http, url: "http://{{value}}:{port}/healthz"}}]"""
    canary = f"""canaries:
  - name: internet
    location: elsewhere
    probes: [{{type: http, url: "{canary_url}"}}]"""
    return {"services": (), "more_services": service, "extra": canary}  # type: ignore[dict-item]


def kinds(lab: Lab, kind: str) -> list[dict[str, object]]:
    return [e for e in lab.history("shop") if e["kind"] == kind]


def value_health(lab: Lab, value: str) -> str:
    return str(lab.service()["targets"]["paris"]["pool"]["values"][value]["health"])


def test_switchover_drain_and_fallback_with_a_pool_at_bind(
    bind: BindServer, pool: list[TargetServer], tmp_path: Path
) -> None:
    peer = bind_peer(bind, tmp_path, verify=True)
    lab = Lab(tmp_path, peer, addresses=(CANARY, SOLO), services=())
    lab.configure(**config(pool[0].port, lab.secondary.url, lab.primary.url))
    with lab:
        lab.start()
        lab.wait_answer(SOLO)
        lab.wait_health("paris", "up")
        pool[2].stop()
        wait_until(lambda: value_health(lab, POOL[2]) == "down", 20, "one pool value DOWN")
        assert lab.health("paris") == "up"  # 2 of 3, min_up 2
        watch = Watch(bind)
        watch.until(((SOLO,), RECORD_TTL))

        # a switchover to the pool: its UP values only, with the short TTL, then restored
        running = lab.cli_background(
            "switchover", "shop", "paris", "--reason", "move", "--ttl", "2s", "--yes", "--json"
        )
        up = tuple(sorted(POOL[:2]))
        watch.until((up, RECORD_TTL))
        out, err = running.communicate(timeout=60)
        assert running.returncode == 0, out + err
        assert json.loads(out)["result"] == "switched"
        assert watch.seen == [((SOLO,), RECORD_TTL), ((SOLO,), 2), (up, 2), (up, RECORD_TTL)]
        wait_until(lambda: lab.service()["switchover"] is None, 20, "switchover done")

        # solo dies; released, the pool stays active (the only UP target)
        lab.secondary.stop()
        lab.wait_health("solo", "down")
        assert lab.cli("release", "shop").returncode == 0

        # draining the last UP target (a pool at min_up) is refused
        refused = lab.cli("drain", "shop", "paris", "--reason", "kernel")
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "last-up" in refused.stdout + refused.stderr

        # forced: the pool stays served, no fallback, the alarm says no healthy target
        forced = lab.cli("drain", "shop", "paris", "--reason", "kernel", "--force")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        svc = lab.wait_service(lambda s: "no_healthy_target" in s["alarms"], "alarm raised")
        assert "all_down" not in svc["alarms"]
        assert "paris UP but drained" in svc["reason"]
        assert served(bind) == (up, RECORD_TTL)
        assert kinds(lab, "fallback") == []
        assert svc["fallback"]["active"] is False

        # the pool's values die: every target DOWN by its probes -> the fallback is served
        pool[0].stop()
        pool[1].stop()
        lab.wait_answer(FALLBACK, timeout=30)
        svc = lab.wait_service(lambda s: s["fallback"]["active"], "the fallback shown")
        assert "all_down" in svc["alarms"]
        (fallback,) = kinds(lab, "fallback")
        assert (fallback["from"], fallback["to"]) == ("paris", "(fallback)")
        assert lab.stop() == 0
    assert "Traceback" not in lab.log()
