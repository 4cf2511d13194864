"""Isolation guard: every target in two locations failing at once switches nothing."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support import Lab, TargetServer, metric_value, wait_until


def fail_at_once(*servers: TargetServer) -> None:
    """Every server fails at the same instant, then stops. Stopped one after the other, each
    stop waiting for aiohttp's cleanup, a loaded machine left the secondary answering for a
    few probe rounds after the primary died: a real switch, not the cut-off this file fakes."""
    for server in servers:
        server.status = 503
    for server in servers:
        server.stop()


def recover(server: TargetServer) -> None:
    server.status = 200
    server.start()


def test_cut_off_vantage_point_switches_nothing_until_it_clears(tmp_path: Path) -> None:
    with Lab(tmp_path, addresses=("127.0.0.31", "127.0.0.32")) as lab:
        primary, secondary = lab.primary.host, lab.secondary.host
        lab.start()
        lab.wait_answer(primary)
        fail_at_once(lab.primary, lab.secondary)  # both clouds unreachable from here at once
        wait_until(lambda: lab.status()["isolated"] is True, 20, "the isolation guard")
        time.sleep(1.0)
        assert lab.answer() == [primary]
        shop = lab.service()
        assert shop["targets"]["primary"]["health"] == "down"
        assert "isolated" in shop["alarms"] or shop["targets"]["secondary"]["health"] == "down"
        metrics = lab.metrics()
        assert metric_value(metrics, "failover_vantage_isolated", instance="test-1") == 1
        assert metric_value(metrics, "failover_switches_total", to="secondary") is None

        recover(lab.secondary)  # the secondary's cloud is reachable again: the guard clears
        lab.wait_answer(secondary)
        assert lab.status()["isolated"] is False
        assert lab.metric("failover_vantage_isolated", instance="test-1") == 0
    kinds = [e["kind"] for e in lab.journal()]
    assert kinds.index("isolated") < kinds.index("isolation_cleared") < kinds.index("switch")


def test_canaries_feed_the_isolation_guard(tmp_path: Path) -> None:
    """Both targets live in one location: only the canary makes 'everything failing' mean
    'we are cut off'."""
    canary = TargetServer("127.0.0.35").start()
    try:
        with Lab(
            tmp_path,
            addresses=("127.0.0.33", "127.0.0.34"),
            extra=f"""canaries:
  - name: internet
    location: internet
    probes: [{{type: http, url: "{canary.url}"}}]
""",
        ) as lab:
            one_location = lab.text.replace("location: cloud-b", "location: cloud-a")
            lab.config.write_text(one_location)
            lab.start()
            lab.wait_answer(lab.primary.host)
            status = lab.cli_json("status", "--json")
            assert status["canaries"] == {"internet": {"location": "internet", "failing": False}}
            fail_at_once(canary, lab.primary, lab.secondary)
            wait_until(lambda: lab.status()["isolated"] is True, 20, "the guard")
            assert lab.answer() == [lab.primary.host]
            recover(canary)
            recover(lab.secondary)
            lab.wait_answer(lab.secondary.host)
    finally:
        canary.close()
