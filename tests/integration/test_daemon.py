"""The real daemon on loopback: HTTP targets, builtin DNS, CLI, admin API and metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Lab, cli, metric_value

PRIMARY, SECONDARY = "127.0.0.11", "127.0.0.12"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with Lab(tmp_path, addresses=(PRIMARY, SECONDARY)) as lab:
        yield lab.start()


def test_failover_is_published_and_reported_consistently(lab: Lab) -> None:
    lab.wait_answer(PRIMARY)
    lab.primary.stop()
    lab.wait_answer(SECONDARY)

    lab.wait_service(lambda s: s["phase"] == "steady", "the switch to settle")
    status = lab.cli_json("status", "--json")  # what an operator reads, the API's body
    shop = status["services"]["shop"]
    assert shop["active"] == "secondary"
    assert shop["phase"] == "steady" and shop["phase_detail"] is None
    assert shop["mode"] == "auto"
    assert shop["targets"]["primary"]["health"] == "down"
    assert shop["records"][0]["values"] == [SECONDARY]
    assert shop["records"][0]["in_sync"] is True

    history = lab.cli_json("history", "--json", "--limit", "1000")
    switches = [e for e in history if e["kind"] == "switch"]
    assert switches[-1]["from"] == "primary"
    assert switches[-1]["to"] == "secondary"
    assert switches[-1]["trigger"] == "auto"
    assert switches[-1]["result"] == "ok"
    assert switches[-1]["time"].endswith("Z")

    metrics = lab.metrics()
    assert metric_value(metrics, "failover_active_target", service="shop", target="secondary") == 1
    assert metric_value(metrics, "failover_active_target", service="shop", target="primary") == 0
    assert metric_value(metrics, "failover_target_up", service="shop", target="primary") == 0
    assert (
        metric_value(
            metrics, "failover_switches_total", service="shop", to="secondary", trigger="auto"
        )
        == 1
    )
    assert metric_value(metrics, "failover_service_mode", service="shop", mode="auto") == 1
    assert metric_value(metrics, "failover_service_phase", service="shop", phase="steady") == 1
    assert metric_value(metrics, "failover_service_phase", service="shop", phase="starting") == 0
    assert metric_value(metrics, "failover_detection_to_publish_seconds_count", service="shop") == 1
    assert metric_value(metrics, "failover_build_info") == 1


def test_failback_stays_manual_until_promote_then_release(lab: Lab) -> None:
    lab.wait_answer(PRIMARY)
    lab.primary.stop()
    lab.wait_answer(SECONDARY)
    lab.primary.start()
    lab.wait_health("primary", "up")
    time.sleep(1.0)  # several decision cycles with the primary UP
    assert lab.answer() == [SECONDARY]
    assert "manual" in lab.status()["services"]["shop"]["reason"]

    promoted = lab.cli("promote", "shop", "primary", "--reason", "primary recovered", "--yes")
    assert promoted.returncode == 0, promoted.stderr
    assert lab.answer() == [PRIMARY]
    shop = lab.status()["services"]["shop"]
    assert shop["mode"] == "pinned"
    assert shop["pin"]["target"] == "primary"

    # pinned never moves automatically, even when its target dies
    lab.primary.stop()
    lab.wait_health("primary", "down")
    time.sleep(0.5)
    assert lab.answer() == [PRIMARY]

    released = lab.cli("release", "shop")
    assert released.returncode == 0, released.stderr
    assert lab.status()["services"]["shop"]["mode"] == "auto"
    lab.wait_answer(SECONDARY)  # automation acts again
    kinds = [e["kind"] for e in lab.history()]
    assert "pin" in kinds and "release" in kinds


def test_promote_refuses_a_down_target_unless_forced(lab: Lab) -> None:
    lab.wait_answer(PRIMARY)
    lab.secondary.stop()
    lab.wait_health("secondary", "down")
    refused = lab.cli("promote", "shop", "secondary", "--reason", "test", "--yes")
    assert refused.returncode == 3
    assert "target-not-up" in refused.stderr
    assert lab.answer() == [PRIMARY]

    dry = lab.cli("promote", "shop", "secondary", "--reason", "test", "--force", "--dry-run")
    assert dry.returncode == 0
    assert f"{PRIMARY} -> {SECONDARY}" in dry.stdout
    assert lab.answer() == [PRIMARY]

    forced = lab.cli("promote", "shop", "secondary", "--reason", "test", "--force", "--yes")
    assert forced.returncode == 0, forced.stderr
    assert lab.answer() == [SECONDARY]


def test_promote_without_yes_on_a_pipe_changes_nothing(lab: Lab) -> None:
    lab.wait_answer(PRIMARY)
    result = lab.cli("promote", "shop", "secondary", "--reason", "test")
    assert result.returncode == 2
    assert "--yes" in result.stderr
    assert lab.answer() == [PRIMARY]


def test_pause_resume_and_ack_round_trip(lab: Lab) -> None:
    lab.wait_answer(PRIMARY)
    assert lab.cli("pause").returncode == 0
    assert lab.status()["services"]["shop"]["mode"] == "paused"
    lab.primary.stop()
    lab.wait_health("primary", "down")
    time.sleep(0.5)
    assert lab.answer() == [PRIMARY]  # paused: no automatic decision
    assert lab.cli("resume", "shop").returncode == 0
    lab.wait_answer(SECONDARY)
    not_blocked = lab.cli("ack", "shop")
    assert not_blocked.returncode == 3
    assert "not blocked" in not_blocked.stderr


def test_kill9_and_restart_flip_nothing_and_lose_no_journal_entry(lab: Lab) -> None:
    lab.wait_answer(PRIMARY)
    lab.primary.stop()
    lab.wait_answer(SECONDARY)
    lab.primary.start()  # the primary is healthy again, but failback is manual
    lab.wait_health("primary", "up")
    before = lab.history()
    journal = lab.state / "journal.jsonl"
    lines_before = journal.read_text().splitlines()

    lab.kill9()
    lab.start()
    assert lab.answer() == [SECONDARY]
    time.sleep(4.0)  # past the start-up grace: probes settle, decisions run
    assert lab.answer() == [SECONDARY]
    after = lab.history()
    assert after[: len(before)] == before
    assert not [e for e in after[len(before) :] if e["kind"] in ("switch", "publish")]
    lines_after = journal.read_text().splitlines()
    assert lines_after[: len(lines_before)] == lines_before
    for line in lines_after:
        json.loads(line)
    assert lab.metric("failover_active_target", service="shop", target="secondary") == 1


def test_cli_reports_an_unreachable_daemon(tmp_path: Path) -> None:
    for args in (
        ["status"],
        ["release", "shop"],
        ["promote", "shop", "x", "--reason", "r", "--yes"],
    ):
        result = cli(*args, "--socket", str(tmp_path / "nothing.sock"))
        assert result.returncode == 4, result.stderr
        assert "cannot reach the failover daemon" in result.stderr
        assert "Traceback" not in result.stderr


def test_admin_api_rejects_bad_input_with_json_errors(lab: Lab) -> None:
    results = [
        lab.api("POST", "/v1/services/nope/promote", {"target": "x", "reason": "r"}),
        lab.api("POST", "/v1/services/shop/promote", {"target": "nope", "reason": "r"}),
        lab.api("POST", "/v1/services/shop/promote", {"reason": "r"}),
        lab.api("POST", "/v1/services/shop/explode", {}),
        lab.api("GET", "/v1/history?limit=-3"),
        lab.api("GET", "/v1/nowhere"),
    ]
    assert [status for status, _ in results] == [404, 404, 400, 404, 400, 404]
    for _, body in results:
        assert isinstance(body, dict) and set(body) >= {"error", "message"}
    assert "/v1/services/{service}/promote" in lab.get("/v1/openapi.json")["paths"]


def test_flapping_blocks_automation_until_ack(tmp_path: Path) -> None:
    """The flap limit: after `max_auto_switches` automatic switches within `flap_window`, the next
    one is refused and automation stays blocked, whatever the targets do, until `ack`."""
    policy = (
        "{failback: auto, failback_after: 500ms, cooldown: 500ms, max_auto_switches: 2,"
        " flap_window: 1h, startup_grace: 3s}"
    )
    with Lab(tmp_path, addresses=(PRIMARY, SECONDARY), policy=policy) as lab:
        lab.start()
        lab.wait_answer(PRIMARY)
        lab.primary.stop()
        lab.wait_answer(SECONDARY)  # automatic switch 1
        lab.primary.start()
        lab.wait_answer(PRIMARY)  # automatic switch 2: the failback
        lab.primary.stop()  # a third switch would exceed the limit

        shop = lab.wait_service(lambda s: s["blocked"], "the flap block")
        assert "blocked" in shop["alarms"] and "failover ack shop" in shop["reason"]
        assert lab.kinds().count("block") == 1
        time.sleep(2.0)  # many decision rounds past the cooldown, the primary DOWN
        assert lab.answer() == [PRIMARY]
        assert lab.service()["blocked"] is True
        auto = [e["to"] for e in lab.history() if e["kind"] == "switch"]
        assert auto == ["secondary", "primary"]
        status = lab.cli("status")
        assert "blocked" in status.stdout, status.stdout

        acked = lab.cli("ack", "shop")
        assert acked.returncode == 0, acked.stdout + acked.stderr
        lab.wait_answer(SECONDARY)  # automation acts again at once
        assert lab.service()["blocked"] is False
        kinds = lab.kinds()
        assert kinds.index("block") < kinds.index("ack")
        ack = next(e for e in lab.history() if e["kind"] == "ack")
        assert ack["trigger"] == "manual"
        switched = [e["to"] for e in lab.history() if e["kind"] == "switch"]
        assert switched == ["secondary", "primary", "secondary"]
