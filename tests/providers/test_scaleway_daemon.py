"""End to end: the real daemon fails a service over through the fake Scaleway API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.providers.fake_scaleway import FakeScaleway, ThreadedFake
from tests.support import (
    DaemonProcess,
    TargetServer,
    cli_json,
    free_port,
    metric_value,
    wait_until,
)

TOKEN = "5d6e7f80-1a2b-4c3d-9e8f-a0b1c2d3e4f5"
ZONE = "example.test"
PRIMARY, SECONDARY = "127.0.0.21", "127.0.0.22"


def config_text(
    workdir: Path, api_url: str, primary: TargetServer, secondary: TargetServer, metrics_port: int
) -> str:
    return f"""
instance: {{name: scw-e2e, location: lab, state_dir: "{workdir / "state"}"}}
admin: {{socket: "{workdir / "admin.sock"}"}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
providers:
  scw:
    type: scaleway
    api_url: {api_url}
    secret_key: ${{SCW_TEST_SECRET}}
    verify: false
    timeout: 5s
    retry: {{attempts: 4, initial: 50ms, max_delay: 200ms, deadline: 5s}}
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{failback: manual, cooldown: 2s, startup_grace: 3s}}
services:
  shop:
    records:
      - {{provider: scw, zone: {ZONE}, name: shop.{ZONE}, type: A, ttl: 60}}
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


def test_daemon_fails_over_through_scaleway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCW_TEST_SECRET", TOKEN)
    fake = FakeScaleway({TOKEN: "write"}, pending_polls=1)
    fake.add_zone(ZONE)
    api = ThreadedFake(fake).start()
    primary = TargetServer(PRIMARY).start()
    secondary = TargetServer(SECONDARY).start()
    metrics_port = free_port()
    path = tmp_path / "failover.yaml"
    path.write_text(config_text(tmp_path, fake.url, primary, secondary, metrics_port))
    daemon = DaemonProcess(path, metrics_port, tmp_path / "admin.sock")
    try:
        daemon.start()
        wait_until(lambda: api.rrset(ZONE, "shop", "A") == (60, [PRIMARY]), 20, "primary published")
        # the failover PATCH is throttled once: the daemon must wait and retry, and count it
        fake.inject(
            "PATCH",
            "/records",
            status=429,
            headers={"Retry-After": "1"},
            body={"message": "rate limit exceeded", "type": "too_many_requests"},
        )
        primary.stop()
        wait_until(lambda: api.rrset(ZONE, "shop", "A") == (60, [SECONDARY]), 30, "the failover")

        def in_sync() -> bool:
            shop = cli_json("status", "--socket", str(tmp_path / "admin.sock"))["services"]["shop"]
            return bool(shop["active"] == "secondary" and shop["records"][0]["in_sync"])

        wait_until(in_sync, 20, "status to report the secondary in sync")
        metrics = daemon.metrics()
        assert (
            metric_value(
                metrics, "failover_provider_errors_total", provider="scw", kind="throttling"
            )
            == 1
        )
        assert all(seen.authenticated for seen in fake.seen)
        assert [c["set"]["id_fields"] for s in fake.calls("PATCH") for c in s.body["changes"]] == [
            {"name": "shop", "type": "A"}
        ] * 3  # published, throttled, retried
    finally:
        daemon.stop()
        primary.close()
        secondary.close()
        api.close()
    assert TOKEN not in daemon.log.read_text()
