"""A quorum of vantage points: the leader cut off from the primary (an nftables drop in a
network namespace of our own, on its path only) switches nothing while the other instances
see the primary UP; when the primary really dies for all, it switches once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.coord.etcd_cluster import EtcdCluster
from tests.ha.lab import SECONDARY, WAIT, HaLab
from tests.ha.netns_target import CutTarget
from tests.providers.bind import BindServer
from tests.support import wait_until


@pytest.fixture
def target() -> Iterator[CutTarget]:
    with CutTarget() as made:
        yield made.start()


def test_the_leader_cut_off_from_the_primary_is_outvoted(
    etcd: EtcdCluster, bind: BindServer, target: CutTarget, tmp_path: Path
) -> None:
    with HaLab(
        etcd, bind, root=tmp_path, primary=target, probe_urls={"fo-a": target.cut_url}
    ) as lab:
        lab.start()  # fo-a first: it leads before the others start
        leader = lab["fo-a"]
        assert lab.wait_leader() is leader
        serial, updates = lab.bind.serial(), lab.updates()

        target.cut()  # fo-a's packets to the primary vanish; the others' still arrive
        votes = wait_until(
            lambda: (
                (t := leader.service()["targets"]["primary"])["health"] == "down"
                and t["votes"] == {"fo-a": "down", "fo-b": "up", "fo-c": "up"}
                and t
            ),
            WAIT,
            "fo-a to see the primary DOWN and fo-b and fo-c to see it UP",
        )
        assert votes["decided"] == "up"  # one DOWN vote of three is no quorum
        time.sleep(1.0)  # several decision cycles of the leader
        assert leader.status()["leader"] and not leader.status()["isolated"]
        assert lab.answer() == [target.host]
        assert lab.bind.serial() == serial and lab.updates() == updates
        assert not lab.entries("switch")

        target.stop()  # now the primary is dead for everyone
        lab.wait_answer(SECONDARY)
        switches = lab.wait_switches(1)
        assert [(e["instance"], e["to"]) for e in switches] == [("fo-a", "secondary")]
        assert lab.bind.serial() == serial + 1
