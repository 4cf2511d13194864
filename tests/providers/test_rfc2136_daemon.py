"""End to end: the real daemon publishes and fails services over through a real BIND.

`shop` has no record in the zone yet (the daemon creates it with the first UP target); `api`
already has one, written by hand with the primary's address (nothing moves at start-up). When
the primary stops, both records must end up holding the secondary's address.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.providers.bind import KEY_NAME, ZONE, BindServer
from tests.support import (
    DaemonProcess,
    TargetServer,
    cli_json,
    free_port,
    metric_value,
    wait_until,
)

PRIMARY, SECONDARY = "127.0.0.31", "127.0.0.32"


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    server = BindServer(tmp_path_factory.mktemp("bind")).start()
    try:
        yield server
    finally:
        server.stop()


def service(name: str, primary: TargetServer, secondary: TargetServer) -> str:
    return f"""
  {name}:
    records:
      - {{provider: bind, zone: {ZONE}, name: {name}.{ZONE}, type: A, ttl: 30}}
    targets:
      - name: primary
        location: cloud-a
        values: [{primary.host}]
        probes: [{{type: http, url: "{primary.url}"}}]
      - name: secondary
        location: cloud-b
        values: [{secondary.host}]
        probes: [{{type: http, url: "{secondary.url}"}}]"""


def config_text(
    workdir: Path, bind: BindServer, primary: TargetServer, secondary: TargetServer, metrics: int
) -> str:
    secret_file = workdir / "tsig.secret"
    secret_file.write_text(bind.secret + "\n")
    return f"""
instance: {{name: bind-e2e, location: lab, state_dir: "{workdir / "state"}"}}
admin: {{socket: "{workdir / "admin.sock"}"}}
metrics: {{listen: "127.0.0.1:{metrics}"}}
providers:
  bind:
    type: rfc2136
    server: 127.0.0.1
    port: {bind.port}
    tsig: {{name: {KEY_NAME}, algorithm: hmac-sha256, secret: "${{file:{secret_file}}}"}}
    verify: false
    timeout: 5s
    retry: {{attempts: 3, initial: 50ms, max_delay: 200ms, deadline: 5s}}
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{failback: manual, cooldown: 2s, startup_grace: 3s}}
services:{service("shop", primary, secondary)}{service("api", primary, secondary)}
"""


def test_daemon_creates_then_fails_over_through_bind(bind: BindServer, tmp_path: Path) -> None:
    hand = bind.update()
    hand.add("api", 30, "A", PRIMARY)
    bind.send(hand)
    api_serial = bind.serial()
    assert bind.values(f"shop.{ZONE}") == []

    primary = TargetServer(PRIMARY).start()
    secondary = TargetServer(SECONDARY).start()
    metrics_port = free_port()
    path = tmp_path / "failover.yaml"
    path.write_text(config_text(tmp_path, bind, primary, secondary, metrics_port))
    daemon = DaemonProcess(path, metrics_port, tmp_path / "admin.sock")
    try:
        daemon.start()
        wait_until(lambda: bind.values(f"shop.{ZONE}") == [PRIMARY], 20, "shop to be created")
        assert bind.values(f"api.{ZONE}") == [PRIMARY]
        assert bind.serial() == api_serial + 1  # only the creation of shop changed the zone

        primary.stop()
        for name in ("shop", "api"):
            wait_until(
                lambda name=name: bind.values(f"{name}.{ZONE}") == [SECONDARY],  # type: ignore[misc]
                20,
                f"{name} to fail over to the secondary",
            )
        status = cli_json("status", "--socket", str(tmp_path / "admin.sock"))
        for name in ("shop", "api"):
            svc = status["services"][name]
            assert svc["active"] == "secondary"
            assert svc["records"][0]["values"] == [SECONDARY]
        metrics = daemon.metrics()
        ok = metric_value(metrics, "failover_dns_changes_total", provider="bind", result="ok")
        assert ok is not None and ok >= 2
    finally:
        daemon.stop()
        primary.close()
        secondary.close()
    log = daemon.log.read_text()
    assert bind.secret not in log
    assert "Traceback" not in log
