"""A daemon with one service on loopback, and the reads a fault test makes of it.

The fault tests differ in their providers; everything else (the service, its two HTTP targets,
fast probes, the admin socket, the journal) is the same, so it lives here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support import DaemonProcess, TargetServer, cli_json, free_port

ZONE = "example.test"
NAME = f"shop.{ZONE}"


def service_yaml(providers: list[str], primary: TargetServer, secondary: TargetServer) -> str:
    records = "".join(
        f"\n      - {{provider: {p}, zone: {ZONE}, name: {NAME}, type: A, ttl: 30}}"
        for p in providers
    )
    return f"""
services:
  shop:
    records:{records}
    targets:
      - name: primary
        location: cloud-a
        values: [{primary.host}]
        probes: [{{type: http, url: "{primary.url}"}}]
      - name: secondary
        location: cloud-b
        values: [{secondary.host}]
        probes: [{{type: http, url: "{secondary.url}"}}]
"""


class Lab:
    """The daemon, its targets and its files; `providers` is the YAML of the providers map."""

    def __init__(
        self, workdir: Path, providers: str, names: list[str], primary: str, secondary: str
    ) -> None:
        self.workdir = workdir
        self.primary = TargetServer(primary).start()
        self.secondary = TargetServer(secondary).start()
        self.metrics_port = free_port()
        self.socket = workdir / "admin.sock"
        self.config = workdir / "failover.yaml"
        self.write(providers, names)
        self.daemon = DaemonProcess(self.config, self.metrics_port, self.socket)

    def write(self, providers: str, names: list[str]) -> None:
        self.config.write_text(
            f"""
instance: {{name: faults, location: lab, state_dir: "{self.workdir / "state"}"}}
admin: {{socket: "{self.socket}"}}
metrics: {{listen: "127.0.0.1:{self.metrics_port}"}}
providers:
{providers}
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{failback: manual, cooldown: 2s, startup_grace: 3s}}
{service_yaml(names, self.primary, self.secondary)}"""
        )

    def status(self) -> dict[str, Any]:
        shop: dict[str, Any] = cli_json("status", "--socket", str(self.socket))["services"]["shop"]
        return shop

    def alarms(self) -> set[str]:
        return set(self.status()["alarms"])

    def journal(self) -> list[dict[str, Any]]:
        path = self.workdir / "state" / "journal.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def log(self) -> str:
        return self.daemon.log.read_text() if self.daemon.log.exists() else ""

    def close(self) -> None:
        self.daemon.stop()
        self.primary.close()
        self.secondary.close()


@contextmanager
def running(lab: Lab) -> Iterator[Lab]:
    try:
        lab.daemon.start()
        yield lab
    finally:
        lab.close()
    assert "Traceback" not in lab.log(), lab.log()
