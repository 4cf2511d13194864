"""Peers for the fault tests and `bench/faults_flood.py`: targets, a daemon process (optionally
under a low RLIMIT_NOFILE), a scrape flood and a connection hoarder in their own processes.

Self-contained on purpose (tests/support.py is being rewritten). Everything binds to
127.0.0.0/8. The attackers run as separate processes (`python -m tests.faults.flood_support
scrape|hold …`) so their CPU and file descriptors are not the test's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
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

REPO = Path(__file__).resolve().parent.parent.parent
NAME = "shop.example.test"


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for TCP and UDP (the builtin DNS server needs both)."""
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


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the peer may not be up yet
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


class TargetServer:
    """An HTTP target in its own thread and loop; `stop()` makes it refuse connections."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.port = free_port(host)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/healthz"

    async def _start(self) -> None:
        async def ok(_request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/healthz", ok)
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
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def write_config(
    workdir: Path,
    primary: TargetServer,
    secondary: TargetServer,
    *,
    filler: TargetServer | None = None,
    fillers: int = 0,
    dns_port: int,
    metrics_port: int,
    admin_port: int | None = None,
) -> Path:
    """`shop` probed every 200 ms (fall 2, rise 2), plus `fillers` services probed every 5 s
    against `filler`, which make the metrics body large (about 6 KB per service)."""
    admin = f'socket: "{workdir / "admin.sock"}"'
    if admin_port is not None:
        (workdir / "token").write_text("secret-token\n")
        admin += f', listen: "127.0.0.1:{admin_port}", token_file: "{workdir / "token"}"'
    text = f"""
instance: {{name: flood-1, location: lab, state_dir: "{workdir / "state"}"}}
admin: {{{admin}}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
providers:
  lab: {{type: builtin, listen: "127.0.0.1:{dns_port}", verify: false}}
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{failback: manual, cooldown: 2s, startup_grace: 3s}}
services:
  shop:
    records:
      - {{provider: lab, zone: example.test, name: {NAME}, type: A, ttl: 30}}
    targets:
      - name: primary
        location: cloud-a
        values: [{primary.host}]
        probes: [{{type: http, url: "{primary.url}"}}]
      - name: secondary
        location: cloud-b
        values: [{secondary.host}]
        probes: [{{type: http, url: "{secondary.url}"}}]
"""
    for n in range(fillers):
        assert filler is not None
        probe = f'{{type: http, url: "{filler.url}", interval: 5s, timeout: 1s}}'
        text += f"""  fill{n:03d}:
    records:
      - {{provider: lab, zone: example.test, name: fill{n:03d}.example.test, type: A, ttl: 30}}
    targets:
      - {{name: a, location: cloud-a, values: [10.1.{n // 250}.{n % 250 + 1}], probes: [{probe}]}}
      - {{name: b, location: cloud-b, values: [10.2.{n // 250}.{n % 250 + 1}], probes: [{probe}]}}
"""
    path = workdir / "failover.yaml"
    path.write_text(text)
    return path


def dns_a(port: int, name: str = NAME) -> list[str]:
    query = dns.message.make_query(name, dns.rdatatype.A)
    response = dns.query.udp(query, "127.0.0.1", timeout=2, port=port)
    return sorted(rr.to_text() for rrset in response.answer for rr in rrset)


class Daemon:
    """`failover run` in a subprocess; `nofile` sets its RLIMIT_NOFILE (soft and hard)."""

    def __init__(
        self, config: Path, metrics_port: int, nofile: int | None = None, repo: Path = REPO
    ) -> None:
        self.repo = repo  # the checkout whose daemon runs (bench: compare with another commit)
        self.config = config
        self.metrics_port = metrics_port
        self.nofile = nofile
        self.socket = config.parent / "admin.sock"
        self.log = config.parent / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 60.0) -> Daemon:
        nofile = self.nofile

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "failover", "run", "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.repo,
                env={**os.environ, "PYTHONPATH": str(self.repo)},
                preexec_fn=limit,
            )
        wait_until(self.ready, ready_timeout, "the daemon to be ready")
        return self

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log.read_text()}")
        return healthz(self.metrics_port, "/readyz", 1.0) is not None

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """GET /v1/status over the unix socket, as the CLI does."""
        return json.loads(unix_get(self.socket, "/v1/status", timeout))  # type: ignore[no-any-return]

    def journal(self) -> list[dict[str, Any]]:
        path = self.config.parent / "state" / "journal.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.strip()]

    def switches(self, service: str = "shop") -> list[dict[str, Any]]:
        return [e for e in self.journal() if e.get("kind") == "switch" and e["service"] == service]

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def healthz(port: int, path: str = "/healthz", timeout: float = 5.0) -> float | None:
    """Seconds a 200 took, None when the endpoint did not answer 200 within `timeout`."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            resp.read()
            return time.monotonic() - started if resp.status == 200 else None
    except OSError:
        return None


def unix_get(path: Path, route: str, timeout: float) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(f"GET {route} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise OSError(f"status: {head[:40]!r}")
    return body


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] == name and all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


class Attacker:
    """`scrape` or `hold` (see `main`) in a subprocess; stopped by closing its stdin."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.flood_support", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    def line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().decode().strip()

    def stop(self) -> str:
        """Stop; return the last line the attacker printed (its totals)."""
        try:
            out, _ = self.proc.communicate(timeout=30)  # closes stdin: the attacker stops
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        lines = out.decode().strip().splitlines()
        return lines[-1] if lines else ""


# ------------------------------------------------------------------ attacker processes


async def _scrape_loop(port: int, counts: dict[str, int], stop: asyncio.Event) -> None:
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["refused"] += 1
            await asyncio.sleep(0.05)
            continue
        try:
            while not stop.is_set():
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                counts["scrapes"] += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, StopIteration):
            counts["dropped"] += 1
            await asyncio.sleep(0.05)
        finally:
            writer.close()


async def _until_stdin_closes() -> None:
    await asyncio.to_thread(sys.stdin.read)


async def scrape(port: int, clients: int) -> None:
    """`clients` concurrent scrapers, each on its own keep-alive connection, back to back."""
    counts = {"scrapes": 0, "refused": 0, "dropped": 0}
    stop = asyncio.Event()
    loops = [asyncio.create_task(_scrape_loop(port, counts, stop)) for _ in range(clients)]
    print("started", flush=True)
    await _until_stdin_closes()
    stop.set()
    for task in loops:
        task.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    print(json.dumps(counts), flush=True)


def hold(port: int, count: int) -> None:
    """Open up to `count` connections (no byte sent), keep those the server keeps; reopen the
    ones it closes, so the pressure lasts until stdin closes."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (count + 256, max(count + 256, 4096)))
    held: list[socket.socket] = []
    opened = refused = 0

    def fill() -> None:
        nonlocal opened, refused
        while len(held) < count:
            sock = socket.socket()
            sock.settimeout(0.5)
            try:
                sock.connect(("127.0.0.1", port))
            except OSError:
                sock.close()
                refused += 1
                return
            opened += 1
            held.append(sock)

    fill()
    print(f"held {len(held)}", flush=True)
    stopped = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stopped.set()), daemon=True).start()
    while not stopped.wait(0.5):
        for sock in list(held):  # the server reset or closed it: open another
            sock.setblocking(False)
            try:
                if sock.recv(1) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                continue
            except OSError:
                pass
            held.remove(sock)
            sock.close()
        fill()
    for sock in held:
        sock.close()
    print(json.dumps({"opened": opened, "refused": refused}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("scrape", "hold"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    if args.mode == "scrape":
        asyncio.run(scrape(args.port, args.count))
    else:
        hold(args.port, args.count)


if __name__ == "__main__":
    main()
