"""Isolation guard (SPEC §4): every target in two locations failing at once switches nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.support import (
    DaemonProcess,
    TargetServer,
    cli_json,
    daemon_config,
    dns_a,
    free_port,
    metric_value,
    wait_until,
)

NAME = "shop.example.test"


def test_cut_off_vantage_point_switches_nothing_until_it_clears(tmp_path: Path) -> None:
    primary = TargetServer("127.0.0.31").start()
    secondary = TargetServer("127.0.0.32").start()
    dns_port, metrics_port = free_port(), free_port()
    config = daemon_config(
        tmp_path, primary, secondary, dns_port=dns_port, metrics_port=metrics_port
    )
    socket = str(tmp_path / "admin.sock")
    daemon = DaemonProcess(config, metrics_port, tmp_path / "admin.sock").start()

    def status() -> dict:  # type: ignore[type-arg]
        return cli_json("status", "--socket", socket)  # type: ignore[no-any-return]

    try:
        wait_until(lambda: dns_a(dns_port, NAME) == [primary.host], 20, "publication")
        primary.stop()
        secondary.stop()  # both clouds unreachable from here at once
        wait_until(lambda: status()["isolated"] is True, 20, "the isolation guard")
        time.sleep(1.0)
        assert dns_a(dns_port, NAME) == [primary.host]
        shop = status()["services"]["shop"]
        assert shop["targets"]["primary"]["health"] == "down"
        assert "isolated" in shop["alarms"] or shop["targets"]["secondary"]["health"] == "down"
        metrics = daemon.metrics()
        assert metric_value(metrics, "failover_vantage_isolated", instance="test-1") == 1
        assert metric_value(metrics, "failover_switches_total", to="secondary") is None

        secondary.start()  # the secondary's cloud is reachable again: the guard clears
        wait_until(lambda: dns_a(dns_port, NAME) == [secondary.host], 20, "the failover")
        assert status()["isolated"] is False
        assert metric_value(daemon.metrics(), "failover_vantage_isolated", instance="test-1") == 0
    finally:
        daemon.stop()
        primary.close()
        secondary.close()
    kinds = [
        json.loads(line)["kind"]
        for line in (tmp_path / "state" / "journal.jsonl").read_text().splitlines()
    ]
    assert kinds.index("isolated") < kinds.index("isolation_cleared") < kinds.index("switch")


def test_canaries_feed_the_isolation_guard(tmp_path: Path) -> None:
    """Both targets live in one location: only the canary makes 'everything failing' mean
    'we are cut off'."""
    primary = TargetServer("127.0.0.33").start()
    secondary = TargetServer("127.0.0.34").start()
    canary = TargetServer("127.0.0.35").start()
    dns_port, metrics_port = free_port(), free_port()
    config = daemon_config(
        tmp_path, primary, secondary, dns_port=dns_port, metrics_port=metrics_port
    )
    text = config.read_text().replace("location: cloud-b", "location: cloud-a")
    text += f"""
canaries:
  - name: internet
    location: internet
    probes: [{{type: http, url: "{canary.url}"}}]
"""
    config.write_text(text)
    socket = str(tmp_path / "admin.sock")
    daemon = DaemonProcess(config, metrics_port, tmp_path / "admin.sock").start()
    try:
        wait_until(lambda: dns_a(dns_port, NAME) == [primary.host], 20, "publication")
        status = cli_json("status", "--socket", socket)
        assert status["canaries"] == {"internet": {"location": "internet", "failing": False}}
        canary.stop()
        primary.stop()
        secondary.stop()
        wait_until(lambda: cli_json("status", "--socket", socket)["isolated"] is True, 20, "guard")
        assert dns_a(dns_port, NAME) == [primary.host]
        canary.start()
        secondary.start()
        wait_until(lambda: dns_a(dns_port, NAME) == [secondary.host], 20, "the failover")
    finally:
        daemon.stop()
        primary.close()
        secondary.close()
        canary.close()
