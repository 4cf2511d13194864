"""Three real daemons on a real etcd cluster writing a real BIND zone: who leads, and what
changes of leader do to DNS. Waits are bounded generously; nothing here is timed."""

from __future__ import annotations

import time
from pathlib import Path

from tests.coord.etcd_cluster import EtcdCluster
from tests.ha.dnsproxy import HoldingProxy
from tests.ha.lab import PRIMARY, SECONDARY, SERVICE, WAIT, HaLab
from tests.providers.bind import BindServer
from tests.support import cli, wait_until


def test_exactly_one_leader_and_every_instance_names_it(lab: HaLab) -> None:
    lab.start()
    leader = lab.wait_leader()
    statuses = {i.name: i.status() for i in lab.instances.values()}
    assert [n for n, s in statuses.items() if s["leader"]] == [leader.name]
    assert {s["leader_name"] for s in statuses.values()} == {leader.name}
    for name, status in statuses.items():
        expected = "leader" if name == leader.name else f"follower of {leader.name}"
        assert status["coordination"] == expected
    # only the leader wrote DNS: the first publication of the primary, once
    assert lab.answer() == [PRIMARY]
    updates = wait_until(lambda: (u := lab.updates())[leader.name] and u, WAIT, "its UPDATE")
    assert all(n == 0 for name, n in updates.items() if name != leader.name), updates


def test_kill9_of_the_leader_another_takes_over_and_fails_over(lab: HaLab) -> None:
    lab.start()
    old = lab.wait_leader()
    old.kill9()
    survivors = lab.answering
    new = lab.wait_leader(survivors)  # once the dead leader's lease has expired
    assert new is not old
    before = lab.updates()
    lab.primary.stop()  # the primary dies for everyone still alive
    lab.wait_answer(SECONDARY)
    switches = lab.wait_switches(1)
    assert [(e["instance"], e["from"], e["to"]) for e in switches] == [
        (new.name, "primary", "secondary")
    ]
    after = wait_until(  # named logs the UPDATE about when it answers with it
        lambda: (u := lab.updates())[new.name] > before[new.name] and u, WAIT, "its UPDATE"
    )
    assert {n: after[n] - before[n] for n in after if n != new.name} == {
        n: 0 for n in after if n != new.name
    }


def test_sigterm_of_the_leader_hands_over_at_once(lab: HaLab) -> None:
    """A clean stop revokes the lease: when the process has exited, etcd already holds no
    leader key and no view of it (else both would stay for the lease TTL), and another
    instance leads. How fast is measured in bench/takeover.py."""
    lab.start()
    old = lab.wait_leader()
    assert old.stop() == 0
    leader_key = lab.etcd.etcdctl("get", f"{lab.prefix}/leader", "--print-value-only")
    assert leader_key.returncode == 0 and leader_key.stdout.strip() != old.name
    views = lab.etcd.etcdctl("get", f"{lab.prefix}/views/{old.name}", "--keys-only")
    assert views.returncode == 0 and not views.stdout.strip()
    new = lab.wait_leader(lab.answering)
    assert new is not old
    assert "lease revoked" in old.log()
    assert "still hung in worker threads" not in old.log()  # a clean stop: none was


def settled(lab: HaLab) -> None:
    """Every answering instance has read DNS back and decided since it (re)started."""
    wait_until(
        lambda: all(
            (svc := i.service())["active"] == "secondary"
            and not svc["reason"].startswith("starting")
            and not svc["changing"]
            for i in lab.answering
        ),
        WAIT,
        "every instance decided on what DNS serves",
    )


def test_restarted_instances_flip_nothing(lab: HaLab) -> None:
    """After a failover the primary comes back (failback is manual): restarting the leader,
    then every instance, changes nothing at BIND and journals no switch, although each new
    leader starts without memory of what it published: it reads DNS back before deciding."""
    lab.start()
    lab.primary.stop()
    lab.wait_answer(SECONDARY)
    lab.wait_switches(1)
    lab.primary.start()
    lab.wait_health("primary", "up", lab.answering)
    settled(lab)
    serial, updates, switches = lab.bind.serial(), lab.updates(), len(lab.switches())

    leader = lab.wait_leader()
    leader.kill9()
    lab.wait_leader(lab.answering)
    leader.start()
    lab.wait_leader()
    settled(lab)
    for instance in lab.instances.values():  # every one, the leader last
        instance.stop()
    for instance in lab.instances.values():
        instance.start()
    lab.wait_leader()
    settled(lab)
    time.sleep(1.0)  # a few more cycles of the new leader: room for a wrong flip to show

    assert lab.answer() == [SECONDARY]
    assert lab.bind.serial() == serial
    assert lab.updates() == updates
    assert len(lab.switches()) == switches


def test_a_pin_made_through_a_follower_is_applied_and_outlives_its_leader(
    etcd: EtcdCluster, bind: BindServer, tmp_path: Path
) -> None:
    """Failback is automatic here: a pin the next leader did not know of would be undone as
    soon as it leads, since the primary is up all along."""
    policy = "{failback: auto, failback_after: 1s, cooldown: 1s, startup_grace: 3s}"
    with HaLab(etcd, bind, policy=policy, root=tmp_path) as lab:
        lab.start()
        leader = lab.wait_leader()
        follower = next(i for i in lab.instances.values() if i is not leader)
        done = cli(
            "promote", SERVICE, "secondary", "--reason", "maintenance", "--yes",
            "--socket", str(follower.socket),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "published secondary (read back by this instance)" in done.stdout, done.stdout
        assert lab.answer() == [SECONDARY]
        [switch] = lab.wait_switches(1)
        assert (switch["instance"], switch["trigger"], switch["to"]) == (
            leader.name,
            "manual",
            "secondary",
        )
        assert lab.updates()[follower.name] == 0  # the follower only stored the pin
        updates = lab.updates()

        leader.kill9()
        new = lab.wait_leader(lab.answering)
        wait_until(
            lambda: (svc := new.service())["pin"] and not svc["reason"].startswith("starting"),
            WAIT,
            "the new leader to decide under the pin",
        )
        time.sleep(2.0)  # past failback_after and cooldown: room for a wrong failback to show
        assert new.service()["pin"]["target"] == "secondary"
        assert lab.answer() == [SECONDARY]
        assert lab.updates() == updates
        assert len(lab.switches()) == 1

        # the pin was all that held it: released (through the other follower), it fails back
        other = next(i for i in lab.answering if i is not new)
        released = cli("release", SERVICE, "--socket", str(other.socket))
        assert released.returncode == 0, released.stdout + released.stderr
        lab.wait_answer(PRIMARY)
        assert [e["instance"] for e in lab.wait_switches(2)] == [leader.name, new.name]


def test_a_new_leader_decides_on_a_read_made_after_it_took_over(
    etcd: EtcdCluster, bind: BindServer, tmp_path: Path
) -> None:
    """fo-b reads DNS through a proxy that keeps the answer to its read back: the read was
    answered by BIND while the primary was published, and arrives only once fo-a has switched
    to the secondary and handed over. A new leader that decided on that read would switch
    "again" from a primary DNS no longer serves (a second UPDATE, a second switch journalled
    and notified, one more against the flap guard); it must read again instead."""
    proxy = HoldingProxy(bind.port).start()
    try:
        with HaLab(
            etcd,
            bind,
            names=("fo-a", "fo-b"),
            root=tmp_path,
            # no cooldown: it would only hide the spurious switch behind a wait
            policy="{failback: manual, cooldown: 10ms, startup_grace: 3s}",
            dns_ports={"fo-b": proxy.port},
            provider_timeout={"fo-b": "20s"},  # the held read must not time out
            instance_extra={"fo-b": ", resync_interval: 200ms"},  # a read is always due
        ) as lab:
            lab.start()
            first, second = lab["fo-a"], lab["fo-b"]
            assert lab.wait_leader() is first
            proxy.hold()
            proxy.wait_held()  # fo-b's read: BIND answered "primary", fo-b has not seen it
            lab.primary.stop()
            lab.wait_answer(SECONDARY)
            updates = lab.updates()
            assert first.stop() == 0
            assert lab.wait_leader([second]) is second
            proxy.release()  # the stale answer arrives after fo-b took over
            wait_until(
                lambda: (svc := second.service())["active"] == "secondary" and not svc["changing"],
                WAIT,
                "fo-b to read the secondary back",
            )
            time.sleep(1.0)  # more cycles of fo-b: room for the spurious switch to show
            assert lab.updates() == updates
            assert [(e["instance"], e["to"]) for e in lab.entries("switch")] == [
                ("fo-a", "secondary")
            ]
    finally:
        proxy.close()
