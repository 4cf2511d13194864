"""Drills end to end: switch, verify on the authoritative server, hold, switch back, report."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.providers.bind import KEY_NAME, ZONE, BindServer
from tests.support import (
    REPO,
    DaemonProcess,
    TargetServer,
    cli,
    cli_json,
    dns_a,
    free_port,
    metric_value,
    wait_until,
)

PRIMARY, SECONDARY = "127.0.0.51", "127.0.0.52"


def _config(
    workdir: Path,
    provider: str,
    primary: TargetServer,
    secondary: TargetServer,
    metrics: int,
    zone: str,
    drills: tuple[str, str] | None = None,
) -> Path:
    scheduled = ""
    if drills is not None:
        day, window = drills
        scheduled = f"""
    drills: {{enabled: true, days: [{day}], window: "{window}", timezone: UTC, hold: 1s}}
  other:
    records: [{{provider: dns, zone: {zone}, name: other.{zone}, type: A, ttl: 30}}]
    targets:
      - name: primary
        location: a
        values: [{primary.host}]
        probes: [{{type: http, url: "{primary.url}"}}]
      - name: dead
        location: b
        values: [192.0.2.9]
        probes: [{{type: tcp, address: "127.0.0.1:1"}}]
    drills: {{enabled: true, days: [{day}], window: "{window}", timezone: UTC, hold: 1s}}"""
    path = workdir / "failover.yaml"
    path.write_text(f"""
instance: {{name: drill-lab, location: lab, state_dir: "{workdir / "state"}"}}
admin: {{socket: "{workdir / "admin.sock"}"}}
metrics: {{listen: "127.0.0.1:{metrics}"}}
providers:
{provider}
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{failback: auto, failback_after: 1s, cooldown: 1s, startup_grace: 3s}}
services:
  shop:
    records: [{{provider: dns, zone: {zone}, name: shop.{zone}, type: A, ttl: 30}}]
    targets:
      - name: primary
        location: a
        values: [{primary.host}]
        probes: [{{type: http, url: "{primary.url}"}}]
      - name: secondary
        location: b
        values: [{secondary.host}]
        probes: [{{type: http, url: "{secondary.url}"}}]{scheduled}
""")
    return path


class Lab:
    def __init__(
        self,
        workdir: Path,
        provider: str,
        zone: str,
        dns_port: int,
        drills: tuple[str, str] | None = None,
    ) -> None:
        self.primary = TargetServer(PRIMARY).start()
        self.secondary = TargetServer(SECONDARY).start()
        self.metrics_port = free_port()
        self.config = _config(
            workdir, provider, self.primary, self.secondary, self.metrics_port, zone, drills
        )
        self.socket = str(workdir / "admin.sock")
        self.name = f"shop.{zone}"
        self.dns_port = dns_port
        self.daemon = DaemonProcess(self.config, self.metrics_port, workdir / "admin.sock").start()
        self.workdir = workdir

    def wait_health(self, target: str, health: str) -> None:
        def seen() -> bool:
            status = cli_json("status", "--socket", self.socket)
            return bool(status["services"]["shop"]["targets"][target]["health"] == health)

        wait_until(seen, 20, f"{target} {health}")

    def answer(self) -> list[str]:
        return dns_a(self.dns_port, self.name)

    def drill(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "failover", "drill", "shop", "--socket", self.socket, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )

    def close(self) -> None:
        self.daemon.stop()
        self.primary.close()
        self.secondary.close()


@pytest.fixture
def builtin_lab(tmp_path: Path) -> Iterator[Lab]:
    dns_port = free_port()
    provider = f'  dns: {{type: builtin, listen: "127.0.0.1:{dns_port}"}}'  # verify: itself
    lab = Lab(tmp_path, provider, "example.test", dns_port)
    try:
        yield lab
    finally:
        lab.close()


def test_drill_switches_holds_returns_and_reports(builtin_lab: Lab) -> None:
    lab = builtin_lab
    wait_until(lambda: lab.answer() == [PRIMARY], 20, "publication")
    lab.wait_health("secondary", "up")
    dry = cli("drill", "shop", "--hold", "2s", "--dry-run", "--socket", lab.socket)
    assert dry.returncode == 0, dry.stderr
    assert "primary -> secondary" in dry.stdout and "nothing changed" in dry.stdout
    assert lab.answer() == [PRIMARY]

    drill = lab.drill("--hold", "3s", "--yes", "--json")
    wait_until(lambda: lab.answer() == [SECONDARY], 20, "the drill target published")
    # failback is auto after 1s, yet the drill holds the secondary for its whole hold
    assert drill.poll() is None
    out, err = drill.communicate(timeout=60)
    assert drill.returncode == 0, out + err
    report = json.loads(out)
    assert report["result"] == "ok"
    assert [s["step"] for s in report["steps"]] == ["switch", "switch back"]
    assert all(s["verified"] is True for s in report["steps"])
    assert report["hold_health"]["samples"] > 0
    assert report["hold_health"]["up"] == report["hold_health"]["samples"]
    assert lab.answer() == [PRIMARY]

    history = cli_json("history", "--socket", lab.socket)
    drills = [e for e in history if e["trigger"] == "drill"]
    assert [(e["kind"], e.get("result")) for e in drills if e["kind"] != "verify"] == [
        ("drill", "started"),
        ("switch", "ok"),
        ("switch", "ok"),
        ("drill", "ok"),
    ]
    assert [e["to"] for e in drills if e["kind"] == "switch"] == ["secondary", "primary"]
    metrics = lab.daemon.metrics()
    assert metric_value(metrics, "failover_last_drill_success", service="shop") == 1
    assert (metric_value(metrics, "failover_last_drill_timestamp_seconds", service="shop") or 0) > 0
    assert metric_value(metrics, "failover_switches_total", to="secondary", trigger="drill") == 1
    assert metric_value(metrics, "failover_switches_total", to="secondary", trigger="auto") is None


def test_drill_target_dying_mid_hold_returns_at_once(builtin_lab: Lab) -> None:
    lab = builtin_lab
    wait_until(lambda: lab.answer() == [PRIMARY], 20, "publication")
    lab.wait_health("secondary", "up")
    drill = lab.drill("--hold", "10m", "--yes", "--json")
    wait_until(lambda: lab.answer() == [SECONDARY], 20, "the drill target published")
    lab.secondary.stop()
    wait_until(lambda: lab.answer() == [PRIMARY], 20, "the drill returning at once")
    out, err = drill.communicate(timeout=60)
    assert drill.returncode == 1, out + err
    report = json.loads(out)
    assert report["result"] == "failed"
    assert "went DOWN during the hold" in report["reason"]
    assert metric_value(lab.daemon.metrics(), "failover_last_drill_success", service="shop") == 0


def test_drill_refuses_when_preflight_fails(builtin_lab: Lab) -> None:
    lab = builtin_lab
    wait_until(lambda: lab.answer() == [PRIMARY], 20, "publication")
    lab.secondary.stop()
    lab.wait_health("secondary", "down")
    refused = cli("drill", "shop", "--hold", "2s", "--yes", "--socket", lab.socket)
    assert refused.returncode == 3
    assert "no other target of shop is UP" in refused.stderr
    assert lab.answer() == [PRIMARY]


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    server = BindServer(tmp_path_factory.mktemp("bind")).start()
    try:
        yield server
    finally:
        server.stop()


def test_drill_through_bind_verifies_on_the_authoritative_server(
    bind: BindServer, tmp_path: Path
) -> None:
    secret = tmp_path / "tsig.secret"
    secret.write_text(bind.secret + "\n")
    provider = f"""  dns:
    type: rfc2136
    server: 127.0.0.1
    port: {bind.port}
    tsig: {{name: {KEY_NAME}, algorithm: hmac-sha256, secret: "${{file:{secret}}}"}}
    verify: {{nameservers: ["127.0.0.1:{bind.port}"], timeout: 10s}}"""
    lab = Lab(tmp_path, provider, ZONE, bind.port)
    try:
        wait_until(lambda: lab.answer() == [PRIMARY], 20, "publication at BIND")
        lab.wait_health("secondary", "up")
        drill = lab.drill("--hold", "2s", "--yes", "--json")
        wait_until(lambda: lab.answer() == [SECONDARY], 20, "the drill target at BIND")
        out, err = drill.communicate(timeout=60)
        assert drill.returncode == 0, out + err
        report = json.loads(out)
        assert report["result"] == "ok"
        for step in report["steps"]:
            assert step["verified"] is True
            assert step["providers"][0]["verify_seconds"] is not None
        assert lab.answer() == [PRIMARY]
    finally:
        lab.close()


def test_real_incident_during_a_drill_wins(builtin_lab: Lab) -> None:
    lab = builtin_lab
    wait_until(lambda: lab.answer() == [PRIMARY], 20, "publication")
    lab.wait_health("secondary", "up")
    drill = lab.drill("--hold", "10m", "--yes", "--json")
    wait_until(lambda: lab.answer() == [SECONDARY], 20, "the drill target published")
    lab.primary.stop()  # the origin dies for real while the drill holds the secondary
    out, err = drill.communicate(timeout=60)
    assert drill.returncode == 1, out + err
    report = json.loads(out)
    assert report["result"] == "aborted"
    assert "real incident" in report["reason"]
    assert lab.answer() == [SECONDARY]  # no switch back to a dead primary
    assert cli_json("status", "--socket", lab.socket)["services"]["shop"]["mode"] == "auto"


def test_last_drill_survives_a_restart(builtin_lab: Lab) -> None:
    lab = builtin_lab
    wait_until(lambda: lab.answer() == [PRIMARY], 20, "publication")
    lab.wait_health("secondary", "up")
    done = cli("drill", "shop", "--hold", "1s", "--yes", "--socket", lab.socket)
    assert done.returncode == 0, done.stdout + done.stderr
    before = metric_value(
        lab.daemon.metrics(), "failover_last_drill_timestamp_seconds", service="shop"
    )
    assert lab.daemon.stop() == 0
    lab.daemon.start()
    after = lab.daemon.metrics()
    assert metric_value(after, "failover_last_drill_timestamp_seconds", service="shop") == before
    assert metric_value(after, "failover_last_drill_success", service="shop") == 1


def test_scheduled_drill_runs_in_its_window_and_skips_an_unhealthy_service(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    minute = now.hour * 60 + now.minute
    start, end = max(0, minute - 1), min(24 * 60, minute + 15)
    window = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    day = now.strftime("%a").lower()
    dns_port = free_port()
    provider = f'  dns: {{type: builtin, listen: "127.0.0.1:{dns_port}"}}'
    lab = Lab(tmp_path, provider, "example.test", dns_port, drills=(day, window))
    try:
        wait_until(lambda: lab.answer() == [PRIMARY], 20, "publication")

        def drill_results() -> list[tuple[str, str]]:
            history = cli_json("history", "--socket", lab.socket)
            return [(e["service"], e["result"]) for e in history if e["kind"] == "drill"]

        wait_until(lambda: ("shop", "ok") in drill_results(), 60, "the scheduled drill")
        assert ("other", "skipped") in drill_results()
        assert ("other", "started") not in drill_results()
        assert lab.answer() == [PRIMARY]
        history = cli_json("history", "--socket", lab.socket)
        assert {e["actor"] for e in history if e["kind"] == "drill"} == {"scheduler"}
    finally:
        lab.close()
