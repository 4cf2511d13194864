"""What an operator reads must be true: exit codes, last lines, one JSON document per --json,
progress on a terminal and plain lines elsewhere, Ctrl-C during a drill. All through the real
CLI against a running daemon (Lab); the terminal is a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO, Lab, builtin_peer, cli, wait_until

PRIMARY, SECONDARY = "127.0.0.61", "127.0.0.62"
AUTO = "{failback: auto, failback_after: 1s, cooldown: 1s, startup_grace: 3s}"


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A UDP port on loopback where nothing ever answers: a name server that never confirms."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def unverified_lab(workdir: Path, port: int, policy: str = AUTO) -> Lab:
    """A Lab whose builtin provider is verified on a name server that never answers."""
    peer = builtin_peer()
    dns_port = peer.settings.split("127.0.0.1:")[1].split('"')[0]
    peer.settings = (
        f'{{type: builtin, listen: "127.0.0.1:{dns_port}", '
        f'verify: {{nameservers: ["127.0.0.1:{port}"], timeout: 2s}}}}'
    )
    return Lab(workdir, peer, addresses=(PRIMARY, SECONDARY), policy=policy)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with Lab(tmp_path, addresses=(PRIMARY, SECONDARY)) as lab:  # failback manual
        lab.start()
        lab.wait_answer(PRIMARY)
        lab.wait_health("secondary", "up")
        yield lab


def one_document(result: subprocess.CompletedProcess[str]) -> object:
    """stdout holds exactly one JSON document (json.loads refuses trailing text)."""
    return json.loads(result.stdout)


def run_in_pty(*args: str) -> tuple[int, str]:
    """`failover ARGS` with stdin, stdout and stderr on a pseudo-terminal: (exit code, screen)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "failover", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError("no output from the CLI in 60s: " + b"".join(chunks).decode())
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(30), b"".join(chunks).decode(errors="replace")


# --- item 1: exit codes and last lines -----------------------------------------------------------


def test_unverified_promote_and_release_exit_1_naming_the_name_server(
    tmp_path: Path, blackhole: int
) -> None:
    with unverified_lab(tmp_path, blackhole) as lab:
        lab.start()
        lab.wait_answer(PRIMARY)
        lab.wait_health("secondary", "up")
        promote = lab.cli("promote", "shop", "secondary", "--reason", "test", "--yes")
        assert promote.returncode == 1, promote.stdout + promote.stderr
        assert f"127.0.0.1:{blackhole}" in promote.stderr  # which server did not confirm
        assert "NOT verified" in promote.stderr.splitlines()[-1]
        assert "(ok)" not in promote.stdout
        assert lab.answer() == [SECONDARY]  # the provider took it; the pin stands

        as_json = lab.cli("promote", "shop", "primary", "--reason", "t", "--yes", "--json")
        assert as_json.returncode == 1, as_json.stderr
        body = one_document(as_json)
        assert isinstance(body, dict) and body["verified"] is False
        assert "Plan: shop -> primary" in as_json.stderr  # the plan is for the person

        lab.cli("promote", "shop", "secondary", "--reason", "t", "--yes")
        release = lab.cli("release", "shop")  # failback auto: the release switches back
        assert release.returncode == 1, release.stdout + release.stderr
        assert f"127.0.0.1:{blackhole}" in release.stderr
        assert "NOT verified" in release.stderr


def test_unverified_drill_exits_1_naming_the_name_server(tmp_path: Path, blackhole: int) -> None:
    with unverified_lab(tmp_path, blackhole) as lab:
        lab.start()
        lab.wait_answer(PRIMARY)
        lab.wait_health("secondary", "up")
        drill = lab.cli("drill", "shop", "--hold", "1s", "--yes")
        assert drill.returncode == 1, drill.stdout + drill.stderr
        assert f"lab: NOT verified: 127.0.0.1:{blackhole}" in drill.stdout
        assert drill.stderr.splitlines()[-1].startswith("failover: drill failed: ")
        lab.wait_answer(PRIMARY)  # the drill restored the origin


def test_every_json_flag_prints_exactly_one_document(lab: Lab) -> None:
    config = str(lab.config)
    runs = {
        "status": lab.cli("status", "--json"),
        "history": lab.cli("history", "--json"),
        "reload": lab.cli("reload", "--json"),
        "promote dry-run": lab.cli(
            "promote", "shop", "secondary", "--reason", "r", "--dry-run", "--json"
        ),
        "drill dry-run": lab.cli("drill", "shop", "--hold", "1s", "--dry-run", "--json"),
        "probe": cli("probe", "-c", config, "shop", "--json"),
        "audit": cli("audit", "-c", config, "--no-dns", "--json", "--socket", str(lab.socket)),
    }
    for what, result in runs.items():
        assert result.returncode in (0, 1), (what, result.stderr)
        one_document(result)
    lab.secondary.stop()
    lab.wait_health("secondary", "down")
    refused = lab.cli("promote", "shop", "secondary", "--reason", "r", "--yes", "--json")
    assert refused.returncode == 3
    assert one_document(refused)["violations"][0]["rule"] == "target-not-up"  # type: ignore[index]
    unknown = lab.cli("promote", "shop", "nope", "--reason", "r", "--yes", "--json")
    assert unknown.returncode == 2
    assert one_document(unknown)["error"] == "unknown_target"  # type: ignore[index]
    gone = cli("status", "--json", "--socket", str(lab.workdir / "nothing.sock"))
    assert gone.returncode == 4
    assert one_document(gone)["error"] == "unreachable"  # type: ignore[index]


# --- item 2: progress, Ctrl-C, status ------------------------------------------------------------


def test_progress_on_a_terminal_and_plain_lines_on_a_pipe(tmp_path: Path, blackhole: int) -> None:
    with unverified_lab(tmp_path, blackhole) as lab:
        lab.start()
        lab.wait_answer(PRIMARY)
        lab.wait_health("secondary", "up")
        code, screen = run_in_pty(
            "promote", "shop", "secondary", "--reason", "r", "--yes", "--socket", str(lab.socket)
        )
        assert code == 1, screen
        assert "\r\x1b[K" in screen  # rewritten in place
        assert "lab: accepted, verifying on its name servers" in screen
        assert "of up to 2.0s" in screen  # elapsed of the deadline

        piped = lab.cli("promote", "shop", "primary", "--reason", "r", "--yes")
        assert piped.returncode == 1
        assert "\x1b" not in piped.stderr + piped.stdout  # no control codes into a pipe
        assert "lab: accepted, verifying on its name servers" in piped.stderr


def wait_drill_holding(lab: Lab) -> dict[str, object]:
    return lab.wait_service(
        lambda s: (s.get("drill") or {}).get("step") == "holding", "the drill's hold"
    )


def test_ctrl_c_ends_a_drill_and_status_shows_it(lab: Lab) -> None:
    running = lab.cli_background("drill", "shop", "--hold", "10m", "--yes")
    svc = wait_drill_holding(lab)
    assert svc["drill"]["from"] == "primary" and svc["drill"]["to"] == "secondary"  # type: ignore[index]
    text = lab.cli("status").stdout
    assert "DRILL primary -> secondary: holding" in text
    assert "failover drill shop --stop" in text
    assert "failback" not in text  # no advice to fail back by hand during a drill
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 1, out + err
    assert "asking the daemon to end the drill of shop" in err
    assert "ABORTED" in out and "stopped by" in out
    assert lab.answer() == [PRIMARY]
    assert lab.service()["drill"] is None
    drills = [e for e in lab.history("shop") if e["kind"] == "drill"]
    assert drills[-1]["result"] == "aborted"


def test_second_ctrl_c_leaves_the_drill_running_and_says_how_to_stop_it(lab: Lab) -> None:
    running = lab.cli_background("drill", "shop", "--hold", "10m", "--yes")
    wait_drill_holding(lab)
    running.send_signal(signal.SIGINT)
    assert running.stderr is not None
    while "asking the daemon to end the drill" not in (line := running.stderr.readline()):
        assert line, "the CLI ended without acknowledging Ctrl-C"
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 130, out + err
    assert "left the drill of shop running in the daemon" in err
    assert "failover drill shop --stop" in err
    stop = lab.cli("drill", "shop", "--stop")  # the first Ctrl-C may have ended it already
    assert stop.returncode in (0, 3), stop.stderr
    wait_until(lambda: lab.service()["drill"] is None, 30, "the drill to end")
    lab.wait_answer(PRIMARY)


# --- items 2 and 3: the worst case is shown as it is ---------------------------------------------


def test_everything_down_is_isolated_in_status_and_critical_in_audit(lab: Lab) -> None:
    lab.primary.stop()
    lab.secondary.stop()
    wait_until(lambda: lab.status()["isolated"] is True, 20, "the isolation guard")
    status = lab.cli("status")
    assert "ISOLATED" in status.stdout
    audit = cli("audit", "-c", str(lab.config), "--no-dns", "--socket", str(lab.socket), "--json")
    assert audit.returncode == 1, audit.stdout + audit.stderr
    findings = json.loads(audit.stdout)["findings"]
    assert any(f["check"] == "all-down" and f["severity"] == "critical" for f in findings)


def test_nothing_published_and_every_target_down_is_critical(tmp_path: Path) -> None:
    with Lab(tmp_path, addresses=(PRIMARY, SECONDARY)) as lab:
        lab.primary.stop()
        lab.secondary.stop()
        lab.start()
        lab.wait_health("primary", "down")
        lab.wait_health("secondary", "down")
        assert lab.service()["active"] is None
        audit = cli("audit", "-c", str(lab.config), "--no-dns", "--socket", str(lab.socket))
        assert audit.returncode == 1, audit.stdout
        assert "every target of shop is DOWN now" in audit.stdout
        assert "nothing is published" in audit.stdout


def test_alarm_and_block_show_in_text(tmp_path: Path, blackhole: int) -> None:
    with unverified_lab(tmp_path, blackhole) as lab:
        lab.start()
        lab.wait_answer(PRIMARY)
        lab.wait_service(lambda s: "not_verified" in s["alarms"], "the not_verified alarm")
        assert "alarms:   not_verified" in lab.cli("status").stdout
