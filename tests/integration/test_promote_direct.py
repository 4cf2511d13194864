"""`promote --direct`: the daemon is down, the operator still switches, the daemon honours it."""

from __future__ import annotations

from pathlib import Path

from tests.support import (
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


def test_direct_promote_while_the_daemon_is_down_is_honoured_on_restart(tmp_path: Path) -> None:
    primary = TargetServer("127.0.0.36").start()
    secondary = TargetServer("127.0.0.37").start()
    dns_port, metrics_port = free_port(), free_port()
    config = daemon_config(
        tmp_path, primary, secondary, dns_port=dns_port, metrics_port=metrics_port
    )
    socket = str(tmp_path / "admin.sock")
    daemon = DaemonProcess(config, metrics_port, tmp_path / "admin.sock").start()
    try:
        wait_until(lambda: dns_a(dns_port, NAME) == [primary.host], 20, "publication")
        busy = cli(
            "promote", "shop", "secondary", "--reason", "r", "--yes", "--direct", "-c", str(config)
        )
        assert busy.returncode == 3, busy.stderr  # never races a running daemon
        assert "daemon is running" in busy.stderr
        assert daemon.stop() == 0

        unreachable = cli(
            "promote", "shop", "secondary", "--reason", "r", "--yes", "--socket", socket
        )
        assert unreachable.returncode == 4
        assert "--direct" in unreachable.stderr

        secondary.stop()
        refused = cli(
            "promote", "shop", "secondary", "--reason", "r", "--yes", "--direct", "-c", str(config)
        )
        assert refused.returncode == 3
        assert "target-not-up" in refused.stderr
        secondary.start()

        dry = cli(
            "promote",
            "shop",
            "secondary",
            "--reason",
            "r",
            "--dry-run",
            "--direct",
            "-c",
            str(config),
        )
        assert dry.returncode == 0, dry.stderr
        assert f"{primary.host} -> {secondary.host}" in dry.stdout

        done = cli(
            "promote",
            "shop",
            "secondary",
            "--reason",
            "aws control plane down",
            "--yes",
            "--direct",
            "-c",
            str(config),
        )
        assert done.returncode == 0, done.stdout + done.stderr

        daemon.start()  # the daemon comes back: it serves and keeps the operator's choice
        assert dns_a(dns_port, NAME) == [secondary.host]
        shop = cli_json("status", "--socket", socket)["services"]["shop"]
        assert shop["mode"] == "pinned"
        assert shop["pin"]["target"] == "secondary"
        assert shop["active"] == "secondary"
        history = cli_json("history", "--socket", socket)
        direct = [e for e in history if e.get("direct")]
        assert [e["kind"] for e in direct] == ["pin", "switch"]
        assert direct[-1]["result"] == "ok"
        assert direct[-1]["trigger"] == "manual"
    finally:
        daemon.stop()
        primary.close()
        secondary.close()
