"""The CLI's manners: a clean stop says nothing false, a closed pipe is not an error, an
unreachable daemon is explained without library noise, the config is found without -c,
options go anywhere, shells complete names from the daemon, times carry their offset."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO, Lab, cli
from tests.support.daemon import signal_report

PRIMARY, SECONDARY = "127.0.0.71", "127.0.0.72"
WATCH = (sys.executable, "-m", "failover", "status", "--watch")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with Lab(tmp_path, addresses=(PRIMARY, SECONDARY)) as lab:
        lab.start()
        lab.wait_answer(PRIMARY)
        yield lab


def failover_cmd() -> str:
    return f"{sys.executable} -m failover"


# --- item 5 -------------------------------------------------------------------------------------


def test_a_clean_stop_reports_no_hung_call(lab: Lab) -> None:
    assert lab.cli("status").returncode == 0
    assert lab.stop() == 0
    assert "hung" not in lab.log()
    assert "failover stopped" in lab.log()


def test_watch_into_a_closed_pipe_ends_quietly_without_control_codes(lab: Lab) -> None:
    watch = subprocess.Popen(
        [sys.executable, "-m", "failover", "status", "--watch", "--socket", str(lab.socket)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert watch.stdout is not None and watch.stderr is not None
    first = watch.stdout.readline()
    assert first.startswith(b"--- ")  # a plain header with the time, no screen clearing
    text = first + watch.stdout.readline()
    watch.stdout.close()  # the reader goes away, as `| head` does
    assert watch.wait(30) == 0
    assert b"\x1b" not in text
    with watch.stderr:
        assert watch.stderr.read() == b""


def test_unreachable_daemon_says_where_it_looked_and_how_to_point_elsewhere(
    tmp_path: Path,
) -> None:
    by_socket = cli("status", "--socket", str(tmp_path / "nothing.sock"))
    assert by_socket.returncode == 4
    assert f"unix socket {tmp_path / 'nothing.sock'} (--socket): no such socket" in by_socket.stderr
    assert "$FAILOVER_SOCKET" in by_socket.stderr and "--url" in by_socket.stderr
    by_url = cli("status", "--url", "http://127.0.0.1:9")
    assert by_url.returncode == 4
    assert "http://127.0.0.1:9 (--url): connection refused" in by_url.stderr
    for text in (by_socket.stderr, by_url.stderr):
        assert "ssl" not in text and "Traceback" not in text and "Errno" not in text


def test_watch_on_a_terminal_redraws_in_place(lab: Lab) -> None:
    leader, follower = pty.openpty()
    watch = subprocess.Popen(
        [*WATCH, "--interval", "0.2", "--socket", str(lab.socket)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=REPO,
    )
    os.close(follower)
    screen = b""
    while screen.count(b"\x1b[H\x1b[2J") < 2:
        ready, _, _ = select.select([leader], [], [], 30)
        assert ready, screen
        screen += os.read(leader, 65536)
    watch.send_signal(signal.SIGINT)
    try:
        assert watch.wait(30) == 130
    except subprocess.TimeoutExpired:
        report = signal_report(watch.pid)
        watch.kill()
        watch.wait(10)
        raise AssertionError(f"SIGINT did not end the watch:\n{report}") from None
    os.close(leader)
    assert b"failover status" in screen and b"shop: active primary" in screen


# --- item 6 -------------------------------------------------------------------------------------


def test_failover_config_replaces_dash_c_everywhere(lab: Lab, tmp_path: Path) -> None:
    env = {"FAILOVER_CONFIG": str(lab.config), "FAILOVER_SOCKET": ""}
    check = cli("check-config", env=env)
    assert check.returncode == 0, check.stderr
    assert f"{lab.config}: OK" in check.stdout
    status = cli("status", env=env)  # the socket comes from admin.socket of the file
    assert status.returncode == 0, status.stderr
    assert "shop: active primary" in status.stdout
    probe = cli("probe", "shop", "primary", env=env)
    assert probe.returncode == 0, probe.stderr
    nothing = cli("check-config", env={"FAILOVER_CONFIG": ""})
    if not Path("/etc/failover/failover.yaml").exists():
        assert nothing.returncode == 2
        assert (
            "FAILOVER_CONFIG" in nothing.stderr and "/etc/failover/failover.yaml" in nothing.stderr
        )


def test_global_options_after_the_command(lab: Lab) -> None:
    result = lab.cli("status", "--log-level", "debug", "--log-format", "json", "--debug")
    assert result.returncode == 0, result.stderr
    check = cli("check-config", "-c", str(lab.config), "--log-level", "warning")
    assert check.returncode == 0, check.stderr
    before = cli("--log-format", "json", "check-config", "-c", str(lab.config))
    assert before.returncode == 0, before.stderr


def test_history_times_carry_their_offset(lab: Lab) -> None:
    lab.cli("pause", "shop")
    local = cli("history", "--socket", str(lab.socket), env={"TZ": "IST-5:30"})
    assert local.returncode == 0, local.stderr
    lines = [line for line in local.stdout.splitlines() if " pause " in line]
    assert lines and lines[-1].split()[0].endswith("+05:30"), local.stdout
    utc = cli("history", "--utc", "--socket", str(lab.socket), env={"TZ": "IST-5:30"})
    lines = [line for line in utc.stdout.splitlines() if " pause " in line]
    assert lines and lines[-1].split()[0].endswith("Z"), utc.stdout


def bash_complete(line: str, env: dict[str, str]) -> list[str]:
    """What bash offers for `line` (the word being typed is its last, maybe empty)."""
    words = line.split(" ")
    script = cli("completion", "bash").stdout.replace(
        "failover __complete", failover_cmd() + " __complete"
    )
    program = (
        f"{script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n_failover_complete\nprintf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    result = subprocess.run(
        ["bash", "-c", program],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [w for w in result.stdout.splitlines() if w]


def test_bash_completes_commands_options_and_names_from_the_daemon(lab: Lab) -> None:
    env = {"FAILOVER_SOCKET": str(lab.socket)}
    assert sorted(bash_complete("failover pro", env)) == ["probe", "promote", "providers"]
    assert "--reason" in bash_complete("failover promote shop primary --re", env)
    assert bash_complete("failover promote ", env) == ["shop"]
    assert bash_complete("failover promote shop ", env) == ["primary", "secondary"]
    assert bash_complete("failover drill shop --to s", env) == ["secondary"]
    assert bash_complete("failover audit --format ", env) == ["text", "json", "markdown"]
    assert bash_complete("failover completion ", env) == ["bash", "zsh"]
    # from the config file when the daemon does not answer
    offline = {"FAILOVER_SOCKET": str(lab.workdir / "nothing.sock")}
    assert bash_complete(f"failover release -c {lab.config} ", offline) == ["shop"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_script_loads(lab: Lab) -> None:
    script = cli("completion", "zsh").stdout
    assert script.startswith("#compdef failover")
    result = subprocess.run(
        ["zsh", "-c", f"autoload -Uz compinit && compinit -u -D\n{script}\nwhence -w _failover"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "_failover: function" in result.stdout


# --- item 4 -------------------------------------------------------------------------------------


def test_check_config_reads_like_the_readme() -> None:
    example = REPO / "config" / "failover.example.yaml"
    result = cli("check-config", "-c", str(example), "--without-secrets")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for python in ("Config(", "Secret(", "{}", "120.0", "=", "None", "True", "False"):
        assert python not in text, python
    assert "tsig (name failover-key, secret ***, algorithm hmac-sha256)" in text
    assert "change_timeout 2m" in text
