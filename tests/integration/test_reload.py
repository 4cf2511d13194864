"""Reload of the real daemon: SIGHUP and `failover reload` with good and bad files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Lab, wait_until

PRIMARY, SECONDARY = "127.0.0.31", "127.0.0.32"
SECRET = "reload-secret-never-logged-7f3a"
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+: ")
GAUGE = "failover_config_last_reload_successful"
STAMP = "failover_config_last_reload_success_timestamp_seconds"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    env = {"RELOAD_TEST_SECRET": SECRET}
    with Lab(tmp_path, addresses=(PRIMARY, SECONDARY), env=env) as lab:
        yield lab.start()


def reloads(lab: Lab) -> list[dict[str, Any]]:
    return [e for e in lab.history() if e["kind"] == "reload"]


def test_sighup_applies_a_good_file_and_keeps_state_and_history(lab: Lab) -> None:
    lab.wait_answer(PRIMARY)
    lab.wait_service(
        lambda s: all(t["health"] == "up" for t in s["targets"].values()), "both targets UP"
    )
    assert lab.cli("pause", "shop").returncode == 0
    before = lab.service()

    lab.config.write_text(lab.render(services=("shop", "api")))
    lab.sighup()
    wait_until(lambda: "api" in lab.status()["services"], 20, "the new service")

    shop = lab.service()
    assert shop["mode"] == "paused"  # decision state survives
    for name in ("primary", "secondary"):  # probe history of unchanged targets survives
        assert shop["targets"][name]["health"] == "up"
        assert shop["targets"][name]["since"] == before["targets"][name]["since"]
    lab.wait_answer(PRIMARY, "api")
    entry = reloads(lab)[-1]
    assert entry["result"] == "ok" and entry["actor"] == "SIGHUP"
    daemon_wide = lab.cli_json("history", "*", "--json")
    assert daemon_wide and {e["service"] for e in daemon_wide} == {"*"}
    assert daemon_wide[-1]["kind"] == "reload"
    assert entry["changes"]["services"]["added"] == ["api"]
    assert lab.metric(GAUGE) == 1


def test_a_bad_file_is_rejected_the_old_one_kept_and_the_gauge_set(lab: Lab) -> None:
    lab.wait_answer(PRIMARY)
    stamp = lab.metric(STAMP)
    bad = lab.text.replace(
        "providers:\n",
        "providers:\n"
        "  bind: {type: rfc2136, server: 127.0.0.1, port: nope,"
        ' tsig: {name: k, secret: "${RELOAD_TEST_SECRET}"}}\n',
    ).replace("interval: 200ms", "interval: soon")
    lab.config.write_text(bad)
    lab.sighup()
    wait_until(lambda: lab.metric(GAUGE) == 0, 20, "the reload to be rejected")
    assert lab.service()["active"] == "primary"  # still serving, old config
    entry = reloads(lab)[-1]
    assert entry["result"] == "error"
    assert any("providers.bind.port" in e for e in entry["errors"])

    rejected = lab.cli("reload")
    assert rejected.returncode == 2
    assert "the running configuration stays" in rejected.stderr
    assert "providers.bind.port" in rejected.stderr
    assert "interval" in rejected.stderr
    assert "Traceback" not in rejected.stderr

    lab.config.write_text(lab.text)
    accepted = lab.cli("reload")
    assert accepted.returncode == 0, accepted.stderr
    assert "no change" in accepted.stdout
    assert lab.metric(GAUGE) == 1
    later = lab.metric(STAMP)
    assert stamp is not None and later is not None and later >= stamp
    assert [e["result"] for e in reloads(lab)] == ["error", "error", "ok"]

    log = lab.log()
    assert "reload rejected" in log
    assert SECRET not in log + rejected.stderr + str(lab.history())
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines and all(TEXT_LINE.match(line) for line in lines), log  # one event per line


def test_reload_of_a_key_that_needs_a_restart_names_it(lab: Lab) -> None:
    lab.config.write_text(lab.render(instance="test-2"))
    result = lab.cli("reload")
    assert result.returncode == 2
    assert "instance.name" in result.stderr and "restart" in result.stderr
    assert lab.status()["instance"] == "test-1"
