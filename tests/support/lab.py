"""A real daemon with its two HTTP targets and its DNS peer, driven as an operator would."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.config import Peer, builtin_peer, config_text
from tests.support.daemon import REPO, DaemonProcess, cli_json, metric_value
from tests.support.net import TargetServer, free_port, wait_until


class Lab:
    """Two HTTP targets and a real daemon publishing `services` through `peer`, driven as an
    operator would: its CLI, its admin API, its metrics, and the DNS answers at the peer.

    `Lab(workdir, peer, **config)` writes the file (`config_text` options) without starting;
    `start()` returns once /readyz answers; `close()` stops everything it started. `env`,
    `args`, `nofile`, `repo` and `python` go to the `DaemonProcess`."""

    def __init__(
        self,
        workdir: Path,
        peer: Peer | None = None,
        *,
        addresses: tuple[str, str] = ("127.0.0.11", "127.0.0.12"),
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        nofile: int | None = None,
        repo: Path = REPO,
        python: str | None = None,
        **config: Any,
    ) -> None:
        self.workdir = workdir
        self.peer = peer or builtin_peer()
        self.primary = TargetServer(addresses[0]).start()
        self.secondary = TargetServer(addresses[1]).start()
        self.metrics_port = free_port()
        self.socket = workdir / "admin.sock"
        self.state: Path = config.get("state_dir") or workdir / "state"
        self.config = workdir / "failover.yaml"
        self._options = config
        self.configure()
        self.daemon = DaemonProcess(
            self.config,
            self.metrics_port,
            self.socket,
            env={**self.peer.env, **(env or {})},
            extra_args=args,
            nofile=nofile,
            repo=repo,
            state_dir=self.state,
            python=python,
        )

    def render(self, **changes: Any) -> str:
        """The configuration text of this lab, with some `config_text` options changed."""
        options = {**self._options, **changes}
        return config_text(
            self.workdir,
            self.peer,
            self.primary,
            self.secondary,
            metrics_port=self.metrics_port,
            **options,
        )

    def configure(self, **changes: Any) -> None:
        """Change `config_text` options (or `self.peer`) and write the file (before `start`,
        or then reload)."""
        self._options.update(changes)
        self.text = self.render()
        self.config.write_text(self.text)

    # -- the daemon's life ------------------------------------------------------------------

    def start(self, *, wait_ready: bool = True, ready_timeout: float = 20.0) -> Lab:
        self.daemon.start(wait_ready=wait_ready, ready_timeout=ready_timeout)
        return self

    def stop(self) -> int:
        """SIGTERM; the exit code."""
        return self.daemon.stop()

    def kill9(self) -> None:
        self.daemon.kill9()

    def signal(self, signum: int) -> None:
        self.daemon.signal(signum)

    def sighup(self) -> None:
        self.signal(signal.SIGHUP)

    def wait_exit(self, timeout: float = 60.0) -> int:
        return self.daemon.wait_exit(timeout)

    def close(self) -> None:
        try:
            self.daemon.stop()
        finally:
            self.primary.close()
            self.secondary.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what it publishes --------------------------------------------------------------------

    def answer(self, service: str = "shop") -> list[str]:
        """The A values the peer holds for `service` now."""
        return self.peer.read(f"{service}.{self.peer.zone}")

    def wait_answer(self, value: str, service: str = "shop", timeout: float = 20.0) -> None:
        wait_until(lambda: self.answer(service) == [value], timeout, f"{service} -> {value}")

    # -- the operator's tools -----------------------------------------------------------------

    def cli(self, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """`failover ARGS --socket SOCKET`, as a subprocess."""
        return self.daemon.cli(*args, input_text=input_text)

    def cli_json(self, *args: str) -> Any:
        return cli_json(*args, "--socket", str(self.socket))

    def cli_background(self, *args: str) -> subprocess.Popen[str]:
        """`failover ARGS --socket SOCKET` left running (a drill's hold, `status --watch`)."""
        return subprocess.Popen(
            [sys.executable, "-m", "failover", *args, "--socket", str(self.socket)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """One admin API call over the unix socket, in process."""
        return self.daemon.api(method, path, body)

    def get(self, path: str) -> Any:
        """The body of an admin API GET that must answer 200."""
        status, body = self.api("GET", path)
        assert status == 200, body
        return body

    def status(self) -> dict[str, Any]:
        """The body of `GET /v1/status`, which `status --json` prints."""
        return self.daemon.status()

    def service(self, name: str = "shop") -> dict[str, Any]:
        return self.status()["services"][name]  # type: ignore[no-any-return]

    def alarms(self, service: str = "shop") -> set[str]:
        return set(self.service(service)["alarms"])

    def history(self, service: str | None = None) -> list[dict[str, Any]]:
        """The journal as `history --json --limit 1000` gives it."""
        scope = f"&service={service}" if service else ""
        return self.get(f"/v1/history?limit=1000{scope}")  # type: ignore[no-any-return]

    def kinds(self, service: str = "shop") -> list[str]:
        return [e["kind"] for e in self.history() if e["service"] == service]

    def health(self, target: str, service: str = "shop") -> str:
        return str(self.service(service)["targets"][target]["health"])

    def wait_health(
        self, target: str, health: str, service: str = "shop", timeout: float = 20.0
    ) -> None:
        wait_until(lambda: self.health(target, service) == health, timeout, f"{target} {health}")

    def wait_service(
        self, predicate: Callable[[dict[str, Any]], Any], what: str, service: str = "shop"
    ) -> dict[str, Any]:
        """Wait until `predicate(status of service)` holds; that status."""
        return wait_until(  # type: ignore[no-any-return]
            lambda: (svc := self.service(service)) and predicate(svc) and svc, 20, what
        )

    def journal(self) -> list[dict[str, Any]]:
        """The journal file in state_dir, as written (also when the daemon is down)."""
        return self.daemon.journal()

    def metrics(self) -> str:
        return self.daemon.metrics()

    def metric(self, name: str, **labels: str) -> float | None:
        return metric_value(self.metrics(), name, **labels)

    def log(self) -> str:
        return self.daemon.log.read_text() if self.daemon.log.exists() else ""
