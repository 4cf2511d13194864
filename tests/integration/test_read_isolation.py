"""A provider whose reads hang must not stall decisions for services on other providers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.providers.fake_ovh import FakeOvhThread, daemon_fake
from tests.support import DaemonProcess, TargetServer, dns_a, free_port, wait_until

PRIMARY, SECONDARY = "127.0.0.61", "127.0.0.62"


@pytest.fixture
def ovh_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeOvhThread]:
    with daemon_fake(monkeypatch, tmp_path, "example.org") as server:
        yield server


def test_hung_reads_at_one_provider_do_not_stall_another_service(
    ovh_api: FakeOvhThread, tmp_path: Path
) -> None:
    primary = TargetServer(PRIMARY).start()
    secondary = TargetServer(SECONDARY).start()
    dns_port, metrics_port = free_port(), free_port()
    targets = f"""
    targets:
      - name: primary
        location: a
        values: [{PRIMARY}]
        probes: [{{type: http, url: "{primary.url}"}}]
      - name: secondary
        location: b
        values: [{SECONDARY}]
        probes: [{{type: http, url: "{secondary.url}"}}]"""
    config = tmp_path / "failover.yaml"
    config.write_text(
        f"""
instance:
  name: t
  location: lab
  state_dir: "{tmp_path / "state"}"
  resync_interval: 1s
  shutdown_timeout: 1s
admin: {{socket: "{tmp_path / "admin.sock"}"}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
providers:
  lab: {{type: builtin, listen: "127.0.0.1:{dns_port}"}}
  ovh:
    type: ovh
    endpoint: {ovh_api.fake.url}
    application_key: ${{FAILOVER_TEST_OVH_AK}}
    application_secret: ${{FAILOVER_TEST_OVH_AS}}
    consumer_key: ${{FAILOVER_TEST_OVH_CK}}
    timeout: 30s
    verify: false
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{failback: manual, cooldown: 2s, startup_grace: 3s}}
services:
  shop:
    records:
      - {{provider: lab, zone: example.test, name: shop.example.test, type: A, ttl: 30}}{targets}
  api:
    records:
      - {{provider: ovh, zone: example.org, name: api.example.org, type: A, ttl: 30}}{targets}
"""
    )
    daemon = DaemonProcess(config, metrics_port, tmp_path / "admin.sock").start()
    try:
        wait_until(lambda: dns_a(dns_port, "shop.example.test") == [PRIMARY], 20, "shop")
        wait_until(lambda: ovh_api.live("example.org").get(("api", "A")) == [PRIMARY], 20, "api")
        # from now on every OVH read stalls for a minute (resync runs every second)
        before = ovh_api.fake.count("GET", r"/record")
        ovh_api.fake.hang("GET", r"/domain/zone/.*/record", 60, times=None)
        wait_until(lambda: ovh_api.fake.count("GET", r"/record") > before, 20, "a stalled read")
        primary.stop()
        wait_until(
            lambda: dns_a(dns_port, "shop.example.test") == [SECONDARY], 20, "shop's failover"
        )
    finally:
        ovh_api.fake.faults.clear()
        daemon.stop()
        primary.close()
        secondary.close()
