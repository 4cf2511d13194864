"""Several instances with their probes in child processes (`instance.probe_process: true`),
on a real etcd cluster writing a real BIND zone: the views and the quorum are fed by the
children; the leader killed with -9 takes its child along, and the next leader fails over."""

from __future__ import annotations

from pathlib import Path

from tests.coord.etcd_cluster import EtcdCluster
from tests.ha.lab import NAMES, SECONDARY, WAIT, HaLab
from tests.providers.bind import BindServer
from tests.support import wait_until
from tests.support.procs import gone, probe_child


def test_the_next_leader_fails_over_on_its_probe_process(
    etcd: EtcdCluster, bind: BindServer, tmp_path: Path
) -> None:
    in_a_child = dict.fromkeys(NAMES, ", probe_process: true")
    with HaLab(etcd, bind, root=tmp_path, instance_extra=in_a_child) as lab:
        lab.start()
        old = lab.wait_leader()
        children = {}
        for instance in lab.instances.values():
            assert instance.daemon.proc is not None
            pid = instance.daemon.proc.pid
            children[instance.name] = wait_until(lambda p=pid: probe_child(p), WAIT, "a child")
            assert instance.status()["probe_process"]["pid"] == children[instance.name]
        lab.wait_health("secondary", "up", lab.answering)  # every view fed by a child
        old.kill9()
        wait_until(lambda: gone(children[old.name]), WAIT, "the dead leader's child to exit")
        new = lab.wait_leader(lab.answering)
        assert new is not old
        lab.primary.stop()
        lab.wait_answer(SECONDARY)
        switches = lab.wait_switches(1)
        assert [(e["instance"], e["to"]) for e in switches] == [(new.name, "secondary")]
