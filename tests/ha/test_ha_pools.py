"""A pool with several instances: each value's health is part of every instance's view, and
the leader publishes the subset the quorum of views agrees on, not what it alone sees."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.coord.etcd_cluster import EtcdCluster
from tests.ha.lab import SECONDARY, WAIT, HaLab, Instance
from tests.providers.bind import BindServer
from tests.support import TargetServer, free_port, wait_until

POOL = ("127.0.0.41", "127.0.0.42", "127.0.0.43")
FQDN = "web.example.test"


@pytest.fixture
def servers() -> Iterator[tuple[list[TargetServer], list[TargetServer]]]:
    """The pool on one port, and on another port the same pool without its second value: an
    instance probing that port sees 127.0.0.42 DOWN while the others see it UP."""
    port, other = free_port(POOL[0]), free_port(POOL[2])
    full = [TargetServer(host, port).start() for host in POOL]
    partial = [TargetServer(host, other).start() for host in (POOL[0], POOL[2])]
    try:
        yield full, partial
    finally:
        for server in (*full, *partial):
            server.close()


def web(port: int) -> str:
    return f"""
  web:
    records:
      - {{provider: bind, zone: example.test, name: {FQDN}, type: A, ttl: 30}}
    targets:
      - name: paris
        location: cloud-a
        values: [{", ".join(POOL)}]
        pool: {{min_up: 2}}
        probes: [{{type: http, url: "http://{{value}}:{port}/healthz"}}]
      - name: backup
        location: cloud-b
        values: [{SECONDARY}]
        probes: [{{type: http, url: "http://{SECONDARY}:1/healthz"}}]"""


@contextlib.contextmanager
def pool_lab(
    etcd: EtcdCluster, bind: BindServer, root: Path, port: int
) -> Iterator[tuple[HaLab, Instance]]:
    """The lab with the `web` pool probed on `port`, started, the whole pool published."""
    with HaLab(etcd, bind, root=root, more_services=web(port)) as ha:
        ha.start()
        leader = ha.wait_leader()
        wait_until(lambda: ha.bind.values(FQDN) == sorted(POOL), WAIT, "the whole pool")
        yield ha, leader


def alone_loses_the_second_value(instance: Instance, port: int, other: int) -> None:
    """`instance` alone loses 127.0.0.42: it probes the pool on the `other` port (where that
    value does not listen); wait until it sees the value DOWN itself."""
    config = instance.daemon.config
    config.write_text(config.read_text().replace(f":{port}/", f":{other}/"))
    instance.daemon.signal(signal.SIGHUP)

    def own_down() -> bool:
        values = instance.status()["services"]["web"]["targets"]["paris"]["pool"]["values"]
        return bool(values[POOL[1]]["health"] == "down")

    wait_until(own_down, WAIT, f"{instance.name} to see 127.0.0.42 DOWN itself")


def test_the_leader_publishes_the_subset_the_quorum_sees(
    etcd: EtcdCluster,
    bind: BindServer,
    tmp_path: Path,
    servers: tuple[list[TargetServer], list[TargetServer]],
) -> None:
    full, partial = servers
    port, other = full[0].port, partial[0].port
    with pool_lab(etcd, bind, tmp_path, port) as (ha, leader):

        def dropped() -> list[dict[str, object]]:
            return [
                e for e in ha.entries("pool") if e["service"] == "web" and "; DOWN" in e["reason"]
            ]

        alone_loses_the_second_value(leader, port, other)  # one DOWN vote of three
        time.sleep(2.0)  # many decision cycles: a leader deciding alone would have dropped it
        assert ha.bind.values(FQDN) == sorted(POOL)
        assert ha.wait_leader() is leader
        assert dropped() == []

        # now it is DOWN for everyone: the quorum agrees and the leader drops it
        full[1].stop()
        wait_until(lambda: ha.bind.values(FQDN) == [POOL[0], POOL[2]], WAIT, "127.0.0.42 dropped")
        (entry,) = dropped()
        assert entry["instance"] == leader.name and entry["result"] == "ok"


def test_a_promote_to_a_pool_publishes_the_values_the_quorum_sees_up(
    etcd: EtcdCluster,
    bind: BindServer,
    tmp_path: Path,
    servers: tuple[list[TargetServer], list[TargetServer]],
) -> None:
    """The operator's promote is judged like the decisions: on the quorum. Judged by the
    leader's probes alone, its plan (and its dry run) showed two values while the decision
    published three, and its safety checks judged a health the decisions do not use."""
    full, partial = servers
    port, other = full[0].port, partial[0].port
    with pool_lab(etcd, bind, tmp_path, port) as (ha, leader):
        body = {"target": "backup", "reason": "move away", "force": True}
        status, answer = leader.api("POST", "/v1/services/web/promote", body)
        assert status == 200, answer
        wait_until(lambda: ha.bind.values(FQDN) == [SECONDARY], WAIT, "backup published")

        alone_loses_the_second_value(leader, port, other)
        before = [e for e in ha.entries("pool") if e["service"] == "web"]  # start-up's
        back = {"target": "paris", "reason": "back"}
        status, preview = leader.api("POST", "/v1/services/web/promote", {**back, "dry_run": True})
        assert status == 200, preview
        assert [c["after"] for c in preview["plan"]] == [sorted(POOL)]
        status, answer = leader.api("POST", "/v1/services/web/promote", back)
        assert status == 200, answer
        assert [c["after"] for c in answer["plan"]] == [sorted(POOL)]
        assert ha.bind.values(FQDN) == sorted(POOL)  # the quorum's values, at once
        time.sleep(2.0)  # decision cycles: nothing to correct afterwards
        assert ha.bind.values(FQDN) == sorted(POOL)
        assert [e for e in ha.entries("pool") if e["service"] == "web"] == before
