"""The shipped systemd unit: `systemd-analyze verify` clean, offline exposure score <= 3.0,
and the daemon working under the unit's kernel restrictions.

`verify` checks that every Exec*= binary exists, and /usr/bin/failover is not installed here:
the unit is verified as-is inside a throwaway root (`--root`) holding stub executables at the
paths it names. No systemd runs here, so the restrictions that could break a Python daemon
(syscall filter, W^X memory, address families) are applied by `sandbox.py` with the same
kernel mechanisms, from the unit's own lines.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from failover.config.loader import load_config
from tests.deploy.sandbox import UNSUPPORTED
from tests.support import (
    REPO,
    DaemonProcess,
    TargetServer,
    daemon_config,
    dns_a,
    free_port,
    wait_until,
)

UNIT = REPO / "deploy" / "systemd" / "failover.service"
SYSUSERS = REPO / "deploy" / "systemd" / "failover.sysusers"
SANDBOX = Path(__file__).with_name("sandbox.py")
MAX_EXPOSURE = 3.0

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is missing (Debian package `systemd`; scripts/test installs it)",
)


def settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def verify(unit_text: str, root: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of `unit_text` installed in `root`, with stub executables."""
    for key, values in settings(unit_text).items():
        if key.startswith("Exec"):
            for value in values:
                path = value.lstrip("-@:+!").split()[0] if value else ""
                if path.startswith("/"):
                    stub = root / path.lstrip("/")
                    stub.parent.mkdir(parents=True, exist_ok=True)
                    stub.write_text("#!/bin/sh\n")
                    stub.chmod(0o755)
    target = root / "etc/systemd/system/failover.service"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(unit_text)
    return subprocess.run(
        [
            "systemd-analyze",
            "verify",
            f"--root={root}",
            "--recursive-errors=no",
            "--man=no",
            "/etc/systemd/system/failover.service",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unit_verifies_without_any_warning(tmp_path: Path) -> None:
    result = verify(UNIT.read_text(), tmp_path / "root")
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=strickt")
    result = verify(broken, tmp_path / "root")
    assert "strickt" in result.stderr


def test_offline_exposure_is_at_most_3(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            f"--threshold={int(MAX_EXPOSURE * 10)}",  # the threshold counts tenths
            str(UNIT),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for failover.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""


def test_unit_matches_the_daemon_and_the_example_config() -> None:
    unit = settings(UNIT.read_text())
    one = {key: values[-1] for key, values in unit.items()}
    assert one["Type"] == "notify"
    assert one["NotifyAccess"] == "main"
    assert one["WatchdogSec"] == "30s"
    assert one["ExecStart"] == "/usr/bin/failover run -c /etc/failover/failover.yaml"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["CapabilityBoundingSet"] == ""
    # soft = hard (setrlimit is filtered out), far above systemd's default 1024
    assert int(one["LimitNOFILE"]) >= 16384
    # the example config's defaults live where systemd creates the directories
    config = load_config(REPO / "config" / "failover.example.yaml", missing_secrets=[])
    assert config.instance.state_dir == Path("/var/lib") / one["StateDirectory"]
    assert config.admin.socket.parent == Path("/run") / one["RuntimeDirectory"]
    # the daemon's shutdown deadline plus provider closing fits in the stop timeout
    assert config.instance.shutdown_timeout + 10 < float(one["TimeoutStopSec"].rstrip("s"))
    user = one["User"]
    assert re.search(rf"^u {user} ", SYSUSERS.read_text(), re.MULTILINE)


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="no systemd-sysusers")
def test_sysusers_entry_creates_the_user(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", "--dry-run", str(SYSUSERS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Creating user 'failover'" in result.stdout + result.stderr


class SandboxedDaemon(DaemonProcess):
    """`failover run` under the unit's syscall filter, W^X and address families (sandbox.py)."""

    def start(self) -> SandboxedDaemon:
        command = [sys.executable, str(SANDBOX), str(UNIT), "--", sys.executable, "-m", "failover"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*command, "run", "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        try:
            wait_until(self.ready, 30, "the sandboxed daemon to be ready")
        except AssertionError:
            if self.proc.poll() == UNSUPPORTED:
                pytest.skip(self.log.read_text().strip())
            raise
        return self


def test_the_daemon_runs_under_the_units_kernel_restrictions(tmp_path: Path) -> None:
    primary = TargetServer("127.0.0.71").start()
    secondary = TargetServer("127.0.0.72").start()
    dns_port, metrics_port = free_port(), free_port()
    config = daemon_config(
        tmp_path, primary, secondary, dns_port=dns_port, metrics_port=metrics_port
    )
    daemon = SandboxedDaemon(config, metrics_port, tmp_path / "admin.sock")
    try:
        daemon.start()
        wait_until(lambda: dns_a(dns_port, "shop.example.test") == ["127.0.0.71"], 20, "publish")
        primary.stop()
        wait_until(lambda: dns_a(dns_port, "shop.example.test") == ["127.0.0.72"], 20, "failover")
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in daemon.log.read_text(), 20, "reload")
        assert daemon.stop() == 0
        log = daemon.log.read_text()
        for symptom in ("Operation not permitted", "PermissionError", "Traceback", "ERROR"):
            assert symptom not in log, log
    finally:
        daemon.stop()
        primary.close()
        secondary.close()


PROBE_SANDBOX = """
import mmap, os, socket
def attempt(name, call):
    try:
        call()
        print(name, "allowed")
    except OSError as exc:
        print(name, "denied", exc.errno)
attempt("wx-memory", lambda: mmap.mmap(-1, 4096, prot=7))
attempt("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
attempt("inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close())
attempt("affinity", lambda: os.sched_setaffinity(0, {0}))
attempt("setuid", lambda: os.setuid(os.getuid()))
attempt("resolve", lambda: socket.getaddrinfo("localhost", 80, flags=socket.AI_ADDRCONFIG))
"""


def test_the_sandbox_enforces_what_the_unit_says() -> None:
    """The test above proves something only if the sandbox really restricts."""
    result = subprocess.run(
        [sys.executable, str(SANDBOX), str(UNIT), "--", sys.executable, "-c", PROBE_SANDBOX],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode == UNSUPPORTED:
        pytest.skip(result.stderr.strip())
    assert result.returncode == 0, result.stderr
    seen = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert seen == {
        "wx-memory": "denied 13",  # MemoryDenyWriteExecute=yes
        "netlink": "denied 97",  # RestrictAddressFamilies=: EAFNOSUPPORT
        "inet": "allowed",
        "affinity": "denied 1",  # ~@resources, SystemCallErrorNumber=EPERM
        "setuid": "denied 1",  # ~@privileged
        "resolve": "allowed",  # glibc's AI_ADDRCONFIG check copes without AF_NETLINK
    }
