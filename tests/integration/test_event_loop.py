"""The daemon on either event loop: uvloop (the `fast` extra) or asyncio's, forced by
FAILOVER_EVENT_LOOP; each one probes, fails over and says which loop it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import Lab, cli

PRIMARY, SECONDARY = "127.0.0.11", "127.0.0.12"


@pytest.mark.parametrize("wanted", ["uvloop", "asyncio"])
def test_daemon_fails_over_on_either_loop(tmp_path: Path, wanted: str) -> None:
    if wanted == "uvloop":
        pytest.importorskip("uvloop")
    with Lab(tmp_path, addresses=(PRIMARY, SECONDARY), env={"FAILOVER_EVENT_LOOP": wanted}) as lab:
        lab.start()
        lab.wait_answer(PRIMARY)
        lab.primary.stop()
        lab.wait_answer(SECONDARY)
        log = lab.daemon.log.read_text()
        assert f"event loop {wanted}" in log, log[-2000:]
        assert lab.status()["event_loop"] == wanted
        assert lab.status()["probe_process"] is None  # the probes run in that loop


def test_bad_event_loop_setting_is_a_usage_error(tmp_path: Path) -> None:
    result = cli("run", "-c", str(tmp_path / "missing.yaml"), env={"FAILOVER_EVENT_LOOP": "tokio"})
    assert result.returncode == 2
    assert "FAILOVER_EVENT_LOOP=tokio: expected one of auto, uvloop, asyncio" in result.stderr
    assert "Traceback" not in result.stderr
