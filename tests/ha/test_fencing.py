"""No stale or leaderless writer: etcd losing its quorum, a leader frozen past its lease, and
a failover every instance wants at once. DNS writes are counted at BIND itself (its serial and
the UPDATE messages in named's log, per instance key), not from what the daemons say."""

from __future__ import annotations

import time
from pathlib import Path

from tests.coord.etcd_cluster import EtcdCluster
from tests.ha.dnsproxy import HoldingProxy
from tests.ha.lab import NAMES, PRIMARY, SECONDARY, WAIT, HaLab, Instance
from tests.providers.bind import BindServer
from tests.support import TargetServer, wait_until


def sees_primary_down(instances: list[Instance]) -> None:
    wait_until(
        lambda: all(i.service()["targets"]["primary"]["health"] == "down" for i in instances),
        WAIT,
        "every instance to see the primary DOWN",
    )


def test_primary_dead_for_all_three_is_switched_once(
    etcd: EtcdCluster, bind: BindServer, tmp_path: Path
) -> None:
    """Also: every follower's status shows the switch at once, not at its next periodic
    re-read of DNS (made 10 minutes here, beyond every wait)."""
    slow = {name: ", resync_interval: 10m" for name in NAMES}
    with HaLab(etcd, bind, root=tmp_path, instance_extra=slow) as lab:
        one_switch(lab)


def one_switch(lab: HaLab) -> None:
    lab.start()
    leader = lab.wait_leader()
    serial, before = lab.bind.serial(), lab.updates()
    lab.primary.stop()
    lab.wait_answer(SECONDARY)
    wait_until(
        lambda: all(
            (svc := i.service())["active"] == "secondary" and not svc["changing"]
            for i in lab.instances.values()
        ),
        WAIT,
        "every instance to show the switch",
    )
    time.sleep(1.0)  # a few more cycles everywhere: room for a second writer to show
    switches = lab.wait_switches(1)
    assert [(e["instance"], e["to"]) for e in switches] == [(leader.name, "secondary")]
    assert not lab.switches("refused") and not lab.switches("error")
    assert lab.bind.serial() == serial + 1
    after = lab.updates()
    assert after[leader.name] > before[leader.name]
    assert all(after[n] == before[n] for n in after if n != leader.name), (before, after)
    # every vantage point voted, and the decision was the quorum's
    targets = leader.service()["targets"]
    assert targets["primary"]["votes"] == {n: "down" for n in lab.instances}
    assert targets["primary"]["decided"] == "down"


def test_etcd_quorum_lost_nobody_leads_nor_writes_until_it_is_back(lab: HaLab) -> None:
    lab.start()
    lab.wait_leader()
    serial, updates = lab.bind.serial(), lab.updates()
    lab.etcd.kill(0)
    lab.etcd.kill(1)  # 1 of 3 members left: no quorum
    statuses = lab.wait_no_leader()
    for name, status in statuses.items():
        assert status["coordination"].startswith("no leader"), (name, status["coordination"])
    for instance in lab.instances.values():
        code, body = instance.readyz()
        assert code == 503 and "no leader" in body, (instance.name, code, body)

    lab.primary.stop()  # a failover is wanted now, and nobody may make it
    sees_primary_down(list(lab.instances.values()))
    time.sleep(1.0)  # several decision cycles of every instance
    assert lab.answer() == [PRIMARY]
    assert lab.bind.serial() == serial
    assert lab.updates() == updates
    assert not lab.entries("switch")
    assert all(not i.status()["leader"] for i in lab.instances.values())

    lab.etcd.revive()  # the members come back: one leader, who makes the overdue failover
    leader = lab.wait_leader()
    lab.wait_answer(SECONDARY)
    switches = lab.wait_switches(1)
    assert [(e["instance"], e["to"]) for e in switches] == [(leader.name, "secondary")]
    for instance in lab.instances.values():
        wait_until(lambda i=instance: i.readyz()[0] == 200, WAIT, f"{instance.name} ready")


def test_a_leader_frozen_past_its_lease_writes_nothing_after_it_resumes(lab: HaLab) -> None:
    lab.start()
    frozen = lab.wait_leader()
    others = [i for i in lab.instances.values() if i is not frozen]
    frozen.freeze()  # SIGSTOP: no keepalive, no probe, no decision, until SIGCONT
    new = lab.wait_leader(others)  # once the frozen leader's lease has expired
    lab.primary.stop()  # a failover is needed while it is frozen: the new leader makes it
    lab.wait_answer(SECONDARY)
    lab.wait_switches(1)
    serial, updates = lab.bind.serial(), lab.updates()

    frozen.cont()  # it wakes up believing, for an instant, that it leads, with old health
    wait_until(
        lambda: (s := frozen.status())["leader_name"] == new.name and not s["leader"],
        WAIT,
        f"{frozen.name} to follow {new.name}",
    )
    sees_primary_down([frozen])  # it probed again, and decided (as a follower) since
    time.sleep(1.0)
    assert lab.updates()[frozen.name] == updates[frozen.name]
    assert lab.updates() == updates
    assert lab.bind.serial() == serial
    assert lab.answer() == [SECONDARY]  # the new leader's write stands
    mine = [e for e in frozen.journal() if e["kind"] in ("switch", "retry")]
    assert all(e.get("result") == "refused" for e in mine), mine  # stale-leader, or nothing
    assert [(e["instance"], e["to"]) for e in lab.switches()] == [(new.name, "secondary")]
    assert lab.wait_leader() is new


def test_a_plan_queued_behind_a_slow_call_is_fenced_once_the_lease_is_lost(
    etcd: EtcdCluster, bind: BindServer, tmp_path: Path
) -> None:
    """fo-a leads and writes through a proxy that applies its UPDATEs at once but answers
    them late. Its switch of `shop` hangs on that answer; the switch of `shop2` it decides
    meanwhile waits in the queue of the same zone. fo-a is then frozen past its lease, fo-b
    leads and switches `shop2` itself. Resumed, fo-a gets its answer for `shop` (applied while
    it led), and its queue reaches `shop2`: the fence refuses it, nothing is sent."""
    others = TargetServer("127.0.0.13").start(), TargetServer("127.0.0.14").start()
    shop2 = f"""
  shop2:
    records:
      - {{provider: bind, zone: example.test, name: shop2.example.test, type: A, ttl: 30}}
    targets:
      - {{name: primary, values: [{others[0].host}],
          probes: [{{type: http, url: "{others[0].url}"}}]}}
      - {{name: secondary, values: [{others[1].host}],
          probes: [{{type: http, url: "{others[1].url}"}}]}}"""
    proxy = HoldingProxy(bind.port).start()
    try:
        with HaLab(
            etcd,
            bind,
            names=("fo-a", "fo-b"),
            root=tmp_path,
            dns_ports={"fo-a": proxy.port},
            provider_timeout={"fo-a": "60s"},  # the held answer must not time out
            more_services=shop2,
        ) as lab:
            lab.start()
            first, second = lab["fo-a"], lab["fo-b"]
            assert lab.wait_leader() is first
            wait_until(lambda: bind.values("shop2.example.test") == [others[0].host], WAIT, "")
            proxy.hold(updates=True)
            lab.primary.stop()
            proxy.wait_held()  # fo-a's UPDATE for shop: applied at BIND, not answered yet
            lab.wait_answer(SECONDARY)
            wait_until(lambda: first.service()["changing"], WAIT, "fo-a waiting on the answer")
            others[0].stop()  # shop2's primary: fo-a decides, and queues behind shop's call
            wait_until(
                lambda: (
                    "shop2 primary -> secondary" not in first.log()
                    and first.status()["services"]["shop2"]["changing"]
                ),
                WAIT,
                "fo-a's switch of shop2 queued",
            )
            updates = lab.updates()

            first.freeze()
            assert lab.wait_leader([second]) is second
            wait_until(
                lambda: bind.values("shop2.example.test") == [others[1].host],
                WAIT,
                "fo-b to switch shop2",
            )
            proxy.release()
            first.cont()
            refused = wait_until(
                lambda: [
                    e for e in first.journal() if e["kind"] == "switch" and e["service"] == "shop2"
                ],
                WAIT,
                "fo-a to journal its switch of shop2",
            )
            assert [e["result"] for e in refused] == ["refused"]
            assert "stale-leader" in refused[0]["providers"][0]["error"]
            assert lab.updates()["fo-a"] == updates["fo-a"]  # not sent
            assert bind.values("shop2.example.test") == [others[1].host]
            mine = [(e["service"], e["result"]) for e in first.journal() if e["kind"] == "switch"]
            assert mine == [("shop", "ok"), ("shop2", "refused")]
            theirs = [
                (e["service"], e["result"]) for e in second.journal() if e["kind"] == "switch"
            ]
            assert theirs == [("shop2", "ok")]
    finally:
        proxy.close()
        for server in others:
            server.close()
