"""Real peers for integration tests and benchmarks: HTTP targets, a daemon process, the CLI.

Everything binds to 127.0.0.0/8. Targets run in their own thread and event loop so that
synchronous tests can stop and start them while a daemon subprocess probes them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on `host` (the builtin DNS server needs both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


class TargetServer:
    """An HTTP target whose /healthz can be stopped, restarted or made to fail."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.status = 200
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/healthz"

    async def _handler(self, request: web.Request) -> web.Response:
        return web.Response(status=self.status, text='{"status": "ok"}')

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
        self._runner = runner

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> TargetServer:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)

    def close(self) -> None:
        """Stop serving, let closing transports finish, then close the loop (no leaked socket
        may surface later as a ResourceWarning in another test)."""
        self.stop()
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()


def dns_a(port: int, name: str, server: str = "127.0.0.1") -> list[str]:
    """The A values the server answers for `name` (empty on NXDOMAIN/NODATA)."""
    response = dns.query.udp(
        dns.message.make_query(name, dns.rdatatype.A), server, timeout=2, port=port
    )
    return sorted(rr.to_text() for rrset in response.answer for rr in rrset)


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the peer may not be up yet
            last_exc = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


def daemon_config(
    workdir: Path,
    primary: TargetServer,
    secondary: TargetServer,
    *,
    dns_port: int,
    metrics_port: int,
    policy: str = "{failback: manual, cooldown: 2s, startup_grace: 3s}",
    primary_probe_extra: str = "",
) -> Path:
    text = f"""
instance: {{name: test-1, location: lab, state_dir: "{workdir / "state"}"}}
admin: {{socket: "{workdir / "admin.sock"}"}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
providers:
  lab: {{type: builtin, listen: "127.0.0.1:{dns_port}", verify: false}}
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {policy}
services:
  shop:
    records:
      - {{provider: lab, zone: example.test, name: shop.example.test, type: A, ttl: 30}}
    targets:
      - name: primary
        location: cloud-a
        values: [{primary.host}]
        probes: [{{type: http, url: "{primary.url}"{primary_probe_extra}}}]
      - name: secondary
        location: cloud-b
        values: [{secondary.host}]
        probes: [{{type: http, url: "{secondary.url}"}}]
"""
    path = workdir / "failover.yaml"
    path.write_text(text)
    return path


class DaemonProcess:
    """`failover run` in a subprocess, as an operator would start it."""

    def __init__(
        self,
        config: Path,
        metrics_port: int,
        socket_path: Path,
        *,
        env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.config = config
        self.env = env or {}
        self.extra_args = extra_args
        self.metrics_port = metrics_port
        self.socket = socket_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.parent / "daemon.log"

    def start(self) -> DaemonProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "failover", "run", "-c", str(self.config), *self.extra_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, **self.env},
            )
        wait_until(self.ready, 20, "the daemon to be ready")
        return self

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=1):
                return True
        except OSError:
            return False

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


def cli(
    *args: str, input_text: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
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
