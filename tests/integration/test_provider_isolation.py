"""One provider's outage never blocks another: a hung OVH API does not delay the other record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.providers.fake_ovh import FakeOvhThread, daemon_fake
from tests.support import DaemonProcess, TargetServer, cli_json, dns_a, free_port, wait_until

ZONE = "example.test"
NAME = f"shop.{ZONE}"
PRIMARY, SECONDARY = "127.0.0.46", "127.0.0.47"
HANG = 8.0  # seconds every OVH write stalls once the outage starts


@pytest.fixture
def ovh_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeOvhThread]:
    with daemon_fake(monkeypatch, tmp_path, ZONE) as server:
        yield server


def test_hung_provider_does_not_delay_the_other(ovh_api: FakeOvhThread, tmp_path: Path) -> None:
    primary = TargetServer(PRIMARY).start()
    secondary = TargetServer(SECONDARY).start()
    dns_port, metrics_port = free_port(), free_port()
    config = tmp_path / "failover.yaml"
    config.write_text(
        f"""
instance: {{name: test-split, location: lab, state_dir: "{tmp_path / "state"}"}}
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
      - {{provider: lab, zone: {ZONE}, name: {NAME}, type: A, ttl: 30}}
      - {{provider: ovh, zone: {ZONE}, name: {NAME}, type: A, ttl: 30}}
    targets:
      - name: primary
        location: a
        values: [{PRIMARY}]
        probes: [{{type: http, url: "{primary.url}"}}]
      - name: secondary
        location: b
        values: [{SECONDARY}]
        probes: [{{type: http, url: "{secondary.url}"}}]
"""
    )
    socket = str(tmp_path / "admin.sock")
    daemon = DaemonProcess(config, metrics_port, tmp_path / "admin.sock").start()
    try:
        wait_until(lambda: dns_a(dns_port, NAME) == [PRIMARY], 20, "publication at lab")
        wait_until(lambda: ovh_api.live(ZONE).get(("shop", "A")) == [PRIMARY], 20, "at OVH")
        for method in ("PUT", "POST"):
            ovh_api.fake.hang(method, r"/domain/zone/.*/record", HANG, times=None)
        primary.stop()
        wait_until(lambda: dns_a(dns_port, NAME) == [SECONDARY], 20, "the flip at lab")
        assert ovh_api.live(ZONE).get(("shop", "A")) == [PRIMARY]  # OVH still hung meanwhile
        shop = cli_json("status", "--socket", socket)["services"]["shop"]
        lab = next(r for r in shop["records"] if r["provider"] == "lab")
        assert lab["values"] == [SECONDARY]
        ovh_api.fake.faults.clear()
        wait_until(
            lambda: ovh_api.live(ZONE).get(("shop", "A")) == [SECONDARY], 60, "OVH catching up"
        )
        history = cli_json("history", "--socket", socket)
        switch = [e for e in history if e["kind"] == "switch"][-1]
        assert switch["to"] == "secondary"
        assert {p["provider"]: p["ok"] for p in switch["providers"]} in (
            {"lab": True, "ovh": True},
            {"lab": True, "ovh": False},
        )
    finally:
        daemon.stop()
        primary.close()
        secondary.close()
