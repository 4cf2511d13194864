"""A fallback with several instances: its health is part of every instance's view, and the
leader publishes it when every target is DOWN and the quorum of views sees it UP, even though
the leader alone sees it DOWN (its own blip must not hold the fallback back)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.coord.etcd_cluster import EtcdCluster
from tests.ha.lab import WAIT, HaLab
from tests.providers.bind import BindServer
from tests.support import TargetServer, free_port, wait_until

PARIS, BACKUP, FALLBACK = "127.0.0.44", "127.0.0.45", "127.0.0.46"
FQDN = "down.example.test"


@pytest.fixture
def servers() -> Iterator[dict[str, TargetServer]]:
    started = {host: TargetServer(host).start() for host in (PARIS, BACKUP, FALLBACK)}
    try:
        yield started
    finally:
        for server in started.values():
            server.close()


def down(servers: dict[str, TargetServer]) -> str:
    paris, backup, fallback = (servers[h] for h in (PARIS, BACKUP, FALLBACK))
    return f"""
  down:
    records:
      - {{provider: bind, zone: example.test, name: {FQDN}, type: A, ttl: 30}}
    policy: {{all_down: fallback, failback: manual, cooldown: 1s, startup_grace: 3s}}
    fallback:
      values: [{FALLBACK}]
      location: cdn
      probes: [{{type: http, url: "{fallback.url}", interval: 200ms}}]
    targets:
      - {{name: paris, location: cloud-a, values: [{PARIS}], probes: [{{type: http, url: "{paris.url}", interval: 200ms}}]}}
      - {{name: backup, location: cloud-b, values: [{BACKUP}], probes: [{{type: http, url: "{backup.url}", interval: 200ms}}]}}"""  # noqa: E501


def test_the_leader_publishes_the_fallback_the_quorum_sees_up(
    etcd: EtcdCluster, bind: BindServer, tmp_path: Path, servers: dict[str, TargetServer]
) -> None:
    with HaLab(etcd, bind, root=tmp_path, more_services=down(servers)) as ha:
        ha.start()
        leader = ha.wait_leader()
        wait_until(lambda: ha.bind.values(FQDN) == [PARIS], WAIT, "paris published")

        # the leader alone loses the fallback: its probe goes to a port nobody listens on
        config = leader.daemon.config
        dead = f"http://{FALLBACK}:{free_port(FALLBACK)}/healthz"
        config.write_text(config.read_text().replace(servers[FALLBACK].url, dead))
        leader.daemon.signal(signal.SIGHUP)

        def own_fallback() -> object:
            return leader.status()["services"]["down"]["fallback"]["health"]

        wait_until(lambda: own_fallback() == "down", WAIT, "the leader to see the fallback DOWN")
        fallback = leader.status()["services"]["down"]["fallback"]
        assert fallback["decided"] == "up", fallback  # what the decision uses: the quorum's

        # every target dies for everyone: the quorum (two of three) still sees the fallback UP
        servers[PARIS].stop()
        servers[BACKUP].stop()
        wait_until(lambda: ha.bind.values(FQDN) == [FALLBACK], WAIT, "the fallback published")
        assert ha.wait_leader() is leader
        (entry,) = [e for e in ha.entries("fallback") if e["service"] == "down"]
        assert entry["instance"] == leader.name and entry["result"] == "ok"
