"""A common-mode blip (every target fails for 2 s, then all recover together) switches nothing.

Before the recovery rule, the isolation guard cleared on the first success after the blip and
the first target to finish `rise` won: 7 of 8 trials moved the service to the secondary,
which merely came back a few milliseconds earlier.
"""

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
    wait_until,
)

NAME = "shop.example.test"
TRIALS = 5


def test_common_mode_blips_switch_nothing(tmp_path: Path) -> None:
    primary = TargetServer("127.0.0.41").start()
    secondary = TargetServer("127.0.0.42").start()
    dns_port, metrics_port = free_port(), free_port()
    config = daemon_config(
        tmp_path, primary, secondary, dns_port=dns_port, metrics_port=metrics_port
    )
    socket = str(tmp_path / "admin.sock")
    daemon = DaemonProcess(config, metrics_port, tmp_path / "admin.sock").start()

    def healths() -> tuple[str, str]:
        targets = cli_json("status", "--socket", socket)["services"]["shop"]["targets"]
        return targets["primary"]["health"], targets["secondary"]["health"]

    try:
        wait_until(lambda: dns_a(dns_port, NAME) == [primary.host], 20, "publication")
        wait_until(lambda: healths() == ("up", "up"), 20, "both targets UP")
        for _ in range(TRIALS):
            primary.status = secondary.status = 503  # both clouds fail at once …
            wait_until(lambda: healths() == ("down", "down"), 20, "both targets DOWN")
            time.sleep(2.0)
            secondary.status = 200  # … and recover together, the secondary a hair first
            time.sleep(0.1)
            primary.status = 200
            wait_until(lambda: healths() == ("up", "up"), 20, "both targets UP again")
            time.sleep(0.5)  # any decision taken on the recovery has landed by now
            assert dns_a(dns_port, NAME) == [primary.host]
    finally:
        daemon.stop()
        primary.close()
        secondary.close()
    journal = (tmp_path / "state" / "journal.jsonl").read_text().splitlines()
    switches = [e for e in map(json.loads, journal) if e["kind"] == "switch"]
    assert switches == [], f"switched out of a common-mode blip: {switches}"
