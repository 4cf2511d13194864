"""How much of the event loop do probes take from decisions; would a thread give it back?

At 10,000 services (`bench/mass_failover.py --services 10000`, primaries every 5 s) the probes
were about half of the daemon's one event loop during a mass failover, and the loop was saturated
from the first decision until the last verification. This bench measures the lever: a fixed
amount of "engine" work (Python CPU in 5 ms slices with a turn of the loop in between, as the
engine's cycles run) is timed while failover's real ProbeScheduler runs N `tcp` probes (a
distinct port each, accepting and closing, `bench/tcp_targets.py`) every INTERVAL either

- `loop`:   in the same event loop (the daemon today), or
- `thread`: in a thread of its own with its own event loop, every result handed to the main
            loop in batches (`call_soon_threadsafe`), where a callback counts it, or
- `process`: in a child process (this script with `--child`), every result a line on a pipe
            that the main loop reads and parses.

and, for reference, `alone` (no probes). Printed per mode over the runs: the engine work's wall
time (min / median / max), the probes completed per second and the scheduling lag p99.

    python bench/probe_offload.py [--targets 10000] [--interval 5] [--work 3.0] [--runs 3]

Loopback only (127.0.0.63). An experiment for a design decision, not a feature: the daemon runs
its probes in its event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tcp_targets import TcpTarget, raise_nofile
from failover.config.types import HostPort, TcpProbeConfig
from failover.eventloop import choose, favour_the_loop
from failover.model import ProbeResult
from failover.probes.scheduler import ProbeJob, ProbeScheduler

HOST = "127.0.0.63"
LOOP_NAME, LOOP_FACTORY = choose()
SLICE = 0.005  # seconds of engine work between two turns of the loop (the engine's Slicer)


def engine_slice() -> None:
    body = {"mode": "auto", "values": [f"10.0.0.{i}" for i in range(20)], "n": 1}
    until = time.perf_counter() + SLICE
    while time.perf_counter() < until:
        json.dumps(body, sort_keys=True)


async def engine(work: float) -> float:
    """`work` seconds of CPU in slices; returns the wall time it took."""
    began = time.monotonic()
    for _ in range(round(work / SLICE)):
        engine_slice()
        await asyncio.sleep(0)
    return time.monotonic() - began


def jobs(target: TcpTarget, interval: float) -> list[ProbeJob]:
    return [
        ProbeJob("bench", f"t{i}", TcpProbeConfig("tcp", HostPort(HOST, port), interval, 0.9))
        for i, port in enumerate(target.ports)
    ]


class Counter:
    """Counts results on the main loop (where the engine would take them)."""

    def __init__(self) -> None:
        self.results = 0

    def __call__(self, _job: ProbeJob, _result: ProbeResult, _at: float) -> None:
        self.results += 1


async def run_in_loop(probe_jobs: list[ProbeJob], work: float, warmup: float) -> dict[str, Any]:
    counter = Counter()
    scheduler = ProbeScheduler(probe_jobs, counter)
    await scheduler.start()
    try:
        await asyncio.sleep(warmup)
        scheduler.lag_samples.clear()
        before = counter.results
        wall = await engine(work)
        done = counter.results - before
    finally:
        await scheduler.aclose()
    return {"wall": wall, "rate": done / wall, "lags": list(scheduler.lag_samples)}


class ProbeThread:
    """A ProbeScheduler on its own loop in its own thread; results reach `on_result` on the
    loop that called `start`, in batches."""

    def __init__(self, probe_jobs: list[ProbeJob], on_result: Counter) -> None:
        self._jobs = probe_jobs
        self._on_result = on_result
        self._inbox: deque[tuple[ProbeJob, ProbeResult, float]] = deque()
        self._flagged = False
        self._main: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.scheduler: ProbeScheduler | None = None
        self._thread = threading.Thread(target=self._run, name="probes", daemon=True)
        self._started = threading.Event()

    def start(self) -> None:
        self._main = asyncio.get_running_loop()
        self._thread.start()
        self._started.wait(30)

    def _run(self) -> None:
        loop = new_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._serve())
        loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self.scheduler = ProbeScheduler(self._jobs, self._hand_over)
        await self.scheduler.start()
        self._started.set()
        await self._stop.wait()
        await self.scheduler.aclose()

    def _hand_over(self, job: ProbeJob, result: ProbeResult, at: float) -> None:
        self._inbox.append((job, result, at))
        if not self._flagged:
            self._flagged = True
            assert self._main is not None
            self._main.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._flagged = False
        while self._inbox:
            self._on_result(*self._inbox.popleft())

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


async def run_in_thread(probe_jobs: list[ProbeJob], work: float, warmup: float) -> dict[str, Any]:
    counter = Counter()
    probes = ProbeThread(probe_jobs, counter)
    probes.start()
    try:
        await asyncio.sleep(warmup)
        assert probes.scheduler is not None
        probes.scheduler.lag_samples.clear()
        before = counter.results
        wall = await engine(work)
        done = counter.results - before
        lags = list(probes.scheduler.lag_samples)
    finally:
        await asyncio.to_thread(probes.stop)
    return {"wall": wall, "rate": done / wall, "lags": lags}


def child(ports_file: str, interval: float) -> int:
    """`--child`: probe the ports listed in `ports_file`; one line per result on stdout
    (flushed every 20 ms), a summary line with the lag p99 once stdin closes."""
    ports = [int(p) for p in Path(ports_file).read_text().split()]
    target = TcpTarget(HOST)
    target.ports = ports
    out = sys.stdout.buffer
    lines: list[bytes] = []

    def on_result(job: ProbeJob, result: ProbeResult, at: float) -> None:
        lines.append(f"{job.target} {int(result.ok)} {result.duration:.6f} {at:.6f}\n".encode())

    async def serve() -> None:
        scheduler = ProbeScheduler(jobs(target, interval), on_result)
        await scheduler.start()
        loop = asyncio.get_running_loop()
        eof = loop.run_in_executor(None, sys.stdin.read)
        while not eof.done():
            await asyncio.sleep(0.02)
            if lines:
                out.write(b"".join(lines))
                out.flush()
                lines.clear()
        summary = {"lag_p99": p99(list(scheduler.lag_samples))}
        await scheduler.aclose()
        out.write(f"SUMMARY {json.dumps(summary)}\n".encode())
        out.flush()

    favour_the_loop()
    loop = new_loop()
    try:
        loop.run_until_complete(serve())
    finally:
        loop.close()
    return 0


async def run_in_process(
    ports_file: str, interval: float, work: float, warmup: float
) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--child",
        ports_file,
        "--interval",
        str(interval),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 20,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdout = proc.stdout
    counted = [0]
    summary: dict[str, Any] = {}

    async def read() -> None:
        while line := await stdout.readline():
            if line.startswith(b"SUMMARY "):
                summary.update(json.loads(line[8:]))
                return
            name, ok, duration, at = line.split()
            ProbeResult(ok == b"1", "", float(duration))  # what the engine would build
            del name, at
            counted[0] += 1

    reader = asyncio.create_task(read())
    await asyncio.sleep(warmup)
    before = counted[0]
    wall = await engine(work)
    done = counted[0] - before
    proc.stdin.close()
    await reader
    await proc.wait()
    return {"wall": wall, "rate": done / wall, "lags": [summary.get("lag_p99", 0.0)]}


async def run_alone(_jobs: list[ProbeJob], work: float, _warmup: float) -> dict[str, Any]:
    return {"wall": await engine(work), "rate": 0.0, "lags": []}


def new_loop() -> asyncio.AbstractEventLoop:
    return LOOP_FACTORY() if LOOP_FACTORY is not None else asyncio.new_event_loop()


def p99(values: list[float]) -> float:
    return sorted(values)[int(0.99 * (len(values) - 1))] if values else 0.0


def spread(values: list[float], fmt: Callable[[float], str]) -> str:
    return " / ".join(fmt(v) for v in (min(values), statistics.median(values), max(values)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between probes")
    parser.add_argument("--work", type=float, default=3.0, help="seconds of engine CPU")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", metavar="PORTS_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.interval)
    raise_nofile(args.targets + 1024, f"{args.targets} probes in flight at most")
    favour_the_loop()  # as the daemon does: threads hand the GIL back every 0.5 ms
    target = TcpTarget(HOST, args.targets).start()
    probe_jobs = jobs(target, args.interval)
    warmup = args.interval + 2.0  # the start-up round and the first scheduled one are behind
    ports = tempfile.NamedTemporaryFile("w", suffix=".ports", delete=False)  # noqa: SIM115
    ports.write(" ".join(map(str, target.ports)))
    ports.close()

    async def run_process(_jobs: list[ProbeJob], work: float, warm: float) -> dict[str, Any]:
        return await run_in_process(ports.name, args.interval, work, warm)

    modes = {
        "alone": run_alone,
        "loop": run_in_loop,
        "thread": run_in_thread,
        "process": run_process,
    }
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    print(
        f"probe offload: {args.targets} tcp probes every {args.interval:g}s "
        f"({args.targets / args.interval:.0f}/s) against {args.work:g}s of engine CPU; "
        f"{args.runs} run(s) per mode, event loop {LOOP_NAME}",
        flush=True,
    )
    try:
        for run in range(1, args.runs + 1):
            for mode, fn in modes.items():
                loop = new_loop()
                try:
                    result = loop.run_until_complete(fn(probe_jobs, args.work, warmup))
                finally:
                    loop.close()
                results[mode].append(result)
                lag = p99(result["lags"]) * 1000
                print(
                    f"  run {run} {mode:7s}: engine work took {result['wall']:.2f}s, "
                    f"{result['rate']:.0f} probe results/s, lag p99 {lag:.0f}ms",
                    flush=True,
                )
    finally:
        target.stop()
        Path(ports.name).unlink()
    alone = statistics.median(r["wall"] for r in results["alone"])
    print("\nmode    engine wall (min / median / max)   vs alone   results/s   lag p99 (ms)")
    for mode, rows in results.items():
        walls = [r["wall"] for r in rows]
        print(
            f"{mode:7s} {spread(walls, lambda v: f'{v:.2f}s'):32s} "
            f"{statistics.median(walls) / alone:7.2f}x   "
            f"{statistics.median(r['rate'] for r in rows):9.0f}   "
            f"{spread([p99(r['lags']) * 1000 for r in rows], lambda v: f'{v:.0f}')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
