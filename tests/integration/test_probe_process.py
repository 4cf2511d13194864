"""`instance.probe_process: true`: the probes run in a child process. A real daemon, real
targets, the builtin DNS server: it fails over as in the loop; the child killed with -9 is
started again and probes again; a child that keeps dying stops the daemon (exit 1); the daemon
killed with -9 or stopped takes its child along; a probe header's secret never reaches a log."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support import Lab, wait_until
from tests.support.procs import gone, ignores, probe_child

PRIMARY, SECONDARY = "127.0.0.11", "127.0.0.12"
SECRET = "probe-secret-7f3a"
IN_A_CHILD = ", probe_process: true"


def daemon_pid(lab: Lab) -> int:
    assert lab.daemon.proc is not None
    return lab.daemon.proc.pid


def replace_the_child(lab: Lab, signum: int, timeout: float) -> tuple[int, int]:
    """Start the lab, send its probe process `signum`; (that child, the one started instead)."""
    lab.start()
    lab.wait_answer(PRIMARY)
    old = wait_until(lambda: probe_child(daemon_pid(lab)), 10, "the probe process")
    os.kill(old, signum)
    new = wait_until(
        lambda: (pid := probe_child(daemon_pid(lab))) != old and pid, timeout, "a new one"
    )
    assert new != old
    return old, new


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    extra = f', headers: {{Authorization: "Bearer {SECRET}"}}'
    return Lab(
        tmp_path,
        addresses=(PRIMARY, SECONDARY),
        instance_extra=IN_A_CHILD,
        primary_probe_extra=extra,
    )


def test_fails_over_with_its_probes_in_a_child_process(lab: Lab) -> None:
    with lab:
        lab.start()
        lab.wait_answer(PRIMARY)
        child = wait_until(lambda: probe_child(daemon_pid(lab)), 10, "the probe process")
        assert lab.metric("failover_probe_process_restarts_total") == 0
        assert ignores(child, signal.SIGINT) and ignores(child, signal.SIGTERM)
        assert lab.status()["probe_process"] == {"pid": child, "restarts": 0, "last_exit": None}
        lab.primary.stop()
        lab.wait_answer(SECONDARY)
        log = lab.daemon.log.read_text()
        assert "probes in a child process" in log, log[-2000:]
        assert lab.stop() == 0
        assert gone(child), "the probe process outlived the daemon"
    assert SECRET not in lab.daemon.log.read_text()


def test_a_killed_probe_process_is_started_again_and_probes(lab: Lab) -> None:
    with lab:
        _, second = replace_the_child(lab, signal.SIGKILL, 10)
        wait_until(lambda: "probe process exited (exit code -9)" in lab.daemon.log.read_text())
        assert lab.metric("failover_probe_process_restarts_total") == 1
        assert lab.status()["probe_process"] == {
            "pid": second,
            "restarts": 1,
            "last_exit": "exited (exit code -9)",
        }
        text = lab.cli("status").stdout
        assert f"probes: child process pid {second}, started again 1 time(s)" in text, text
        lab.primary.stop()  # only the new child can see it
        lab.wait_answer(SECONDARY)


def test_a_probe_process_that_keeps_dying_stops_the_daemon(lab: Lab) -> None:
    with lab:
        lab.start()
        killed: set[int] = set()
        deadline = time.monotonic() + 60
        while lab.daemon.proc is not None and lab.daemon.proc.poll() is None:
            assert time.monotonic() < deadline, "the daemon kept running"
            child = probe_child(daemon_pid(lab))
            if child is not None and child not in killed:
                os.kill(child, signal.SIGKILL)
                killed.add(child)
            time.sleep(0.05)
        assert lab.wait_exit() == 1
        assert len(killed) == 5
        log = lab.daemon.log.read_text()
        assert "the probe process died 5 times within 60s" in log, log[-2000:]
        assert "Traceback" not in log


def test_the_probe_process_ends_with_a_daemon_killed_with_minus_9(lab: Lab) -> None:
    with lab:
        lab.start()
        child = wait_until(lambda: probe_child(daemon_pid(lab)), 10, "the probe process")
        lab.kill9()
        wait_until(lambda: gone(child), 10, "the orphaned probe process to exit")


def test_probe_process_changes_only_with_a_restart(lab: Lab) -> None:
    with lab:
        lab.start()
        child = wait_until(lambda: probe_child(daemon_pid(lab)), 10, "the probe process")
        lab.configure(instance_extra=", probe_process: false")
        result = lab.cli("reload")
        assert result.returncode == 2, result.stderr
        assert "instance.probe_process: changed from true to false" in result.stderr
        assert "restart" in result.stderr
        assert probe_child(daemon_pid(lab)) == child


def test_a_frozen_probe_process_is_replaced(lab: Lab) -> None:
    """SIGSTOP: alive, silent. After 10 s without a frame it is killed and started again."""
    with lab:
        frozen, fresh = replace_the_child(lab, signal.SIGSTOP, 30)
        assert gone(frozen)
        status = lab.status()["probe_process"]
        assert status["pid"] == fresh and status["restarts"] == 1, status
        assert status["last_exit"] == "sent nothing for 10s (hung) (exit code -9)", status
        lab.primary.stop()
        lab.wait_answer(SECONDARY)
