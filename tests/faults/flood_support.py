"""Attackers for the fault tests and `bench/faults_flood.py`: a scrape flood and a connection
hoarder in their own processes, and the filler services that make /metrics large. The daemon,
its targets and its config are `tests.support`'s (`Lab(..., nofile=…)` for a low
RLIMIT_NOFILE).

Everything binds to 127.0.0.0/8. The attackers run as separate processes (`python -m
tests.faults.flood_support scrape|hold …`) so their CPU and file descriptors are not the test's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time

from tests.support import REPO, DaemonProcess, TargetServer


def fillers(filler: TargetServer, count: int) -> str:
    """`more_services` of `count` services probed every 5 s against `filler`, which make the
    metrics body large (about 6 KB per service)."""
    probe = f'{{type: http, url: "{filler.url}", interval: 5s, timeout: 1s}}'

    def service(n: int) -> str:
        name, host = f"fill{n:03d}", f"{n // 250}.{n % 250 + 1}"
        return f"""
  {name}:
    records:
      - {{provider: lab, zone: example.test, name: {name}.example.test, type: A, ttl: 30}}
    targets:
      - {{name: a, location: cloud-a, values: [10.1.{host}], probes: [{probe}]}}
      - {{name: b, location: cloud-b, values: [10.2.{host}], probes: [{probe}]}}"""

    return "".join(service(n) for n in range(count))


def answer_time(
    daemon: DaemonProcess, path: str = "/healthz", timeout: float = 5.0
) -> float | None:
    """Seconds a 200 took, None when the endpoint did not answer 200 within `timeout`."""
    started = time.monotonic()
    try:
        status, _ = daemon.get(path, timeout)
    except OSError:
        return None
    return time.monotonic() - started if status == 200 else None


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
