"""The real daemon on loopback: HTTP targets, builtin DNS, CLI, admin API and metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    DaemonProcess,
    TargetServer,
    cli,
    cli_json,
    daemon_config,
    dns_a,
    free_port,
    metric_value,
    wait_until,
)

NAME = "shop.example.test"
PRIMARY, SECONDARY = "127.0.0.11", "127.0.0.12"


class Lab:
    def __init__(self, tmp_path: Path) -> None:
        self.primary = TargetServer(PRIMARY).start()
        self.secondary = TargetServer(SECONDARY).start()
        self.dns_port = free_port()
        self.metrics_port = free_port()
        self.config = daemon_config(
            tmp_path,
            self.primary,
            self.secondary,
            dns_port=self.dns_port,
            metrics_port=self.metrics_port,
        )
        self.socket = tmp_path / "admin.sock"
        self.daemon = DaemonProcess(self.config, self.metrics_port, self.socket)

    def answer(self) -> list[str]:
        return dns_a(self.dns_port, NAME)

    def wait_answer(self, value: str, what: str) -> None:
        wait_until(lambda: self.answer() == [value], 20, what)

    def cli(self, *args: str) -> object:
        return cli(*args, "--socket", str(self.socket))

    def status(self) -> dict:  # type: ignore[type-arg]
        return cli_json("status", "--socket", str(self.socket))  # type: ignore[no-any-return]

    def history(self) -> list[dict]:  # type: ignore[type-arg]
        return cli_json("history", "--socket", str(self.socket), "--limit", "1000")  # type: ignore[no-any-return]

    def health(self, target: str) -> str:
        return str(self.status()["services"]["shop"]["targets"][target]["health"])

    def close(self) -> None:
        self.daemon.stop()
        self.primary.close()
        self.secondary.close()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    lab.daemon.start()
    try:
        yield lab
    finally:
        lab.close()


def test_failover_is_published_and_reported_consistently(lab: Lab) -> None:
    lab.wait_answer(PRIMARY, "the primary to be published")
    lab.primary.stop()
    lab.wait_answer(SECONDARY, "the failover to the secondary")

    status = lab.status()
    shop = status["services"]["shop"]
    assert shop["active"] == "secondary"
    assert shop["mode"] == "auto"
    assert shop["targets"]["primary"]["health"] == "down"
    assert shop["records"][0]["values"] == [SECONDARY]
    assert shop["records"][0]["in_sync"] is True

    switches = [e for e in lab.history() if e["kind"] == "switch"]
    assert switches[-1]["from"] == "primary"
    assert switches[-1]["to"] == "secondary"
    assert switches[-1]["trigger"] == "auto"
    assert switches[-1]["result"] == "ok"
    assert switches[-1]["time"].endswith("Z")

    metrics = lab.daemon.metrics()
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
    assert metric_value(metrics, "failover_detection_to_publish_seconds_count", service="shop") == 1
    assert metric_value(metrics, "failover_build_info") == 1


def test_failback_stays_manual_until_promote_then_release(lab: Lab) -> None:
    lab.wait_answer(PRIMARY, "the primary to be published")
    lab.primary.stop()
    lab.wait_answer(SECONDARY, "the failover")
    lab.primary.start()
    wait_until(lambda: lab.health("primary") == "up", 20, "the primary to be UP again")
    time.sleep(1.0)  # several decision cycles with the primary UP
    assert lab.answer() == [SECONDARY]
    assert "manual" in lab.status()["services"]["shop"]["reason"]

    promoted = lab.cli("promote", "shop", "primary", "--reason", "primary recovered", "--yes")
    assert promoted.returncode == 0, promoted.stderr  # type: ignore[attr-defined]
    assert lab.answer() == [PRIMARY]
    shop = lab.status()["services"]["shop"]
    assert shop["mode"] == "pinned"
    assert shop["pin"]["target"] == "primary"

    # pinned never moves automatically, even when its target dies
    lab.primary.stop()
    wait_until(lambda: lab.health("primary") == "down", 20, "the primary to be DOWN")
    time.sleep(0.5)
    assert lab.answer() == [PRIMARY]

    released = lab.cli("release", "shop")
    assert released.returncode == 0, released.stderr  # type: ignore[attr-defined]
    assert lab.status()["services"]["shop"]["mode"] == "auto"
    lab.wait_answer(SECONDARY, "automation to act again after release")
    kinds = [e["kind"] for e in lab.history()]
    assert "pin" in kinds and "release" in kinds


def test_promote_refuses_a_down_target_unless_forced(lab: Lab) -> None:
    lab.wait_answer(PRIMARY, "the primary to be published")
    lab.secondary.stop()
    wait_until(lambda: lab.health("secondary") == "down", 20, "the secondary to be DOWN")
    refused = lab.cli("promote", "shop", "secondary", "--reason", "test", "--yes")
    assert refused.returncode == 3  # type: ignore[attr-defined]
    assert "target-not-up" in refused.stderr  # type: ignore[attr-defined]
    assert lab.answer() == [PRIMARY]

    dry = lab.cli("promote", "shop", "secondary", "--reason", "test", "--force", "--dry-run")
    assert dry.returncode == 0  # type: ignore[attr-defined]
    assert f"{PRIMARY} -> {SECONDARY}" in dry.stdout  # type: ignore[attr-defined]
    assert lab.answer() == [PRIMARY]

    forced = lab.cli("promote", "shop", "secondary", "--reason", "test", "--force", "--yes")
    assert forced.returncode == 0, forced.stderr  # type: ignore[attr-defined]
    assert lab.answer() == [SECONDARY]


def test_promote_without_yes_on_a_pipe_changes_nothing(lab: Lab) -> None:
    lab.wait_answer(PRIMARY, "the primary to be published")
    result = lab.cli("promote", "shop", "secondary", "--reason", "test")
    assert result.returncode == 2  # type: ignore[attr-defined]
    assert "--yes" in result.stderr  # type: ignore[attr-defined]
    assert lab.answer() == [PRIMARY]


def test_pause_resume_and_ack_round_trip(lab: Lab) -> None:
    lab.wait_answer(PRIMARY, "the primary to be published")
    assert lab.cli("pause").returncode == 0  # type: ignore[attr-defined]
    assert lab.status()["services"]["shop"]["mode"] == "paused"
    lab.primary.stop()
    wait_until(lambda: lab.health("primary") == "down", 20, "the primary to be DOWN")
    time.sleep(0.5)
    assert lab.answer() == [PRIMARY]  # paused: no automatic decision
    assert lab.cli("resume", "shop").returncode == 0  # type: ignore[attr-defined]
    lab.wait_answer(SECONDARY, "the failover after resume")
    not_blocked = lab.cli("ack", "shop")
    assert not_blocked.returncode == 3  # type: ignore[attr-defined]
    assert "not blocked" in not_blocked.stderr  # type: ignore[attr-defined]


def test_kill9_and_restart_flip_nothing_and_lose_no_journal_entry(lab: Lab) -> None:
    lab.wait_answer(PRIMARY, "the primary to be published")
    lab.primary.stop()
    lab.wait_answer(SECONDARY, "the failover")
    lab.primary.start()  # the primary is healthy again, but failback is manual
    wait_until(lambda: lab.health("primary") == "up", 20, "the primary to be UP")
    before = lab.history()
    journal = lab.config.parent / "state" / "journal.jsonl"
    lines_before = journal.read_text().splitlines()

    lab.daemon.kill9()
    lab.daemon.start()
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
    assert (
        metric_value(
            lab.daemon.metrics(), "failover_active_target", service="shop", target="secondary"
        )
        == 1
    )


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
    import asyncio

    from failover.client import AdminClient

    async def calls() -> list[tuple[int, object]]:
        client = AdminClient(socket=lab.socket)
        return [
            await client.call("POST", "/v1/services/nope/promote", {"target": "x", "reason": "r"}),
            await client.call(
                "POST", "/v1/services/shop/promote", {"target": "nope", "reason": "r"}
            ),
            await client.call("POST", "/v1/services/shop/promote", {"reason": "r"}),
            await client.call("POST", "/v1/services/shop/explode", {}),
            await client.call("GET", "/v1/history?limit=-3"),
            await client.call("GET", "/v1/nowhere"),
        ]

    results = asyncio.run(calls())
    assert [status for status, _ in results] == [404, 404, 400, 404, 400, 404]
    for _, body in results:
        assert isinstance(body, dict) and set(body) >= {"error", "message"}
    openapi = asyncio.run(AdminClient(socket=lab.socket).call("GET", "/v1/openapi.json"))
    assert "/v1/services/{service}/promote" in openapi[1]["paths"]
