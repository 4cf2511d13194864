"""`--log-format json|text` on the daemon's real output (`run --once`: one round, then exit).
The long-running daemon's JSON output is checked in test_shutdown.py, its text in
test_reload.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import TargetServer, cli, daemon_config, free_port


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    primary = TargetServer("127.0.0.61").start()
    secondary = TargetServer("127.0.0.62").start()
    secondary.stop()  # DOWN: its line must name it
    try:
        yield daemon_config(
            tmp_path, primary, secondary, dns_port=free_port(), metrics_port=free_port()
        )
    finally:
        primary.close()
        secondary.close()


def test_json_logs_one_object_per_line_with_service_and_target(config: Path) -> None:
    result = cli("--log-format", "json", "run", "--once", "-c", str(config))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line)
        assert set(line) <= {"time", "level", "logger", "message", "service", "target", "provider"}
    down = [line for line in lines if "is DOWN" in line["message"]]
    assert [(d["service"], d["target"], d["level"]) for d in down] == [
        ("shop", "secondary", "info")
    ]
    published = [line for line in lines if "-> primary" in line["message"]]
    assert published and published[0]["service"] == "shop"


def test_text_logs_are_the_default(config: Path) -> None:
    result = cli("run", "--once", "-c", str(config))
    assert result.returncode == 0, result.stderr
    pattern = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) failover")
    lines = result.stderr.splitlines()
    assert lines and all(pattern.match(line) for line in lines), result.stderr
    assert any("shop/secondary is DOWN" in line for line in lines)


def test_an_unknown_format_is_a_usage_error(config: Path) -> None:
    result = cli("--log-format", "xml", "run", "--once", "-c", str(config))
    assert result.returncode == 2
    assert "json" in result.stderr
    from_env = cli("run", "--once", "-c", str(config), env={"FAILOVER_LOG_FORMAT": "xml"})
    assert from_env.returncode == 2
    assert "FAILOVER_LOG_FORMAT=xml" in from_env.stderr
