"""`probe_process: auto` chooses where the probes run at start-up; a reload that moves the probe
rate across the threshold is told in the log (the probes move at the next restart)."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from failover.config.types import HostPort, TcpProbeConfig
from failover.daemon import Daemon
from failover.probes.scheduler import ProbeJob, ProbeScheduler
from failover.probes.sharing import CHILD_FROM
from tests.unit.config.helpers import base, load


def jobs(count: int) -> list[ProbeJob]:
    return [
        ProbeJob("shop", "primary", TcpProbeConfig("tcp", HostPort("10.0.0.1", p), 1.0, 0.5))
        for p in range(count)
    ]


@pytest.mark.parametrize("setting, warned", [("auto", True), (False, False)])
def test_a_reload_past_the_threshold_says_where_the_probes_would_run(
    setting: object, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    config = load(base())
    instance = dataclasses.replace(config.instance, probe_process=setting)  # type: ignore[arg-type]
    daemon = object.__new__(Daemon)  # only the configuration and the scheduler matter here
    daemon.config = dataclasses.replace(config, instance=instance)
    daemon.scheduler = ProbeScheduler([], lambda *_: None)  # started in the loop
    with caplog.at_level(logging.WARNING, logger="failover.daemon"):
        daemon._warn_if_probes_belong_elsewhere(jobs(int(CHILD_FROM) - 1))
        assert not caplog.records  # still below: the loop is right
        daemon._warn_if_probes_belong_elsewhere(jobs(int(CHILD_FROM)))
    said = [r.getMessage() for r in caplog.records]
    if warned:
        assert said == [
            "the probes now run 1500.0 times a second: instance.probe_process auto would run "
            "them in a child process, where they move at the next restart (systemctl restart "
            "failover)"
        ]
    else:
        assert said == []
