"""End to end: the real daemon fails a service over through the fake OVH API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.providers.fake_ovh import APP_SECRET, CONSUMER_KEY, FakeOvhThread, daemon_fake
from tests.support import (
    DaemonProcess,
    TargetServer,
    cli_json,
    free_port,
    metric_value,
    wait_until,
)

ZONE = "example.test"
PRIMARY, SECONDARY = "127.0.0.21", "127.0.0.22"


@pytest.fixture
def ovh_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeOvhThread]:
    """The fake in its own thread; the daemon's environment holds no stray OVH_* variable."""
    with daemon_fake(monkeypatch, tmp_path, ZONE, deploy_delay=0.2) as server:
        yield server


def test_daemon_fails_over_through_ovh(ovh_api: FakeOvhThread, tmp_path: Path) -> None:
    primary = TargetServer(PRIMARY).start()
    secondary = TargetServer(SECONDARY).start()
    metrics_port = free_port()
    config = tmp_path / "failover.yaml"
    config.write_text(
        f"""
instance: {{name: test-ovh, location: lab, state_dir: "{tmp_path / "state"}"}}
admin: {{socket: "{tmp_path / "admin.sock"}"}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
providers:
  ovh:
    type: ovh
    endpoint: {ovh_api.fake.url}
    application_key: ${{FAILOVER_TEST_OVH_AK}}
    application_secret: ${{FAILOVER_TEST_OVH_AS}}
    consumer_key: ${{FAILOVER_TEST_OVH_CK}}
    verify: false
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{failback: manual, cooldown: 2s, startup_grace: 3s}}
services:
  shop:
    records:
      - {{provider: ovh, zone: {ZONE}, name: shop.{ZONE}, type: A, ttl: 30}}
    targets:
      - name: primary
        location: cloud-a
        values: [{PRIMARY}]
        probes: [{{type: http, url: "{primary.url}"}}]
      - name: secondary
        location: cloud-b
        values: [{SECONDARY}]
        probes: [{{type: http, url: "{secondary.url}"}}]
"""
    )
    daemon = DaemonProcess(config, metrics_port, tmp_path / "admin.sock")

    def live() -> list[str] | None:
        return ovh_api.live(ZONE).get(("shop", "A"))

    try:
        daemon.start()
        wait_until(lambda: live() == [PRIMARY], 20, "the primary to be published at OVH")
        primary.stop()
        wait_until(lambda: live() == [SECONDARY], 20, "the failover to reach OVH's servers")

        shop = cli_json("status", "--socket", str(tmp_path / "admin.sock"))["services"]["shop"]
        assert shop["active"] == "secondary"
        assert shop["records"][0]["values"] == [SECONDARY]
        assert ovh_api.fake.count("POST", f"/domain/zone/{ZONE}/refresh$") >= 2
        metrics = daemon.metrics()
        assert (
            metric_value(metrics, "failover_dns_changes_total", provider="ovh", result="ok") or 0
        ) >= 2
        log = daemon.log.read_text()
        assert APP_SECRET not in log and CONSUMER_KEY not in log
    finally:
        daemon.stop()
        primary.close()
        secondary.close()
