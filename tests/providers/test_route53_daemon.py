"""End to end: the real daemon (`python -m failover run`) with a `type: route53` provider on
moto's server fails a service over when its primary stops; moto ends up holding the secondary.

Credentials come from the standard AWS chain (environment variables inherited by the daemon),
metadata probing is off and every endpoint is on loopback.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.providers.route53_stub import isolate_aws_env
from tests.support import DaemonProcess, TargetServer, free_port, metric_value, wait_until

ZONE, NAME = "example.test", "shop.example.test"
PRIMARY, SECONDARY = "127.0.0.11", "127.0.0.12"


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    isolate_aws_env(monkeypatch)  # inherited by the daemon subprocess
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto's state is per process, shared with other test modules: start from an empty account
    reset = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=5).close()
    client = boto3.client("route53", endpoint_url=url, region_name="us-east-1")
    client.zone_id = client.create_hosted_zone(Name=f"{ZONE}.", CallerReference="e2e")[
        "HostedZone"
    ]["Id"]
    try:
        yield url, client
    finally:
        server.stop()


def published(client: Any) -> list[str]:
    found = client.list_resource_record_sets(
        HostedZoneId=client.zone_id, StartRecordName=f"{NAME}.", StartRecordType="A", MaxItems="1"
    )["ResourceRecordSets"]
    if not found or found[0]["Name"] != f"{NAME}." or found[0]["Type"] != "A":
        return []
    return sorted(r["Value"] for r in found[0]["ResourceRecords"])


def test_daemon_fails_over_through_route53(tmp_path: Path, moto: tuple[str, Any]) -> None:
    url, client = moto
    primary, secondary = TargetServer(PRIMARY).start(), TargetServer(SECONDARY).start()
    metrics_port = free_port()
    config = tmp_path / "failover.yaml"
    config.write_text(
        f"""
instance: {{name: r53-e2e, location: lab, state_dir: "{tmp_path / "state"}"}}
admin: {{socket: "{tmp_path / "admin.sock"}"}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
providers:
  r53:
    type: route53
    endpoint_url: "{url}"
    verify: false
    timeout: 5s
    retry: {{attempts: 3, initial: 100ms, max_delay: 500ms, deadline: 5s}}
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{failback: manual, cooldown: 2s, startup_grace: 3s}}
services:
  shop:
    records:
      - {{provider: r53, zone: {ZONE}, name: {NAME}, type: A, ttl: 30}}
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
    try:
        daemon.start()
        wait_until(lambda: published(client) == [PRIMARY], 20, "the primary in Route 53")
        primary.stop()
        wait_until(lambda: published(client) == [SECONDARY], 20, "the failover in Route 53")

        def switched() -> bool:  # the engine records the switch once Route 53 says INSYNC
            metrics = daemon.metrics()
            changes = metric_value(
                metrics, "failover_dns_changes_total", provider="r53", result="ok"
            )
            active = metric_value(metrics, "failover_active_target", target="secondary")
            return (changes or 0) >= 2 and active == 1

        wait_until(switched, 10, "the switch in the metrics")
        assert daemon.stop() == 0
    finally:
        daemon.stop()
        primary.close()
        secondary.close()
    assert "Traceback" not in daemon.log.read_text()
