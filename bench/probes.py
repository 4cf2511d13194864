#!/usr/bin/env python3
"""Probe capacity: failover's scheduler + http probe side by side with blackbox_exporter.

    python bench/probes.py                    # N = 500 ... 10,000: about 3 minutes
    python bench/probes.py -n 5000 -n 10000 --runs 3   # min/median/max over 3 runs
    python bench/probes.py -n 2000 --duration 10 --no-blackbox --loop asyncio

Needs Prometheus's blackbox_exporter for the side-by-side figure (Debian package; without it
the bench says so and prints failover's figures alone):

    apt-get install -y prometheus-blackbox-exporter

Everything runs on loopback, each part in its own process so that CPU times do not mix:

- **target**: one raw-asyncio HTTP/1.1 server listening on 16 addresses, 127.0.1.1 ...
  127.0.1.16 (a port each), answering every request `200 ok` and closing. The N targets are N
  distinct URLs `http://127.0.1.<k>:<port>/t<i>` spread over those addresses (several
  addresses spread the TIME_WAIT 4-tuples of thousands of fresh connections per second).
  Every target is a distinct probe (its own path), so the engine's sharing of identical probes
  cannot hide its cost.
- **failover** (a subprocess per N): the real `ProbeScheduler` (default concurrency and
  jitter) with the real http probe (a fresh TCP connection per run), on the loop the daemon
  would pick (`--loop auto`: uvloop when installed), N jobs at a 1 s interval
  and 1 s timeout. After `--warmup` seconds it measures for `--duration`: probes/s completed,
  probes per CPU-second of its own process (`getrusage`, user + system), scheduling lag
  (planned -> actual start, from the scheduler's `on_lag` hook) p50/p99, failures, skipped slots.
- **blackbox_exporter** (one process on 127.0.0.1, an `http_2xx` module) driven, after each
  failover run, by a load generator (a separate process: aiohttp, keep-alive to the exporter)
  asking `/probe?module=http_2xx&target=<url>` over the same target URLs at the same rate, N
  probes/s, or as fast as it keeps up. Its figure is probes completed per CPU-second of the
  exporter's process (utime + stime from /proc/<pid>/stat over the same window). It too opens a
  fresh connection per probe (keep-alives off); its CPU includes serving /probe and rendering
  the answer, which is how it is used.

Output: a line per run, then a table: N, probes/s, probes per CPU-s, lag p50/p99, failures,
blackbox's probes/s and probes per CPU-s, and the ratio failover / blackbox (per CPU-s, each
run's blackbox measured right after its failover run). With `--runs K` each figure is
`min / median / max` over the K runs.
Per-CPU figures hold up on a busy machine; probes/s and lag do not (the load average is shown).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BLACKBOX = "prometheus-blackbox-exporter"
ADDRESSES = [f"127.0.1.{k}" for k in range(1, 17)]
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    b"Connection: close\r\n\r\nok\n"
)
TICKS = os.sysconf("SC_CLK_TCK")
LOADGEN_CONCURRENCY = 64


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- target: a minimal HTTP server -------------------------------------------------------


class _Responder(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer and self.transport is not None:
            self.transport.write(RESPONSE)
            self.transport.close()
            self.transport = None


async def serve_target() -> None:
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(_Responder, host, 0, backlog=4096, reuse_address=True)
        for host in ADDRESSES
    ]
    bases = ["http://{}:{}/".format(*server.sockets[0].getsockname()[:2]) for server in servers]
    print(json.dumps({"bases": bases}), flush=True)
    # Serve until the parent closes our stdin.
    await loop.run_in_executor(None, sys.stdin.read)


# --- prober: failover's scheduler --------------------------------------------------------


async def run_prober(bases: list[str], n: int, warmup: float, duration: float) -> dict[str, Any]:
    from failover.config.types import HttpProbeConfig
    from failover.model import ProbeResult
    from failover.probes.scheduler import ProbeJob, ProbeScheduler

    jobs = [
        ProbeJob(
            "bench",
            f"t{i}",
            HttpProbeConfig(
                name="http", url=f"{bases[i % len(bases)]}t{i}", interval=1.0, timeout=1.0
            ),
        )
        for i in range(n)
    ]
    measuring = False
    done = 0
    reasons: Counter[str] = Counter()
    lags: list[float] = []
    durations: list[float] = []
    connects: list[float] = []

    def on_result(_job: ProbeJob, result: ProbeResult, _at: float) -> None:
        nonlocal done
        if measuring:
            done += 1
            durations.append(result.duration)
            connects.append(result.timings.get("connect", 0.0))
            if not result.ok:
                reasons[result.reason] += 1

    def on_lag(lag: float) -> None:
        if measuring:
            lags.append(lag)

    scheduler = ProbeScheduler(jobs, on_result, on_lag=on_lag)
    async with scheduler:
        await asyncio.sleep(warmup)
        skipped0 = scheduler.skipped_runs
        measuring = True
        t0, cpu0, sys0 = time.monotonic(), self_cpu(), resource.getrusage(0).ru_stime
        await asyncio.sleep(duration)
        measuring = False
        t1, cpu1, sys1 = time.monotonic(), self_cpu(), resource.getrusage(0).ru_stime
        skipped = scheduler.skipped_runs - skipped0
    wall, cpu = t1 - t0, cpu1 - cpu0
    return {
        "n": n,
        "probes": done,
        "wall": wall,
        "cpu": cpu,
        "rate": done / wall,
        "per_cpu": done / cpu if cpu else float("inf"),
        "lag_p50": percentile(lags, 0.50),
        "lag_p99": percentile(lags, 0.99),
        "failures": sum(reasons.values()),
        "reasons": dict(reasons.most_common(3)),
        "duration_p50": percentile(durations, 0.50),
        "duration_p99": percentile(durations, 0.99),
        "connect_p99": percentile(connects, 0.99),
        "skipped": skipped,
        "distinct": getattr(scheduler, "distinct", n),  # no sharing: one probe per target
        "system_share": (sys1 - sys0) / cpu if cpu else 0.0,
    }


# --- load generator for blackbox_exporter ------------------------------------------------


async def run_loadgen(
    exporter: str, pid: int, bases: list[str], rate: float, warmup: float, duration: float
) -> dict[str, Any]:
    import aiohttp
    from yarl import URL

    urls = [
        URL(
            f"{exporter}/probe?module=http_2xx&target={quote(f'{base}t{i}', safe='')}", encoded=True
        )
        for i, base in ((i, bases[i % len(bases)]) for i in range(max(1, int(rate))))
    ]
    counts: Counter[str] = Counter()
    measuring = False
    start = time.monotonic()
    stop_at = start + warmup + duration + 0.5
    next_slot = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_slot
        while True:
            index = next_slot
            next_slot += 1
            slot, now = start + index / rate, time.monotonic()
            if slot >= stop_at or now >= stop_at:  # behind: as fast as it keeps up, no catch-up
                return
            delay = slot - now
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                async with session.get(urls[index % len(urls)]) as response:
                    body = await response.read()
                ok = response.status == 200 and b"\nprobe_success 1" in body
            except aiohttp.ClientError:
                ok = False
            if measuring:
                counts["ok" if ok else "failed"] += 1

    # Keep-alive to the exporter (its own probes open fresh connections to the target).
    connector = aiohttp.TCPConnector(limit=LOADGEN_CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        workers = [asyncio.ensure_future(worker(session)) for _ in range(LOADGEN_CONCURRENCY)]
        await asyncio.sleep(warmup)
        measuring = True
        t0, cpu0, own0 = time.monotonic(), proc_cpu(pid), self_cpu()
        await asyncio.sleep(duration)
        measuring = False
        t1, cpu1, own1 = time.monotonic(), proc_cpu(pid), self_cpu()
        await asyncio.gather(*workers)
    done = counts["ok"] + counts["failed"]
    wall, cpu = t1 - t0, cpu1 - cpu0
    return {
        "probes": done,
        "wall": wall,
        "cpu": cpu,
        "rate": done / wall,
        "per_cpu": done / cpu if cpu else float("inf"),
        "failures": counts["failed"],
        "cores": cpu / wall,
        "loadgen_cores": (own1 - own0) / wall,
    }


# --- orchestration -----------------------------------------------------------------------


def spawn(role: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--role", role, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def child_result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"a bench process exited with {proc.returncode} (its error is above)")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_blackbox(workdir: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which(BLACKBOX) or shutil.which("blackbox_exporter")
    if binary is None:
        return None
    config = workdir / "blackbox.yml"
    config.write_text(
        "modules:\n"
        "  http_2xx:\n"
        "    prober: http\n"
        "    timeout: 1s\n"
        "    http:\n"
        "      preferred_ip_protocol: ip4\n"
        "      ip_protocol_fallback: false\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("blackbox_exporter did not start listening")


def choose_loop(wanted: str) -> tuple[str, Any]:
    """The daemon's choice (failover.eventloop); on a checkout that predates it (a before/after
    comparison), uvloop when asked for, else asyncio's loop."""
    try:
        from failover import eventloop
    except ImportError:
        if wanted == "uvloop":
            return "uvloop", __import__("uvloop").new_event_loop
        return "asyncio", None
    return eventloop.choose(wanted)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, action="append", help="targets (repeatable)")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--blackbox-rate", type=float, default=1000.0, help=argparse.SUPPRESS)
    parser.add_argument("--no-blackbox", action="store_true")
    parser.add_argument(
        "--loop",
        choices=["auto", "uvloop", "asyncio"],
        default="auto",
        help="failover's event loop (auto: uvloop when installed, as the daemon does)",
    )
    parser.add_argument("--uvloop", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=1, help="runs per N (min/median/max)")
    parser.add_argument("--role", choices=["target", "prober", "loadgen"], help=argparse.SUPPRESS)
    parser.add_argument("--bases", help=argparse.SUPPRESS)
    parser.add_argument("--exporter", help=argparse.SUPPRESS)
    parser.add_argument("--pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role == "target":
        asyncio.run(serve_target())
        return 0
    if args.uvloop:
        args.loop = "uvloop"
    if args.role == "prober":
        loop, factory = choose_loop(args.loop)
        coro = run_prober(json.loads(args.bases), args.n[0], args.warmup, args.duration)
        with asyncio.Runner(loop_factory=factory) as runner:
            out = runner.run(coro) | {"loop": loop}
        print(json.dumps(out), flush=True)
        return 0
    if args.role == "loadgen":
        bases = json.loads(args.bases)
        out = asyncio.run(
            run_loadgen(
                args.exporter, args.pid, bases, args.blackbox_rate, args.warmup, args.duration
            )
        )
        print(json.dumps(out), flush=True)
        return 0

    sizes = args.n or [500, 2000, 5000, 10000]
    common = ["--warmup", str(args.warmup), "--duration", str(args.duration)]
    prober_args = [*common, "--loop", args.loop]
    limit = args.warmup + args.duration + 60
    load = os.getloadavg()[0]
    target = spawn("target")
    assert target.stdout is not None
    bases = json.loads(target.stdout.readline())["bases"]
    bases_arg = json.dumps(bases)
    print(f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}, load average {load:.2f}")
    if load > 0.5:
        print("  (other work is running: throughput and lag suffer more than per-CPU figures)")
    print(f"target: one process, N distinct URLs over {len(bases)} addresses ({bases[0]}t<i>, ...)")
    print(
        f"interval 1 s, timeout 1 s, loop {args.loop}; {args.duration:g} s measured after"
        f" {args.warmup:g} s, {args.runs} run(s) per N\n"
    )
    rows: list[list[dict[str, Any]]] = []
    workdir = Path(tempfile.mkdtemp(prefix="failover-bench-probes-"))
    exporter: tuple[subprocess.Popen[bytes], str] | None = None
    try:
        if not args.no_blackbox:
            exporter = start_blackbox(workdir)
            if exporter is None:
                print(f"{BLACKBOX} is not installed: apt-get install -y {BLACKBOX}")
                print("  (failover's figures only, no side-by-side)\n")
        for n in sizes:
            runs = []
            for _ in range(args.runs):
                span = args.warmup + args.duration
                row = run_failover(target.pid, n, bases_arg, prober_args, limit, span)
                if exporter is not None:
                    row["blackbox"] = run_blackbox(exporter, bases_arg, float(n), common, limit)
                runs.append(row)
            rows.append(runs)
    finally:
        if exporter is not None:
            exporter[0].send_signal(signal.SIGTERM)
            exporter[0].wait(10)
        assert target.stdin is not None
        target.stdin.close()
        target.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print_table(rows, with_blackbox=exporter is not None)
    return 0


def spread(values: list[float], fmt: str) -> str:
    """`v` for one run, `min / median / max` for several."""
    if len(values) == 1:
        return fmt.format(values[0])
    ordered = sorted(values)
    picks = (ordered[0], ordered[len(ordered) // 2], ordered[-1])
    return " / ".join(fmt.format(v) for v in picks)


def print_table(rows: list[list[dict[str, Any]]], *, with_blackbox: bool) -> None:
    header = "| N | loop | probes/s | probes per CPU-s | lag p50 (ms) | lag p99 (ms) | failures |"
    if with_blackbox:
        header += " blackbox probes/s | blackbox probes per CPU-s | failover / blackbox |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for runs in rows:
        line = (
            f"| {runs[0]['n']} | {runs[0]['loop']} | {spread([r['rate'] for r in runs], '{:.0f}')}"
            f" | {spread([r['per_cpu'] for r in runs], '{:.0f}')}"
            f" | {spread([r['lag_p50'] * 1000 for r in runs], '{:.1f}')}"
            f" | {spread([r['lag_p99'] * 1000 for r in runs], '{:.1f}')}"
            f" | {spread([r['failures'] for r in runs], '{:.0f}')} |"
        )
        if with_blackbox and all("blackbox" in r for r in runs):
            bbs = [r["blackbox"] for r in runs]
            ratios = [r["per_cpu"] / r["blackbox"]["per_cpu"] for r in runs]
            line += (
                f" {spread([b['rate'] for b in bbs], '{:.0f}')}"
                f" | {spread([b['per_cpu'] for b in bbs], '{:.0f}')}"
                f" | {spread(ratios, '{:.2f}x')} |"
            )
        print(line)


def run_failover(
    target_pid: int, n: int, bases_arg: str, common: list[str], limit: float, span: float
) -> dict[str, Any]:
    cpu0 = proc_cpu(target_pid)
    row = child_result(spawn("prober", "-n", str(n), "--bases", bases_arg, *common), limit)
    target_cores = (proc_cpu(target_pid) - cpu0) / span
    if row["distinct"] != n:
        raise SystemExit(f"{row['distinct']} distinct probes for {n} targets: the bench is void")
    print(
        f"failover  N={n} ({row['loop']}): {row['rate']:.0f} probes/s,"
        f" {row['per_cpu']:.0f} per CPU-s"
        f" ({row['cpu'] / row['wall']:.2f} cores, {row['system_share']:.0%} in the kernel),"
        f" lag p50 {fmt_ms(row['lag_p50'])}"
        f" p99 {fmt_ms(row['lag_p99'])}, probe p50 {fmt_ms(row['duration_p50'])}"
        f" p99 {fmt_ms(row['duration_p99'])}, {row['failures']} failed,"
        f" {row['skipped']} slots skipped; target {target_cores:.2f} cores"
        + (f"; {row['reasons']}" if row["reasons"] else ""),
        flush=True,
    )
    return row


def run_blackbox(
    exporter: tuple[subprocess.Popen[bytes], str],
    bases_arg: str,
    rate: float,
    common: list[str],
    limit: float,
) -> dict[str, Any]:
    proc, url = exporter
    args = ["--exporter", url, "--pid", str(proc.pid), "--bases", bases_arg]
    result = child_result(spawn("loadgen", *args, "--blackbox-rate", str(rate), *common), limit)
    print(
        f"blackbox  N={rate:.0f}: {result['rate']:.0f} probes/s, {result['per_cpu']:.0f} per CPU-s"
        f" ({result['cores']:.2f} cores), {result['failures']} failed;"
        f" load generator {result['loadgen_cores']:.2f} cores",
        flush=True,
    )
    return result


if __name__ == "__main__":
    sys.exit(main())
