"""Daemon modes and guarantees beyond the failover path: secrets, --once, --dry-run, probes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support import (
    REPO,
    DaemonProcess,
    TargetServer,
    cli,
    cli_json,
    daemon_config,
    dns_a,
    free_port,
    wait_until,
)

NAME = "shop.example.test"
TOKEN = "s3cr3t-probe-token-4711"


def _lab(tmp_path: Path, **kwargs: str) -> tuple[TargetServer, TargetServer, Path, int, int]:
    primary = TargetServer("127.0.0.21").start()
    secondary = TargetServer("127.0.0.22").start()
    dns_port, metrics_port = free_port(), free_port()
    config = daemon_config(
        tmp_path, primary, secondary, dns_port=dns_port, metrics_port=metrics_port, **kwargs
    )
    return primary, secondary, config, dns_port, metrics_port


def test_secrets_never_leak_into_status_history_metrics_logs_or_check_config(
    tmp_path: Path,
) -> None:
    primary, secondary, config, dns_port, metrics_port = _lab(
        tmp_path,
        primary_probe_extra=', headers: {Authorization: "Bearer ${FAILOVER_TEST_TOKEN}"}',
    )
    env = {"FAILOVER_TEST_TOKEN": TOKEN}
    daemon = DaemonProcess(config, metrics_port, tmp_path / "admin.sock", env=env).start()
    try:
        wait_until(lambda: dns_a(dns_port, NAME) == [primary.host], 20, "publication")
        primary.stop()
        wait_until(lambda: dns_a(dns_port, NAME) == [secondary.host], 20, "failover")
        socket = str(tmp_path / "admin.sock")
        outputs = [
            json.dumps(cli_json("status", "--socket", socket)),
            json.dumps(cli_json("history", "--socket", socket)),
            cli("status", "--socket", socket).stdout,
            daemon.metrics(),
            cli("check-config", "-c", str(config), env=env).stdout,
        ]
    finally:
        daemon.stop()
        primary.close()
        secondary.close()
    outputs.append(daemon.log.read_text())
    outputs.extend(p.read_text() for p in (tmp_path / "state").glob("*.json*"))
    assert len(outputs) > 6
    for text in outputs:
        assert TOKEN not in text


def test_run_once_publishes_and_exits(tmp_path: Path) -> None:
    primary, secondary, config, _, _ = _lab(tmp_path)
    try:
        result = cli("run", "-c", str(config), "--once")
    finally:
        primary.close()
        secondary.close()
    assert result.returncode == 0, result.stderr
    journal = (tmp_path / "state" / "journal.jsonl").read_text()
    entries = [json.loads(line) for line in journal.splitlines()]
    assert [(e["kind"], e["to"]) for e in entries if e["kind"] != "verify"] == [
        ("publish", "primary")
    ]
    records = json.loads((tmp_path / "state" / "builtin-lab.json").read_text())
    assert primary.host in json.dumps(records)


def test_dry_run_decides_but_writes_no_dns(tmp_path: Path) -> None:
    primary, secondary, config, dns_port, metrics_port = _lab(tmp_path)
    socket = str(tmp_path / "admin.sock")
    seeded = DaemonProcess(config, metrics_port, tmp_path / "admin.sock").start()
    try:
        wait_until(lambda: dns_a(dns_port, NAME) == [primary.host], 20, "publication")
    finally:
        seeded.stop()
    daemon = DaemonProcess(config, metrics_port, tmp_path / "admin.sock", extra_args=("--dry-run",))
    daemon.start()
    try:
        primary.stop()
        wait_until(
            lambda: (
                cli_json("status", "--socket", socket)["services"]["shop"]["targets"]["primary"][
                    "health"
                ]
                == "down"
            ),
            20,
            "the primary DOWN",
        )
        time.sleep(0.5)
        assert dns_a(dns_port, NAME) == [primary.host]
        status = cli_json("status", "--socket", socket)
        assert status["dry_run"] is True
        assert "dry-run" in (status["services"]["shop"]["last_error"] or "")
    finally:
        daemon.stop()
        primary.close()
        secondary.close()
    assert "dry-run: would apply" in daemon.log.read_text()


def test_healthz_and_readyz(tmp_path: Path) -> None:
    primary, secondary, config, _, metrics_port = _lab(tmp_path)
    daemon = DaemonProcess(config, metrics_port, tmp_path / "admin.sock").start()
    try:
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}{path}", timeout=5) as r:
                assert r.status == 200
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/nope", timeout=5)
            raise AssertionError("expected a 404")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
    finally:
        assert daemon.stop() == 0  # SIGTERM: clean exit
        primary.close()
        secondary.close()


def test_status_watch_refreshes_until_interrupted(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    primary, secondary, config, _, metrics_port = _lab(tmp_path)
    daemon = DaemonProcess(config, metrics_port, tmp_path / "admin.sock").start()
    try:
        watch = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "failover",
                "status",
                "--watch",
                "--interval",
                "0.2",
                "--socket",
                str(tmp_path / "admin.sock"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        time.sleep(2.0)
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=10)
    finally:
        daemon.stop()
        primary.close()
        secondary.close()
    assert out.count("\x1b[H\x1b[2J") >= 2
    assert "shop: active" in out
    assert "Traceback" not in err
    assert watch.returncode == 130


def test_demo_runs_a_real_failover_and_ends_by_itself() -> None:
    result = cli("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DNS answers 127.0.0.20" in result.stdout
    assert "Traceback" not in result.stderr
