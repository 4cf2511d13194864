"""Daemon modes and guarantees beyond the failover path: secrets, --once, --dry-run, probes."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support import Lab, cli, metric_value
from tests.support.daemon import signal_report

PRIMARY, SECONDARY = "127.0.0.21", "127.0.0.22"
TOKEN = "s3cr3t-probe-token-4711"


def modes_lab(tmp_path: Path, **options: Any) -> Lab:
    return Lab(tmp_path, addresses=(PRIMARY, SECONDARY), **options)


def test_secrets_never_leak_into_status_history_metrics_logs_or_check_config(
    tmp_path: Path,
) -> None:
    env = {"FAILOVER_TEST_TOKEN": TOKEN}
    with modes_lab(
        tmp_path,
        env=env,
        primary_probe_extra=', headers: {Authorization: "Bearer ${FAILOVER_TEST_TOKEN}"}',
    ) as lab:
        lab.start()
        lab.wait_answer(PRIMARY)
        lab.primary.stop()
        lab.wait_answer(SECONDARY)
        outputs = [
            json.dumps(lab.cli_json("status", "--json")),
            json.dumps(lab.cli_json("history", "--json")),
            lab.cli("status").stdout,
            lab.metrics(),
            cli("check-config", "-c", str(lab.config), env=env).stdout,
        ]
    outputs.append(lab.log())
    outputs.extend(p.read_text() for p in lab.state.glob("*.json*"))
    assert len(outputs) > 6
    for text in outputs:
        assert TOKEN not in text


def test_run_once_publishes_and_exits(tmp_path: Path) -> None:
    with modes_lab(tmp_path) as lab:
        result = cli("run", "-c", str(lab.config), "--once")
    assert result.returncode == 0, result.stderr
    entries = lab.journal()
    assert [(e["kind"], e["to"]) for e in entries if e["kind"] not in ("verify", "intent")] == [
        ("publish", "primary")
    ]
    records = json.loads((lab.state / "builtin-lab.json").read_text())
    assert PRIMARY in json.dumps(records)


def test_dry_run_decides_but_writes_no_dns(tmp_path: Path) -> None:
    with modes_lab(tmp_path, args=("--dry-run",)) as lab:
        seeded = cli("run", "-c", str(lab.config), "--once")  # a real run published the primary
        assert seeded.returncode == 0, seeded.stderr
        lab.start()
        lab.primary.stop()
        lab.wait_health("primary", "down")
        time.sleep(0.5)
        assert lab.answer() == [PRIMARY]
        status = lab.cli_json("status", "--json")
        assert status["dry_run"] is True
        shop = status["services"]["shop"]
        assert "dry-run" in (shop["last_error"] or "")
        assert shop["phase"] == "dry_run"  # one explicit phase, not an error string
        assert shop["phase_detail"].startswith("dry-run: ")
        assert metric_value(lab.metrics(), "failover_service_phase", phase="dry_run") == 1
    assert "dry-run: would apply" in lab.log()


def test_healthz_and_readyz(tmp_path: Path) -> None:
    with modes_lab(tmp_path) as lab:
        lab.start()
        base = f"http://127.0.0.1:{lab.metrics_port}"
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(f"{base}{path}", timeout=5) as r:
                assert r.status == 200
        try:
            urllib.request.urlopen(f"{base}/nope", timeout=5)
            raise AssertionError("expected a 404")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
        assert lab.stop() == 0  # SIGTERM: clean exit


def test_status_watch_refreshes_until_interrupted(tmp_path: Path) -> None:
    with modes_lab(tmp_path) as lab:
        lab.start()
        watch = lab.cli_background("status", "--watch", "--interval", "0.2")
        time.sleep(2.0)
        watch.send_signal(signal.SIGINT)
        try:
            out, err = watch.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            report = signal_report(watch.pid)
            watch.kill()
            watch.communicate(timeout=10)
            raise AssertionError(f"SIGINT did not end the watch:\n{report}") from None
    assert "\x1b" not in out  # a pipe gets no screen clearing (a terminal does: test_cli_manners)
    assert out.startswith("--- ")  # each copy headed by its time
    assert "shop: active" in out
    assert "Traceback" not in err
    assert watch.returncode == 130


def test_demo_runs_a_real_failover_and_ends_by_itself() -> None:
    result = cli("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DNS answers 127.0.0.20" in result.stdout
    assert "Traceback" not in result.stderr
