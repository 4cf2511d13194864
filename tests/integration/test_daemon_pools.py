"""Pools and the all-down fallback, end to end: the real daemon, real HTTP targets on
127.0.0.x and a real BIND `named` that the daemon updates over RFC 2136 and verifies on.

One scenario, as an operator lives it: three servers in one pool; one dies and BIND serves
the two others (nothing switches); a second dies and the service switches to the backup; the
backup dies too while the fallback page is down: nothing better to publish, the backup is held;
the page comes up and the fallback is served; the backup comes back and is served again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.providers.bind import BindServer
from tests.providers.peers import bind_peer, ovh_peer, route53_peer, scaleway_peer
from tests.support import (
    Lab,
    Peer,
    TargetServer,
    builtin_peer,
    cli,
    free_port,
    metric_value,
    wait_until,
)

POOL = ("127.0.0.31", "127.0.0.32", "127.0.0.33")
BACKUP, CANARY, FALLBACK = "127.0.0.34", "127.0.0.35", "127.0.0.36"


@pytest.fixture(scope="module")
def bind_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    server = BindServer(tmp_path_factory.mktemp("bind")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bind(bind_server: BindServer) -> BindServer:
    wipe = bind_server.update()
    wipe.delete("shop", "A")
    bind_server.send(wipe)
    return bind_server


@pytest.fixture
def pool() -> Iterator[list[TargetServer]]:
    """Three HTTP servers on one port of three loopback addresses (one probe URL template)."""
    port = free_port(POOL[0])
    servers = [TargetServer(host, port).start() for host in POOL]
    try:
        yield servers
    finally:
        for server in servers:
            server.close()


def shop(port: int, backup_url: str, canary_url: str, page_url: str) -> dict[str, str]:
    service = f"""
  shop:
    records:
      - {{provider: bind, zone: example.test, name: shop.example.test, type: A, ttl: 30}}
    policy: {{all_down: fallback, cooldown: 0s}}
    fallback:
      values: [{FALLBACK}]
      location: static-host
      probes: [{{type: http, url: "{page_url}"}}]
    targets:
      - name: paris
        location: cloud-a
        values: [{", ".join(POOL)}]
        pool: {{min_up: 2}}
        probes: [{{type: http, url: "http://{{value}}:{port}/healthz"}}]
      - name: backup
        location: cloud-b
        values: [{BACKUP}]
        probes: [{{type: http, url: "{backup_url}"}}]"""
    # a canary that stays up: every target DOWN is then an outage, not this host cut off
    canary = f"""canaries:
  - name: internet
    location: elsewhere
    probes: [{{type: http, url: "{canary_url}"}}]"""
    return {"services": (), "more_services": service, "extra": canary}  # type: ignore[dict-item]


def entries(lab: Lab, kind: str) -> list[dict[str, object]]:
    return [e for e in lab.history() if e["kind"] == kind and e["service"] == "shop"]


def verified(lab: Lab, to: str, count: int = 1) -> bool:
    ok = [e for e in entries(lab, "verify") if e["to"] == to and e["result"] == "ok"]
    return len(ok) >= count


def test_pool_subsets_switch_and_fallback_through_bind(
    bind: BindServer, pool: list[TargetServer], tmp_path: Path
) -> None:
    peer = bind_peer(bind, tmp_path, verify=True)
    port = pool[0].port
    # Lab's own two servers: the backup target and the canary
    lab = Lab(tmp_path, peer, addresses=(CANARY, BACKUP), services=())
    page = TargetServer(FALLBACK)  # the "we are down" page, started later
    lab.configure(**shop(port, lab.secondary.url, lab.primary.url, page.url))
    with lab, contextlib.closing(page):
        checked = cli("check-config", "-c", str(lab.config))
        assert checked.returncode == 0, checked.stderr
        assert "pool: publishes the UP values; UP while at least 2 of 3 are UP" in checked.stdout
        assert f"probe http@{POOL[1]}: GET http://{POOL[1]}:{port}/healthz" in checked.stdout
        assert f"all targets down: fallback; fallback {FALLBACK}" in checked.stdout
        lab.start()
        # the first publication carries the values UP by then; the others follow as they rise
        wait_until(lambda: lab.answer() == sorted(POOL), 20, "the whole pool published")
        wait_until(lambda: lab.service()["phase"] == "steady", 20, "nothing in flight")
        before = len(entries(lab, "verify"))

        # one value dies: BIND serves the two others, verified; nothing switches
        pool[1].stop()
        wait_until(lambda: lab.answer() == [POOL[0], POOL[2]], 20, "the dead value dropped")
        wait_until(lambda: len(entries(lab, "verify")) > before, 20, "the pool change verified")
        assert entries(lab, "verify")[-1]["result"] == "ok"
        change = entries(lab, "pool")[-1]
        assert (change["from"], change["to"], change["result"]) == ("paris", "paris", "ok")
        assert change["reason"].startswith("pool paris: publishing 2 of 3 values")  # type: ignore[union-attr]
        assert entries(lab, "switch") == []
        svc = lab.service()
        assert svc["active"] == "paris" and svc["targets"]["paris"]["health"] == "up"
        values = svc["targets"]["paris"]["pool"]["values"]
        assert values[POOL[1]] == {**values[POOL[1]], "health": "down", "published": False}
        assert values[POOL[0]]["published"] is True
        assert svc["records"][0]["in_sync"] is True
        metrics = lab.metrics()
        assert metric_value(metrics, "failover_pool_value_up", value=POOL[1]) == 0
        assert metric_value(metrics, "failover_pool_value_up", value=POOL[0]) == 1
        assert metric_value(metrics, "failover_pool_published_values", target="paris") == 2
        assert metric_value(metrics, "failover_fallback_active", service="shop") == 0
        text = lab.cli("status").stdout
        assert f"pool, min_up 2: {POOL[0]} UP (published), {POOL[1]} DOWN, " in text
        assert f"fallback: {FALLBACK} (all_down: fallback) not served" in text

        # a second value dies: below min_up, the target is DOWN and the service switches
        pool[2].stop()
        lab.wait_answer(BACKUP)
        wait_until(lambda: verified(lab, "backup"), 20, "the switch to backup verified")
        (switch,) = entries(lab, "switch")
        assert (switch["from"], switch["to"], switch["result"]) == ("paris", "backup", "ok")
        assert lab.health("paris") == "down"

        # every target dead while the fallback page is down too: the last answer is held
        pool[0].stop()
        lab.secondary.stop()
        svc = lab.wait_service(lambda s: "all_down" in s["alarms"], "all targets DOWN")
        assert "the fallback is DOWN too" in svc["reason"]
        assert svc["fallback"]["health"] == "down"
        assert lab.answer() == [BACKUP] and entries(lab, "fallback") == []

        # the page comes up: the fallback is published, verified, the alarm still raised
        page.start()
        lab.wait_answer(FALLBACK)
        wait_until(lambda: verified(lab, "(fallback)"), 20, "the fallback verified")
        (fallback,) = entries(lab, "fallback")
        assert (fallback["from"], fallback["to"], fallback["result"]) == (
            "backup",
            "(fallback)",
            "ok",
        )
        svc = lab.wait_service(lambda s: s["fallback"]["active"], "the fallback shown")
        assert "all_down" in svc["alarms"]
        assert lab.metric("failover_fallback_active", service="shop") == 1
        text = lab.cli("status").stdout
        assert "shop: active (fallback)" in text
        assert f"fallback: {FALLBACK} (all_down: fallback) SERVED NOW" in text

        # the backup comes back: it is served again, without waiting for a cooldown
        lab.secondary.start()
        lab.wait_answer(BACKUP)
        wait_until(lambda: verified(lab, "backup", 2), 20, "back on the backup, verified")
        back = entries(lab, "switch")[-1]
        assert (back["from"], back["to"], back["result"]) == ("(fallback)", "backup", "ok")
        lab.wait_service(lambda s: not s["fallback"]["active"], "the fallback left")
        assert lab.stop() == 0
    assert "Traceback" not in lab.log()
    assert bind.secret not in lab.log()


# --- every provider ------------------------------------------------------------------------------


@pytest.fixture(params=["builtin", "rfc2136", "route53", "ovh", "scaleway"])
def peer(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Peer]:
    if request.param == "builtin":
        yield builtin_peer(verify=True)
    elif request.param == "rfc2136":
        yield bind_peer(request.getfixturevalue("bind"), tmp_path, verify=True)
    elif request.param == "route53":
        with route53_peer(monkeypatch) as (found, _):
            yield found
    elif request.param == "ovh":
        with ovh_peer(monkeypatch, tmp_path, deploy_delay=0.2) as (found, _):
            yield found
    else:
        with scaleway_peer(monkeypatch) as (found, _):
            yield found


def test_a_pool_subset_is_one_change_at_every_provider(
    peer: Peer, pool: list[TargetServer], tmp_path: Path
) -> None:
    """The subset is an ordinary record set with fewer values: every provider takes it."""
    service = f"""
  shop:
    records:
      - {{provider: {peer.name}, zone: {peer.zone}, name: shop.{peer.zone}, type: A, ttl: 30}}
    targets:
      - name: paris
        location: cloud-a
        values: [{", ".join(POOL)}]
        pool: {{min_up: 2}}
        probes: [{{type: http, url: "http://{{value}}:{pool[0].port}/healthz"}}]
      - name: backup
        location: cloud-b
        values: [{BACKUP}]
        probes: [{{type: http, url: "http://{BACKUP}:1/healthz"}}]"""
    with Lab(tmp_path, peer, addresses=(CANARY, BACKUP), services=(), more_services=service) as lab:
        lab.start()
        wait_until(lambda: lab.answer() == sorted(POOL), 30, "the whole pool published")
        pool[2].stop()
        wait_until(lambda: lab.answer() == list(POOL[:2]), 30, "the dead value dropped")

        def confirmed() -> bool:
            dropped = [e for e in entries(lab, "pool") if "; DOWN" in str(e["reason"])]
            return bool(dropped) and entries(lab, "verify")[-1]["result"] == "ok"

        wait_until(confirmed, 30, "the pool change confirmed")
        (change,) = [e for e in entries(lab, "pool") if "; DOWN" in str(e["reason"])]
        assert change["result"] == "ok" and entries(lab, "switch") == []
        assert lab.service()["active"] == "paris"
        peer.check()
        assert lab.stop() == 0
    assert "Traceback" not in lab.log()
    for secret in peer.secrets:
        assert secret not in lab.log()
