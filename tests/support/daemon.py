"""`failover run` in a subprocess, and the operator's reads of it: HTTP endpoints, admin API,
CLI, journal, metrics."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent


def cli(
    *args: str, input_text: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`failover ARGS` as a subprocess, as an operator types it."""
    return subprocess.run(
        [sys.executable, "-m", "failover", *args],
        capture_output=True,
        text=True,
        input=input_text,
        timeout=60,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def cli_json(*args: str) -> Any:
    result = cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """Value of one sample in Prometheus text format, None when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return None


class DaemonProcess:
    """`failover run -c CONFIG` in a subprocess, as an operator would start it; its output goes
    to daemon.log next to the config.

    `nofile` caps its RLIMIT_NOFILE (soft and hard: it cannot raise it); `repo` is the checkout
    whose daemon runs (a benchmark compares with another commit); `state_dir` is where it keeps
    its journal (default: `state` next to the config); `python` the interpreter that runs it
    (default: this one; a plugin test runs another venv's)."""

    def __init__(
        self,
        config: Path,
        metrics_port: int,
        socket_path: Path,
        *,
        env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
        nofile: int | None = None,
        repo: Path = REPO,
        state_dir: Path | None = None,
        python: str | None = None,
    ) -> None:
        self.config = config
        self.python = python or sys.executable
        self.env = env or {}
        self.extra_args = extra_args
        self.nofile = nofile
        self.repo = repo
        self.metrics_port = metrics_port
        self.socket = socket_path
        self.state = state_dir or config.parent / "state"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.parent / "daemon.log"

    # -- its life -----------------------------------------------------------------------------

    def start(self, *, wait_ready: bool = True, ready_timeout: float = 20.0) -> DaemonProcess:
        """Start it; with `wait_ready`, return once /readyz answers 200 (a daemon that exits or
        is not ready in time is an error, and is not left behind)."""
        nofile = self.nofile

        def limit() -> None:
            assert nofile is not None
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        path = os.pathsep.join(filter(None, [str(self.repo), os.environ.get("PYTHONPATH")]))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.python, "-m", "failover", "run", "-c", str(self.config), *self.extra_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.repo,
                env={**os.environ, "PYTHONPATH": path, **self.env},
                preexec_fn=limit if nofile is not None else None,
            )
        deadline = time.monotonic() + ready_timeout
        while wait_ready and not self.ready():  # raises at once when the daemon exits
            if time.monotonic() > deadline:
                self.proc.kill()  # never leave a half-started daemon behind the test
                self.proc.wait(10)
                raise AssertionError(
                    f"the daemon is not ready after {ready_timeout}s: {self.log.read_text()}"
                )
            time.sleep(0.05)
        return self

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(10)

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM; the exit code. Still running after `timeout`: killed, and an error."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"the daemon ignored SIGTERM for {timeout}s") from None

    def _alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log.read_text()}")

    # -- its metrics listener -----------------------------------------------------------------

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET `path` on the metrics listener (/readyz, /healthz, /metrics): (status, body).
        OSError when nothing answers within `timeout`; AssertionError once the daemon exited."""
        self._alive()
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def ready(self) -> bool:
        try:
            return self.readyz(timeout=1.0)[0] == 200
        except OSError:
            return False

    def readyz(self, timeout: float = 5.0) -> tuple[int, str]:
        return self.get("/readyz", timeout)

    def healthz(self, timeout: float = 5.0) -> tuple[int, str]:
        return self.get("/healthz", timeout)

    def metrics(self, timeout: float = 5.0) -> str:
        status, text = self.get("/metrics", timeout)
        if status != 200:
            raise OSError(f"/metrics answered {status}: {text[:200]}")
        return text

    # -- its admin API and CLI ----------------------------------------------------------------

    def api(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 60.0
    ) -> tuple[int, Any]:
        """One admin API call over the unix socket, in process (polling through the CLI would
        start a Python each time)."""
        from failover.client import AdminClient

        client = AdminClient(socket=self.socket, timeout=timeout)
        return asyncio.run(client.call(method, path, body))

    def status(self, timeout: float = 60.0) -> dict[str, Any]:
        """The body of `GET /v1/status`, which `status --json` prints."""
        status, body = self.api("GET", "/v1/status", timeout=timeout)
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    def cli(self, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """`failover ARGS --socket SOCKET`, as a subprocess."""
        return cli(*args, "--socket", str(self.socket), input_text=input_text)

    # -- its files ----------------------------------------------------------------------------

    def journal(self) -> list[dict[str, Any]]:
        """The journal file in state_dir, as written (also when the daemon is down)."""
        path = self.state / "journal.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.strip()]

    def switches(self, service: str | None = "shop") -> list[dict[str, Any]]:
        """The journal's `switch` entries of `service` (None: of every service)."""
        return [
            e for e in self.journal() if e["kind"] == "switch" and service in (None, e["service"])
        ]


def signal_report(pid: int) -> str:
    """A process's signal state and where it waits, for a test whose child ignored a signal:
    a SIGINT that never ends `status --watch` is a blocked or ignored signal (inherited from
    whoever started it) or a process stuck in a write, and these lines tell which."""
    lines = []
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        lines += [
            s
            for s in status
            if s.startswith(("State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"))
        ]
        lines.append("wchan: " + Path(f"/proc/{pid}/wchan").read_text())
        for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
            wchan = (task / "wchan").read_text()
            comm = (task / "comm").read_text().strip()
            blocked = next(
                s for s in (task / "status").read_text().splitlines() if s.startswith("SigBlk")
            )
            lines.append(f"thread {task.name} {comm}: wchan {wchan}, {blocked}")
    except OSError as exc:
        lines.append(f"({exc})")
    mine = Path("/proc/self/status").read_text().splitlines()
    lines += ["the test process: " + s for s in mine if s.startswith(("SigBlk", "SigIgn"))]
    return "\n".join(lines)
