"""`promote --direct`: the daemon is down, the operator still switches, the daemon honours it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.providers.peers import HCLOUD_TOKEN, ZONE, hetzner_peer
from tests.support import Lab, cli

PRIMARY, SECONDARY = "127.0.0.36", "127.0.0.37"


def test_direct_promote_while_the_daemon_is_down_is_honoured_on_restart(tmp_path: Path) -> None:
    with Lab(tmp_path, addresses=(PRIMARY, SECONDARY)) as lab:

        def direct(*args: str) -> subprocess.CompletedProcess[str]:
            """`promote shop secondary ARGS --direct`: straight through the providers."""
            return cli("promote", "shop", "secondary", *args, "--direct", "-c", str(lab.config))

        lab.start()
        lab.wait_answer(PRIMARY)
        busy = direct("--reason", "r", "--yes")
        assert busy.returncode == 3, busy.stderr  # never races a running daemon
        assert "daemon is running" in busy.stderr
        assert lab.stop() == 0

        unreachable = lab.cli("promote", "shop", "secondary", "--reason", "r", "--yes")
        assert unreachable.returncode == 4
        assert "--direct" in unreachable.stderr

        lab.secondary.stop()
        refused = direct("--reason", "r", "--yes")
        assert refused.returncode == 3
        assert "target-not-up" in refused.stderr
        lab.secondary.start()

        dry = direct("--reason", "r", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"{PRIMARY} -> {SECONDARY}" in dry.stdout

        done = direct("--reason", "aws control plane down", "--yes")
        assert done.returncode == 0, done.stdout + done.stderr

        lab.start()  # the daemon comes back: it serves and keeps the operator's choice
        assert lab.answer() == [SECONDARY]
        shop = lab.cli_json("status", "--json")["services"]["shop"]
        assert shop["mode"] == "pinned"
        assert shop["pin"]["target"] == "secondary"
        assert shop["active"] == "secondary"
        direct_entries = [e for e in lab.history() if e.get("direct")]
        assert [e["kind"] for e in direct_entries] == ["pin", "switch"]
        assert direct_entries[-1]["result"] == "ok"
        assert direct_entries[-1]["trigger"] == "manual"


def test_direct_promote_honours_the_drains_the_daemon_saved(tmp_path: Path) -> None:
    """A target drained for maintenance is not UP for --direct either: the operator on call
    at 3 a.m. must not move the traffic onto the host being patched without saying so."""
    with Lab(tmp_path, addresses=("127.0.0.38", "127.0.0.39")) as lab:
        lab.start()
        lab.wait_answer("127.0.0.38")
        drained = lab.cli("drain", "shop", "secondary", "--reason", "kernel patching")
        assert drained.returncode == 0, drained.stdout + drained.stderr
        assert lab.stop() == 0

        def direct(*args: str) -> subprocess.CompletedProcess[str]:
            return cli("promote", "shop", "secondary", *args, "--direct", "-c", str(lab.config))

        refused = direct("--reason", "r", "--yes")
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "drained (manual): kernel patching" in refused.stderr
        forced = direct("--reason", "r", "--yes", "--force")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        lab.start()
        assert lab.answer() == ["127.0.0.39"]


def test_direct_promote_goes_through_the_hetzner_api(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--direct builds the provider the daemon would (hcloud, token from HCLOUD_TOKEN) and
    awaits Hetzner's actions before it reports the switch done."""
    with (
        hetzner_peer(monkeypatch) as (peer, api),
        Lab(tmp_path, peer, addresses=("127.0.0.38", "127.0.0.39")) as lab,
    ):
        lab.start()
        lab.wait_answer("127.0.0.38")
        assert lab.stop() == 0
        done = cli(
            "promote", "shop", "secondary", "--reason", "hel1 down", "--yes", "--direct",
            "-c", str(lab.config),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert api.run(lambda: api.fake.rrset(ZONE, "shop", "A")) == (30, ["127.0.0.39"])
        assert peer.read(f"shop.{ZONE}") == ["127.0.0.39"]
        assert HCLOUD_TOKEN not in done.stdout + done.stderr
        commands = api.run(lambda: [s.path.rsplit("/", 1)[-1] for s in api.fake.calls("POST")])
        assert commands == ["rrsets", "set_records"]  # published at start, then the switch
