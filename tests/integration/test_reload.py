"""Reload of the real daemon: SIGHUP and `failover reload` with good and bad files."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from failover.client import AdminClient
from tests.support import (
    DaemonProcess,
    TargetServer,
    cli,
    cli_json,
    daemon_config,
    dns_a,
    free_port,
    metric_value,
    wait_until,
)

PRIMARY, SECONDARY = "127.0.0.31", "127.0.0.32"
SECRET = "reload-secret-never-logged-7f3a"
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+: ")


class Lab:
    def __init__(self, tmp_path: Path) -> None:
        self.primary = TargetServer(PRIMARY).start()
        self.secondary = TargetServer(SECONDARY).start()
        self.dns_port = free_port()
        self.metrics_port = free_port()
        self.config = daemon_config(
            tmp_path,
            self.primary,
            self.secondary,
            dns_port=self.dns_port,
            metrics_port=self.metrics_port,
        )
        self.good = self.config.read_text()
        self.socket = tmp_path / "admin.sock"
        self.daemon = DaemonProcess(
            self.config, self.metrics_port, self.socket, env={"RELOAD_TEST_SECRET": SECRET}
        )

    def api(self, path: str) -> Any:
        """The admin API in process: polling through the CLI would spawn a Python each time."""
        status, body = asyncio.run(AdminClient(socket=self.socket).call("GET", path))
        assert status == 200, body
        return body

    def status(self) -> dict[str, Any]:
        return self.api("/v1/status")  # type: ignore[no-any-return]

    def history(self) -> list[dict[str, Any]]:
        return self.api("/v1/history?limit=1000")  # type: ignore[no-any-return]

    def gauge(self) -> float | None:
        return metric_value(self.daemon.metrics(), "failover_config_last_reload_successful")

    def sighup(self) -> None:
        assert self.daemon.proc is not None
        self.daemon.proc.send_signal(signal.SIGHUP)

    def reloads(self) -> list[dict[str, Any]]:
        return [e for e in self.history() if e["kind"] == "reload"]

    def close(self) -> None:
        self.daemon.stop()
        self.primary.close()
        self.secondary.close()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    lab.daemon.start()
    try:
        yield lab
    finally:
        lab.close()


def with_api_service(text: str) -> str:
    shop = text.index("  shop:")
    api = text[shop:].replace("  shop:", "  api:").replace("shop.example.test", "api.example.test")
    return text + api


def test_sighup_applies_a_good_file_and_keeps_state_and_history(lab: Lab) -> None:
    wait_until(lambda: dns_a(lab.dns_port, "shop.example.test") == [PRIMARY], 20, "publish")
    wait_until(
        lambda: all(
            t["health"] == "up" for t in lab.status()["services"]["shop"]["targets"].values()
        ),
        20,
        "both targets UP",
    )
    assert cli("pause", "shop", "--socket", str(lab.socket)).returncode == 0
    before = lab.status()["services"]["shop"]

    lab.config.write_text(with_api_service(lab.good))
    lab.sighup()
    wait_until(lambda: "api" in lab.status()["services"], 20, "the new service")

    shop = lab.status()["services"]["shop"]
    assert shop["mode"] == "paused"  # decision state survives
    for name in ("primary", "secondary"):  # probe history of unchanged targets survives
        assert shop["targets"][name]["health"] == "up"
        assert shop["targets"][name]["since"] == before["targets"][name]["since"]
    wait_until(lambda: dns_a(lab.dns_port, "api.example.test") == [PRIMARY], 20, "the new service")
    entry = lab.reloads()[-1]
    assert entry["result"] == "ok" and entry["actor"] == "SIGHUP"
    daemon_wide = cli_json("history", "*", "--socket", str(lab.socket))
    assert daemon_wide and {e["service"] for e in daemon_wide} == {"*"}
    assert daemon_wide[-1]["kind"] == "reload"
    assert entry["changes"]["services"]["added"] == ["api"]
    assert lab.gauge() == 1


def test_a_bad_file_is_rejected_the_old_one_kept_and_the_gauge_set(lab: Lab) -> None:
    wait_until(lambda: dns_a(lab.dns_port, "shop.example.test") == [PRIMARY], 20, "publish")
    stamp = metric_value(
        lab.daemon.metrics(), "failover_config_last_reload_success_timestamp_seconds"
    )
    bad = lab.good.replace(
        "providers:\n",
        "providers:\n"
        "  bind: {type: rfc2136, server: 127.0.0.1, port: nope,"
        ' tsig: {name: k, secret: "${RELOAD_TEST_SECRET}"}}\n',
    ).replace("interval: 200ms", "interval: soon")
    lab.config.write_text(bad)
    lab.sighup()
    wait_until(lambda: lab.gauge() == 0, 20, "the reload to be rejected")
    assert lab.status()["services"]["shop"]["active"] == "primary"  # still serving, old config
    entry = lab.reloads()[-1]
    assert entry["result"] == "error"
    assert any("providers.bind.port" in e for e in entry["errors"])

    rejected = cli("reload", "--socket", str(lab.socket))
    assert rejected.returncode == 2
    assert "the running configuration stays" in rejected.stderr
    assert "providers.bind.port" in rejected.stderr
    assert "interval" in rejected.stderr
    assert "Traceback" not in rejected.stderr

    lab.config.write_text(lab.good)
    accepted = cli("reload", "--socket", str(lab.socket))
    assert accepted.returncode == 0, accepted.stderr
    assert "no change" in accepted.stdout
    assert lab.gauge() == 1
    later = metric_value(
        lab.daemon.metrics(), "failover_config_last_reload_success_timestamp_seconds"
    )
    assert stamp is not None and later is not None and later >= stamp
    assert [e["result"] for e in lab.reloads()] == ["error", "error", "ok"]

    log = lab.daemon.log.read_text()
    assert "reload rejected" in log
    assert SECRET not in log + rejected.stderr + str(lab.history())
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines and all(TEXT_LINE.match(line) for line in lines), log  # one event per line


def test_reload_of_a_key_that_needs_a_restart_names_it(lab: Lab) -> None:
    lab.config.write_text(lab.good.replace("name: test-1", "name: test-2"))
    result = cli("reload", "--socket", str(lab.socket))
    assert result.returncode == 2
    assert "instance.name" in result.stderr and "restart" in result.stderr
    assert lab.status()["instance"] == "test-1"
