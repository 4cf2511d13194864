"""A blackholed DNS provider delays only its own services, at start-up and at a restart.

Before the single background read path, start-up read every provider under the decision lock:
with one provider's API dropping packets, a service held by another, healthy provider was
published only after ~60 s, a restart mid-incident left the dead primary served as long, and
the start-up grace could run out and publish a secondary while the primary was UP. Here the
RFC 2136 server of service `far` is an address whose packets a network namespace drops; the
assertions are causal: everything about `shop` happens while `far`'s read is still pending.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.faults.netns import blackhole
from tests.support import DaemonProcess, TargetServer, cli_json, dns_a, free_port, wait_until

SHOP = "shop.example.test"


class StartingDaemon(DaemonProcess):
    """Started once it is alive: with a blackholed provider it is not ready for a long time."""

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log.read_text()}")
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/healthz"
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            return False

    def readyz(self) -> str:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return str(resp.read().decode())
        except urllib.error.HTTPError as exc:
            return str(exc.read().decode())


def write_config(
    workdir: Path, dead: str, dns_port: int, metrics_port: int, targets: dict[str, TargetServer]
) -> Path:
    def target(name: str, location: str) -> str:
        server = targets[name]
        return (
            f"      - {{name: {name}, location: {location}, values: [{server.host}],"
            f' probes: [{{type: http, url: "{server.url}"}}]}}\n'
        )

    text = f"""
instance: {{name: bh-1, location: lab, state_dir: "{workdir / "state"}"}}
admin: {{socket: "{workdir / "admin.sock"}"}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
providers:
  lab: {{type: builtin, listen: "127.0.0.1:{dns_port}", verify: false}}
  dead:
    type: rfc2136
    server: {dead}
    tsig: {{name: k, algorithm: hmac-sha256, secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}}
    verify: false
    timeout: 30s
    retry: {{attempts: 3, initial: 1s, max_delay: 5s, deadline: 60s}}
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{failback: manual, cooldown: 2s, startup_grace: 2s}}
services:
  shop:
    records: [{{provider: lab, zone: example.test, name: {SHOP}, type: A, ttl: 30}}]
    targets:
{target("primary", "cloud-a")}{target("secondary", "cloud-b")}
  far:
    records: [{{provider: dead, zone: example.test, name: far.example.test, type: A, ttl: 30}}]
    targets:
{target("primary", "cloud-a")}{target("secondary", "cloud-b")}
"""
    path = workdir / "failover.yaml"
    path.write_text(text)
    return path


def far_still_unread(daemon: StartingDaemon) -> bool:
    return "dead (1 services)" in daemon.readyz()


def switches(workdir: Path, service: str) -> list[dict]:  # type: ignore[type-arg]
    lines = (workdir / "state" / "journal.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["service"] == service and e["kind"] == "switch"]


def test_a_blackholed_provider_delays_only_its_own_services(tmp_path: Path) -> None:
    primary = TargetServer("127.0.0.61").start()
    secondary = TargetServer("127.0.0.62").start()
    dns_port, metrics_port = free_port(), free_port()
    with blackhole() as dead:
        config = write_config(
            tmp_path, dead, dns_port, metrics_port, {"primary": primary, "secondary": secondary}
        )
        daemon = StartingDaemon(config, metrics_port, tmp_path / "admin.sock").start()
        try:
            # start-up: shop is published while far's provider has not answered
            wait_until(lambda: dns_a(dns_port, SHOP) == [primary.host], 20, "publication")
            assert far_still_unread(daemon)
            # the start-up grace (2s) runs out with the primary UP: it is never replaced
            time.sleep(3.0)
            assert dns_a(dns_port, SHOP) == [primary.host]
            assert switches(tmp_path, "shop") == []
            assert far_still_unread(daemon)
            far = cli_json("status", "--socket", str(tmp_path / "admin.sock"))["services"]["far"]
            assert far["phase"] == "starting"  # nothing decided from missing data
            assert far["active"] is None

            # restart in the middle of an incident: the primary died while we were down
            assert daemon.stop() == 0
            primary.stop()
            daemon = StartingDaemon(config, metrics_port, tmp_path / "admin.sock").start()
            wait_until(lambda: dns_a(dns_port, SHOP) == [secondary.host], 20, "the failover")
            assert far_still_unread(daemon), "shop's failover waited for the blackholed read"
        finally:
            daemon.stop()
            primary.close()
            secondary.close()
