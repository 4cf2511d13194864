"""Drains and planned switchovers with several instances: intents kept in etcd like pins, so
a command given to a follower is carried out by the leader and outlives it (kill -9)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

from tests.coord.etcd_cluster import EtcdCluster
from tests.ha.lab import FQDN, PRIMARY, SECONDARY, SERVICE, WAIT, HaLab, Instance
from tests.providers.bind import BindServer
from tests.support import cli, free_port, wait_until

TTL = 4


def served(bind: BindServer) -> tuple[list[str], int] | None:
    response = dns.query.udp(
        dns.message.make_query(FQDN, dns.rdatatype.A), "127.0.0.1", timeout=2, port=bind.port
    )
    for rrset in response.answer:
        return sorted(rr.to_text() for rr in rrset), rrset.ttl
    return None


def test_drain_and_switchover_given_to_a_follower_outlive_the_leader(
    etcd: EtcdCluster, bind: BindServer, tmp_path: Path
) -> None:
    """Failback is automatic: a drain the next leader did not know of would be undone."""
    policy = "{failback: auto, failback_after: 1s, cooldown: 1s, startup_grace: 3s}"
    with HaLab(etcd, bind, policy=policy, root=tmp_path) as lab:
        for i in lab.instances.values():
            i.daemon.config.write_text(
                i.daemon.config.read_text().replace("ttl: 30}", f"ttl: {TTL}}}")
            )
        lab.start()
        leader = lab.wait_leader()
        a, b = [i for i in lab.instances.values() if i is not leader]
        lab.wait_health("secondary", "up", lab.answering)

        drained = cli("drain", SERVICE, "primary", "--reason", "kernel", "--socket", str(a.socket))
        assert drained.returncode == 0, drained.stdout + drained.stderr
        lab.wait_answer(SECONDARY)  # the leader moved it
        leader.kill9()
        new = lab.wait_leader(lab.answering)
        wait_until(lambda: not new.service()["reason"].startswith("starting"), WAIT, "a decision")
        time.sleep(2.0)  # past failback_after and cooldown: room for a wrong failback
        assert lab.answer() == [SECONDARY]
        assert new.service()["targets"]["primary"]["drained"]["reason"] == "kernel"

        other = b if new is a else a
        assert cli("undrain", SERVICE, "primary", "--socket", str(other.socket)).returncode == 0
        lab.wait_answer(PRIMARY)  # automatic failback once undrained

        # a switchover given to the follower; the leader dies once the TTL is lowered
        seen: list[tuple[list[str], int]] = []

        def sample(want: tuple[list[str], int]) -> bool:
            now = served(bind)
            if now is not None and (not seen or seen[-1] != now):
                seen.append(now)
            return now == want

        moved = cli(
            "switchover", SERVICE, "secondary", "--reason", "move", "--ttl", "2s",
            "--at", "+1s", "--yes", "--socket", str(other.socket),
        )  # fmt: skip
        assert moved.returncode == 0, moved.stdout + moved.stderr
        wait_until(lambda: sample(([PRIMARY], 2)), WAIT, "the TTL lowered")
        new.kill9()
        last = lab.wait_leader(lab.answering)
        assert last is other
        wait_until(lambda: sample(([SECONDARY], TTL)), WAIT, "switched, TTL restored")
        assert seen[-3:] == [([PRIMARY], 2), ([SECONDARY], 2), ([SECONDARY], TTL)]
        wait_until(lambda: last.service()["switchover"] is None, WAIT, "switchover done")
        assert last.service()["pin"]["target"] == "secondary"


def leader_alone_loses_the_secondary(lab: HaLab) -> Instance:
    """Start the lab; the leader's own probe of the secondary then goes to a dead port while
    every other instance still sees it UP (the quorum: UP)."""
    lab.start()
    leader = lab.wait_leader()
    lab.wait_health("secondary", "up", lab.answering)
    config = leader.daemon.config
    dead = f"http://{SECONDARY}:{free_port(SECONDARY)}/healthz"
    config.write_text(config.read_text().replace(lab.secondary.url, dead))
    leader.daemon.signal(signal.SIGHUP)
    wait_until(
        lambda: leader.service()["targets"]["secondary"]["health"] == "down",
        WAIT,
        "the leader to see the secondary DOWN itself",
    )
    assert leader.service()["targets"]["secondary"]["decided"] == "up"
    return leader


def test_a_drain_is_judged_on_the_quorum_not_on_the_leaders_own_probes(
    etcd: EtcdCluster, bind: BindServer, tmp_path: Path
) -> None:
    """The leader alone sees the secondary DOWN (its probe goes to a dead port): draining the
    primary still leaves an UP target for the quorum, so `last-up` does not refuse it, and the
    leader moves the service (its safety check, `target-not-up`, judged on its own probes
    refused the move the quorum decided, and the service stayed on the drained primary)."""
    with HaLab(etcd, bind, root=tmp_path) as lab:
        leader = leader_alone_loses_the_secondary(lab)
        drained = cli(
            "drain", SERVICE, "primary", "--reason", "kernel", "--socket", str(leader.socket)
        )
        assert drained.returncode == 0, drained.stdout + drained.stderr
        lab.wait_answer(SECONDARY)  # the decider's own check judged on the quorum too


def test_a_drill_is_judged_on_the_quorum_not_on_the_leaders_own_probes(
    etcd: EtcdCluster, bind: BindServer, tmp_path: Path
) -> None:
    """The leader alone sees the drill's target DOWN: its preflight refused the drill
    (`target: secondary is down`) and its hold would have failed it, on the leader's probes
    alone, while the quorum sees the secondary UP."""
    with HaLab(etcd, bind, root=tmp_path) as lab:
        leader = leader_alone_loses_the_secondary(lab)
        drill = cli(
            "drill", SERVICE, "--to", "secondary", "--hold", "2s", "--yes", "--json",
            "--socket", str(leader.socket),
        )  # fmt: skip
        assert drill.returncode == 0, drill.stdout + drill.stderr
        report = json.loads(drill.stdout)
        assert report["result"] == "ok", report
        assert report["hold_health"]["up"] == report["hold_health"]["samples"] > 0
        assert lab.answer() == [PRIMARY]
