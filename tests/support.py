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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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


class Target(Protocol):
    """What a configuration needs of a target: its address (the DNS value) and probe URL."""

    @property
    def host(self) -> str: ...

    @property
    def url(self) -> str: ...


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


PROBE = "{interval: 200ms, timeout: 150ms}"
HEALTH = "{fall: 2, rise: 2}"
POLICY = "{failback: manual, cooldown: 2s, startup_grace: 3s}"


@dataclass
class Peer:
    """A DNS provider the daemon writes to, and how a test reads what it published there."""

    name: str  # the provider's key under `providers:`
    settings: str  # its settings, a YAML flow mapping: "{type: builtin, listen: ...}"
    read: Callable[[str], list[str]]  # FQDN -> the A values the peer holds now, sorted
    zone: str = "example.test"
    secrets: tuple[str, ...] = ()  # must never show up in the daemon's log
    env: dict[str, str] = field(default_factory=dict)  # for `${...}` in `settings`
    # peer-specific evidence that the changes went through its own API, checked after a failover
    check: Callable[[], None] = lambda: None


def builtin_peer(*, verify: bool = False) -> Peer:
    """The daemon's own DNS server on a free port; `verify=True` checks the change on itself."""
    port = free_port()
    check = "" if verify else ", verify: false"
    return Peer(
        "lab",
        f'{{type: builtin, listen: "127.0.0.1:{port}"{check}}}',
        lambda name: dns_a(port, name),
    )


def config_text(
    workdir: Path,
    peer: Peer,
    primary: Target,
    secondary: Target,
    *,
    metrics_port: int,
    services: tuple[str, ...] = ("shop",),
    instance: str = "test-1",
    instance_extra: str = "",
    policy: str = POLICY,
    primary_probe_extra: str = "",
    service_extra: str = "",
    more_services: str = "",
    extra: str = "",
) -> str:
    """The one configuration shape of the daemon tests: each service has one A record at `peer`
    and two targets, `primary` then `secondary`, probed over HTTP. `service_extra` is appended
    to every service (keys indented 4 spaces), `more_services` after them (services of another
    shape, indented 2 spaces), `extra` to the file (top-level keys)."""

    def service(name: str) -> str:
        return f"""
  {name}:
    records:
      - {{provider: {peer.name}, zone: {peer.zone}, name: {name}.{peer.zone}, type: A, ttl: 30}}
    targets:
      - name: primary
        location: cloud-a
        values: [{primary.host}]
        probes: [{{type: http, url: "{primary.url}"{primary_probe_extra}}}]
      - name: secondary
        location: cloud-b
        values: [{secondary.host}]
        probes: [{{type: http, url: "{secondary.url}"}}]{service_extra}"""

    return f"""
instance: {{name: {instance}, location: lab, state_dir: "{workdir / "state"}"{instance_extra}}}
admin: {{socket: "{workdir / "admin.sock"}"}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
providers:
  {peer.name}: {peer.settings}
defaults:
  probe: {PROBE}
  health: {HEALTH}
  policy: {policy}
services:{"".join(service(name) for name in services)}{more_services}
{extra}"""


def daemon_config(
    workdir: Path,
    primary: TargetServer,
    secondary: TargetServer,
    *,
    dns_port: int,
    metrics_port: int,
    policy: str = POLICY,
    primary_probe_extra: str = "",
) -> Path:
    """`config_text` with the builtin server on `dns_port`, written to workdir/failover.yaml."""
    peer = Peer(
        "lab",
        f'{{type: builtin, listen: "127.0.0.1:{dns_port}", verify: false}}',
        lambda name: dns_a(dns_port, name),
    )
    path = workdir / "failover.yaml"
    path.write_text(
        config_text(
            workdir,
            peer,
            primary,
            secondary,
            metrics_port=metrics_port,
            policy=policy,
            primary_probe_extra=primary_probe_extra,
        )
    )
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
        deadline = time.monotonic() + 20
        while not self.ready():  # raises at once when the daemon exits (a bad config…)
            if time.monotonic() > deadline:
                self.proc.kill()  # never leave a half-started daemon behind the test
                self.proc.wait(10)
                raise AssertionError(f"the daemon is not ready after 20s: {self.log.read_text()}")
            time.sleep(0.05)
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


class Lab:
    """Two HTTP targets and a real daemon publishing `services` through `peer`, driven as an
    operator would: its CLI, its admin API, its metrics, and the DNS answers at the peer.

    `Lab(workdir, peer, **config)` writes the file (`config_text` options) without starting;
    `start()` returns once /readyz answers; `close()` stops everything it started."""

    def __init__(
        self,
        workdir: Path,
        peer: Peer | None = None,
        *,
        addresses: tuple[str, str] = ("127.0.0.11", "127.0.0.12"),
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        **config: Any,
    ) -> None:
        self.workdir = workdir
        self.peer = peer or builtin_peer()
        self.primary = TargetServer(addresses[0]).start()
        self.secondary = TargetServer(addresses[1]).start()
        self.metrics_port = free_port()
        self.socket = workdir / "admin.sock"
        self.state = workdir / "state"
        self.config = workdir / "failover.yaml"
        self._options = config
        self.text = self.render()
        self.config.write_text(self.text)
        self.daemon = DaemonProcess(
            self.config,
            self.metrics_port,
            self.socket,
            env={**self.peer.env, **(env or {})},
            extra_args=args,
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
        """Change `config_text` options and write the file (before `start`, or then reload)."""
        self._options.update(changes)
        self.text = self.render()
        self.config.write_text(self.text)

    # -- the daemon's life ------------------------------------------------------------------

    def start(self) -> Lab:
        self.daemon.start()
        return self

    def stop(self) -> int:
        """SIGTERM; the exit code."""
        return self.daemon.stop()

    def kill9(self) -> None:
        self.daemon.kill9()

    def signal(self, signum: int) -> None:
        assert self.daemon.proc is not None
        self.daemon.proc.send_signal(signum)

    def sighup(self) -> None:
        self.signal(signal.SIGHUP)

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.daemon.proc is not None
        return self.daemon.proc.wait(timeout)

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
        return cli(*args, "--socket", str(self.socket), input_text=input_text)

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
        """One admin API call over the unix socket, in process (polling through the CLI would
        start a Python each time)."""
        from failover.client import AdminClient

        return asyncio.run(AdminClient(socket=self.socket).call(method, path, body))

    def get(self, path: str) -> Any:
        status, body = self.api("GET", path)
        assert status == 200, body
        return body

    def status(self) -> dict[str, Any]:
        """The body of `GET /v1/status`, which `status --json` prints."""
        return self.get("/v1/status")  # type: ignore[no-any-return]

    def service(self, name: str = "shop") -> dict[str, Any]:
        return self.status()["services"][name]  # type: ignore[no-any-return]

    def history(self, service: str | None = None) -> list[dict[str, Any]]:
        """The journal as `history --json --limit 1000` gives it."""
        scope = f"&service={service}" if service else ""
        return self.get(f"/v1/history?limit=1000{scope}")  # type: ignore[no-any-return]

    def kinds(self, service: str = "shop") -> list[str]:
        return [e["kind"] for e in self.history() if e["service"] == service]

    def health(self, target: str, service: str = "shop") -> str:
        return str(self.service(service)["targets"][target]["health"])

    def wait_health(self, target: str, health: str, service: str = "shop") -> None:
        wait_until(lambda: self.health(target, service) == health, 20, f"{target} {health}")

    def wait_service(
        self, predicate: Callable[[dict[str, Any]], Any], what: str, service: str = "shop"
    ) -> dict[str, Any]:
        """Wait until `predicate(status of service)` holds; that status."""
        return wait_until(  # type: ignore[no-any-return]
            lambda: (svc := self.service(service)) and predicate(svc) and svc, 20, what
        )

    def journal(self) -> list[dict[str, Any]]:
        """The journal file in state_dir, as written (also when the daemon is down)."""
        text = (self.state / "journal.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]

    def metrics(self) -> str:
        return self.daemon.metrics()

    def metric(self, name: str, **labels: str) -> float | None:
        return metric_value(self.metrics(), name, **labels)

    def log(self) -> str:
        return self.daemon.log.read_text()
