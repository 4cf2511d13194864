"""One instance cut off from the primary only: the quorum of vantage points keeps DNS where it is.

Three daemons share a 3-member etcd cluster and write one real BIND. The leader runs in a
network namespace of its own where an nftables rule drops every packet to and from the primary
target's address: it sees the primary DOWN while the two others see it UP. A leader deciding
on its own view would fail over; the quorum (2 of 3) says UP, so nothing moves. Then the primary
really dies, for everyone: exactly one switch.
"""

from __future__ import annotations

from pathlib import Path

from tests.ha_partition.lab import PartitionLab, hold
from tests.support import metric_value, wait_until


def switches(lab: PartitionLab) -> list[dict[str, object]]:
    """Every `switch` entry any instance journalled, once each."""
    seen: dict[tuple[object, ...], dict[str, object]] = {}
    for instance in lab.instances.values():
        for entry in instance.history():
            if entry["kind"] == "switch":
                seen[(entry["instance"], entry["time"], entry.get("to"))] = entry
    return list(seen.values())


def test_a_leader_cut_off_from_the_primary_does_not_switch_alone(tmp_path: Path) -> None:
    with PartitionLab(tmp_path) as lab:
        cut, fo_b, fo_c = (lab.instances[n] for n in ("fo-a", "fo-b", "fo-c"))
        primary, secondary = lab.primary.host, lab.secondary.host

        cut.start()  # first, alone: it takes the leadership
        wait_until(lambda: cut.status()["leader"], 30, "fo-a (in the namespace) to lead")
        fo_b.start()
        fo_c.start()
        wait_until(lambda: lab.answer() == [primary], 30, "BIND to serve the primary")

        def all_see(health: str) -> bool:
            votes = cut.target("primary")["votes"]
            return votes == {"fo-a": health, "fo-b": health, "fo-c": health}

        wait_until(lambda: all_see("up"), 30, "three views of the primary UP")
        assert lab.leader() == "fo-a"
        serial, before = lab.serial(), len(switches(lab))

        lab.veth.cut(primary)  # fo-a, the leader, can no longer reach the primary

        def split() -> bool:
            seen = cut.target("primary")
            return seen["health"] == "down" and seen["votes"] == {
                "fo-a": "down",
                "fo-b": "up",
                "fo-c": "up",
            }

        wait_until(split, 30, "fo-a to see the primary DOWN, the others UP")
        hold(3.0)  # 15 probe intervals: a leader deciding alone would have switched by now

        assert lab.answer() == [primary]
        assert lab.serial() == serial  # not one UPDATE reached BIND
        assert len(switches(lab)) == before
        mine = cut.target("primary")
        assert mine["health"] == "down"  # its own probes
        assert mine["votes"]["fo-a"] == "down"  # its own vote, as status shows it
        assert mine["decided"] == "up"  # the quorum: 2 of 3 see it UP
        assert lab.leader() == "fo-a"  # the cut-off instance led all along
        assert cut.status()["services"]["shop"]["active"] == "primary"
        follower = fo_b.target("primary")
        assert follower["votes"]["fo-a"] == "down" and follower["health"] == "up"
        metrics = cut.metrics()
        views = {
            health: metric_value(
                metrics, "failover_vantage_views", service="shop", target="primary", health=health
            )
            for health in ("up", "down")
        }
        assert views == {"up": 2, "down": 1}

        lab.primary.stop()  # now it is really dead, for everyone
        wait_until(lambda: lab.answer() == [secondary], 30, "the switch to the secondary")
        wait_until(lambda: all_see("down"), 30, "three views of the primary DOWN")
        hold(2.0)
        assert lab.answer() == [secondary]
        assert lab.serial() == serial + 1  # exactly one UPDATE: one switch
        made = switches(lab)[before:]
        assert [(e["instance"], e["to"], e["result"]) for e in made] == [
            ("fo-a", "secondary", "ok")
        ]
        # the leader's decision is in the history of every instance (shared through etcd)
        for follower in (fo_b, fo_c):
            assert any(
                e["kind"] == "switch" and e["instance"] == "fo-a" and e["to"] == "secondary"
                for e in follower.history()
            )
            assert follower.status()["history"]["shared"] is True
