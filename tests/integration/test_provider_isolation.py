"""One provider's outage never blocks another: a hung OVH or Cloudflare API does not delay the
other record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.providers.fake_cloudflare import FakeCloudflare
from tests.providers.fake_cloudflare import ThreadedFake as ThreadedCloudflare
from tests.providers.fake_ovh import FakeOvhThread, daemon_fake
from tests.providers.peers import CF_TOKEN
from tests.support import (
    DaemonProcess,
    Lab,
    TargetServer,
    cli_json,
    dns_a,
    free_port,
    wait_until,
)

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


def test_a_hung_cloudflare_api_delays_only_itself(tmp_path: Path) -> None:
    """The same at Cloudflare: its batch calls hang, the builtin server flips at once."""
    fake = FakeCloudflare(CF_TOKEN)
    fake.add_zone(ZONE)
    api = ThreadedCloudflare(fake).start()
    cloudflare = (
        f'  cf: {{type: cloudflare, base_url: "{fake.url}", api_token: "${{CF_TEST_TOKEN}}",'
        " verify: false, timeout: 30s}"
    )
    try:
        with Lab(
            tmp_path,
            addresses=("127.0.0.48", "127.0.0.49"),
            env={"CF_TEST_TOKEN": CF_TOKEN},
            record_at={"shop": ("lab", "cf")},
            more_providers=cloudflare,
        ) as lab:
            primary, secondary = lab.primary.host, lab.secondary.host

            def at_cloudflare() -> list[str] | None:
                found = api.rrset(ZONE, NAME)
                return found[1] if found else None

            lab.start()
            lab.wait_answer(primary)
            wait_until(lambda: at_cloudflare() == [primary], 20, "publication at Cloudflare")
            fake.inject("POST", "/batch", hang=HANG, times=1000)
            lab.primary.stop()
            lab.wait_answer(secondary)  # the builtin server did not wait for Cloudflare
            assert at_cloudflare() == [primary]  # Cloudflare still hung meanwhile
            fake.faults.clear()
            wait_until(lambda: at_cloudflare() == [secondary], 60, "Cloudflare catching up")
        assert CF_TOKEN not in lab.log()
    finally:
        api.close()
