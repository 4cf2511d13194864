"""Drills end to end: switch, verify on the authoritative server, hold, switch back, report."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.providers.bind import BindServer
from tests.providers.peers import bind_peer
from tests.support import Lab, Peer, builtin_peer, metric_value, wait_until

PRIMARY, SECONDARY = "127.0.0.51", "127.0.0.52"
# failback is automatic and fast: a drill must hold its target anyway
POLICY = "{failback: auto, failback_after: 1s, cooldown: 1s, startup_grace: 3s}"


def drill_lab(workdir: Path, peer: Peer | None = None) -> Lab:
    """A Lab whose builtin server verifies every change on itself (or through `peer`)."""
    return Lab(
        workdir,
        peer or builtin_peer(verify=True),
        addresses=(PRIMARY, SECONDARY),
        instance="drill-lab",
        policy=POLICY,
    )


def drill(lab: Lab, *args: str) -> subprocess.Popen[str]:
    """`failover drill shop ARGS` in the background: it returns only after its hold."""
    return lab.cli_background("drill", "shop", *args)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with drill_lab(tmp_path) as lab:
        lab.start()
        lab.wait_answer(PRIMARY)
        lab.wait_health("secondary", "up")
        yield lab


def test_drill_switches_holds_returns_and_reports(lab: Lab) -> None:
    dry = lab.cli("drill", "shop", "--hold", "2s", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "primary -> secondary" in dry.stdout and "nothing changed" in dry.stdout
    assert lab.answer() == [PRIMARY]

    running = drill(lab, "--hold", "3s", "--yes", "--json")
    lab.wait_answer(SECONDARY)  # the drill target published
    # failback is auto after 1s, yet the drill holds the secondary for its whole hold
    assert running.poll() is None
    out, err = running.communicate(timeout=60)
    assert running.returncode == 0, out + err
    report = json.loads(out)
    assert report["result"] == "ok"
    assert [s["step"] for s in report["steps"]] == ["switch", "switch back"]
    assert all(s["verified"] is True for s in report["steps"])
    assert report["hold_health"]["samples"] > 0
    assert report["hold_health"]["up"] == report["hold_health"]["samples"]
    assert lab.answer() == [PRIMARY]

    history = lab.cli_json("history", "--json")
    drills = [e for e in history if e["trigger"] == "drill"]
    assert [
        (e["kind"], e.get("result")) for e in drills if e["kind"] not in ("verify", "intent")
    ] == [
        ("drill", "started"),
        ("switch", "ok"),
        ("switch", "ok"),
        ("drill", "ok"),
    ]
    assert [e["to"] for e in drills if e["kind"] == "switch"] == ["secondary", "primary"]
    metrics = lab.metrics()
    assert metric_value(metrics, "failover_last_drill_success", service="shop") == 1
    assert (metric_value(metrics, "failover_last_drill_timestamp_seconds", service="shop") or 0) > 0
    assert metric_value(metrics, "failover_switches_total", to="secondary", trigger="drill") == 1
    assert metric_value(metrics, "failover_switches_total", to="secondary", trigger="auto") is None


def test_drill_target_dying_mid_hold_returns_at_once(lab: Lab) -> None:
    running = drill(lab, "--hold", "10m", "--yes", "--json")
    lab.wait_answer(SECONDARY)  # the drill target published
    lab.secondary.stop()
    lab.wait_answer(PRIMARY)  # the drill returns at once
    out, err = running.communicate(timeout=60)
    assert running.returncode == 1, out + err
    report = json.loads(out)
    assert report["result"] == "failed"
    assert "went DOWN during the hold" in report["reason"]
    assert lab.metric("failover_last_drill_success", service="shop") == 0


def test_drill_refuses_when_preflight_fails(lab: Lab) -> None:
    lab.secondary.stop()
    lab.wait_health("secondary", "down")
    refused = lab.cli("drill", "shop", "--hold", "2s", "--yes")
    assert refused.returncode == 3
    assert "no other target of shop is UP" in refused.stderr
    assert lab.answer() == [PRIMARY]


def test_drill_through_bind_verifies_on_the_authoritative_server(tmp_path: Path) -> None:
    bind = BindServer(tmp_path / "bind").start()
    try:
        with drill_lab(tmp_path, bind_peer(bind, tmp_path, verify=True)) as lab:
            lab.start()
            lab.wait_answer(PRIMARY)  # at BIND
            lab.wait_health("secondary", "up")
            running = drill(lab, "--hold", "2s", "--yes", "--json")
            lab.wait_answer(SECONDARY)  # the drill target at BIND
            out, err = running.communicate(timeout=60)
            assert running.returncode == 0, out + err
            report = json.loads(out)
            assert report["result"] == "ok"
            for step in report["steps"]:
                assert step["verified"] is True
                assert step["providers"][0]["verify_seconds"] is not None
            assert lab.answer() == [PRIMARY]
    finally:
        bind.stop()


def test_real_incident_during_a_drill_wins(lab: Lab) -> None:
    running = drill(lab, "--hold", "10m", "--yes", "--json")
    lab.wait_answer(SECONDARY)  # the drill target published
    lab.primary.stop()  # the origin dies for real while the drill holds the secondary
    out, err = running.communicate(timeout=60)
    assert running.returncode == 1, out + err
    report = json.loads(out)
    assert report["result"] == "aborted"
    assert "real incident" in report["reason"]
    assert lab.answer() == [SECONDARY]  # no switch back to a dead primary
    assert lab.cli_json("status", "--json")["services"]["shop"]["mode"] == "auto"


def test_last_drill_survives_a_restart(lab: Lab) -> None:
    done = lab.cli("drill", "shop", "--hold", "1s", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    before = lab.metric("failover_last_drill_timestamp_seconds", service="shop")
    assert lab.stop() == 0
    lab.start()
    after = lab.metrics()
    assert metric_value(after, "failover_last_drill_timestamp_seconds", service="shop") == before
    assert metric_value(after, "failover_last_drill_success", service="shop") == 1


def test_scheduled_drill_runs_in_its_window_and_skips_an_unhealthy_service(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    minute = now.hour * 60 + now.minute
    start, end = max(0, minute - 1), min(24 * 60, minute + 15)
    window = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    drills = (
        f'{{enabled: true, days: [{now.strftime("%a").lower()}], window: "{window}",'
        " timezone: UTC, hold: 1s}"
    )
    with drill_lab(tmp_path) as lab:
        # `other`: its primary is UP; the drill must be skipped for its dead secondary
        other = f"""
  other:
    records: [{{provider: lab, zone: example.test, name: other.example.test, type: A, ttl: 30}}]
    targets:
      - name: primary
        location: a
        values: [{PRIMARY}]
        probes: [{{type: http, url: "{lab.primary.url}"}}]
      - name: dead
        location: b
        values: [192.0.2.9]
        probes: [{{type: tcp, address: "127.0.0.1:1"}}]
    drills: {drills}"""
        lab.configure(service_extra=f"\n    drills: {drills}", more_services=other)
        lab.start()
        lab.wait_answer(PRIMARY)

        def drill_results() -> list[tuple[str, str]]:
            return [(e["service"], e["result"]) for e in lab.history() if e["kind"] == "drill"]

        wait_until(lambda: ("shop", "ok") in drill_results(), 60, "the scheduled drill")
        assert ("other", "skipped") in drill_results()
        assert ("other", "started") not in drill_results()
        assert lab.answer() == [PRIMARY]
        assert {e["actor"] for e in lab.history() if e["kind"] == "drill"} == {"scheduler"}
