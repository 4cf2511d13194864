"""Footprint (issue 13): RSS and CPU of a running daemon at 1,000 and 10,000 services.

The real daemon (`python -m failover run -c FILE`) watches N services x T targets (default 3)
in one zone served by the builtin provider, every target probed with `tcp` every 5 s against
its own local listening socket (one accept thread closes each connection at once). After
start-up and a settle period, the daemon's RSS (VmRSS) is read and its CPU (user + system, in
cores) sampled over a window; then a second daemon with T + 1 targets per service gives the RSS
per added target. Goals: RSS <= 100 MB for 1,000 x 3; <= 15 KB per added target; CPU <= 0.2 cores at
600 probes/s (1,000 x 3 every 5 s).

    python bench/footprint.py [--services 1000 10000] [--targets 3] [--interval 5s]
        [--settle 15] [--sample 20] [--no-added] [--repo PATH] [--keep]

Every target gets its own address:port, so every probe is distinct (the daemon runs identical
probes once; the bench checks the configuration before starting). 10,000 x 4 targets need
40,000 listening sockets, LISTENERS_PER_HOST per loopback address from 127.0.0.81 on, each
address served by a process of its own: RLIMIT_NOFILE is raised when that needs it (root), or
the bench says how many descriptors it needs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tcp_targets import FD_MARGIN, TcpTarget, raise_nofile, require_distinct
from tests.support import DaemonProcess, free_port
from tests.support.daemon import REPO

ZONE = "foot.test"
GOAL_RSS_MB, GOAL_PER_TARGET_KB, GOAL_CPU = 100.0, 15.0, 0.2
LISTENERS_PER_HOST = 10000


class Listeners:
    """`count` listening sockets, LISTENERS_PER_HOST per address from 127.0.0.81 on, one
    process each (each address has ~22,000 ports below the ephemeral range)."""

    def __init__(self, count: int) -> None:
        self.targets: list[TcpTarget] = []
        for first in range(0, count, LISTENERS_PER_HOST):
            host = f"127.0.0.{81 + first // LISTENERS_PER_HOST}"
            size = min(LISTENERS_PER_HOST, count - first)
            self.targets.append(TcpTarget(host, size).start())
        self.addresses = [t.address(i) for t in self.targets for i in range(t.count)]

    def close(self) -> None:
        for target in self.targets:
            target.stop()


def config_text(
    workdir: Path,
    n: int,
    targets: int,
    interval: str,
    addresses: list[str],
    ports: tuple[int, int],
    probe_process: bool = False,
) -> str:
    dns_port, metrics_port = ports
    child = f", probe_process: {'true' if probe_process else 'false'}"  # not `auto`
    lines = [
        f'instance: {{name: foot, location: lab, state_dir: "{workdir / "state"}"{child}}}',
        f'admin: {{socket: "{workdir / "admin.sock"}"}}',
        f'metrics: {{listen: "127.0.0.1:{metrics_port}"}}',
        "providers:",
        "  dns:",
        "    type: builtin",
        f'    listen: "127.0.0.1:{dns_port}"',
        "defaults:",
        f"  probe: {{interval: {interval}, timeout: 2s}}",
        "  health: {fall: 2, rise: 1}",
        "services:",
    ]
    k = 0
    for i in range(1, n + 1):
        lines += [
            f"  svc{i:05d}:",
            f"    records: [{{provider: dns, zone: {ZONE}, name: svc{i:05d}.{ZONE}, type: A}}]",
            "    targets:",
        ]
        for t in range(targets):
            address = addresses[k]  # one listener per target: every probe distinct
            k += 1
            lines.append(
                f"      - {{name: t{t}, values: [10.{t}.{i // 250}.{i % 250 + 1}],"
                f' probes: [{{type: tcp, address: "{address}"}}]}}'
            )
    return "\n".join(lines) + "\n"


def family(pid: int) -> list[int]:
    """The daemon and its live children (the probe process, `instance.probe_process`)."""
    return [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]


def rss_kb(pid: int) -> int:
    """Resident memory of the daemon and its children."""
    total = 0
    for member in family(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def cpu_seconds(pid: int) -> float:
    """CPU seconds of the daemon and its live children."""
    total = 0.0
    for member in family(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure(
    root: Path, n: int, targets: int, listeners: Listeners, args: argparse.Namespace
) -> tuple[float, float, float]:
    """(RSS MB, CPU cores, seconds until ready) of one daemon in steady state."""
    workdir = Path(tempfile.mkdtemp(prefix=f"n{n}-t{targets}-", dir=root))
    ports = free_port(), free_port()
    config = workdir / "failover.yaml"
    config.write_text(
        config_text(
            workdir, n, targets, args.interval, listeners.addresses, ports, args.probe_process
        )
    )
    print(f"  {n} x {targets}: {require_distinct(config, n * targets)}", flush=True)
    daemon = DaemonProcess(config, ports[1], workdir / "admin.sock", repo=args.repo)
    spawned = time.time()
    daemon.start(ready_timeout=args.ready_timeout)
    ready = time.time() - spawned
    try:
        assert daemon.proc is not None
        pid = daemon.proc.pid
        time.sleep(args.settle)
        cpu0, t0 = cpu_seconds(pid), time.time()
        samples = []
        while time.time() - t0 < args.sample:
            samples.append(rss_kb(pid))
            time.sleep(1.0)
        cores = (cpu_seconds(pid) - cpu0) / (time.time() - t0)
        return max(samples) / 1024, cores, ready
    finally:
        daemon.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--targets", type=int, default=3)
    parser.add_argument("--interval", default="5s")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds after ready")
    parser.add_argument("--sample", type=float, default=20.0, help="seconds of sampling")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--no-added", action="store_true", help="skip the T + 1 targets run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--probe-process",
        action="store_true",
        help="instance.probe_process: true (RSS and CPU then include the child)",
    )
    parser.add_argument(
        "--repo", type=Path, default=REPO, help="the checkout whose daemon runs (a before/after)"
    )
    args = parser.parse_args()
    interval = float(args.interval.rstrip("s"))
    root = Path(tempfile.mkdtemp(prefix="failover-footprint-"))
    count = max(args.services) * (args.targets + (0 if args.no_added else 1))
    per_process = min(count, LISTENERS_PER_HOST)
    raise_nofile(per_process + FD_MARGIN, f"{per_process} listening sockets per listener")
    listeners = Listeners(count)
    print(
        f"footprint: tcp probes every {args.interval} against {len(listeners.addresses)} local "
        f"listeners, builtin provider, {os.cpu_count()} CPUs, load "
        f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
    )
    try:
        for n in args.services:
            rate = n * args.targets / interval
            rss, cores, ready = measure(root, n, args.targets, listeners, args)
            line = (
                f"{n} services x {args.targets} targets ({rate:.0f} probes/s): RSS {rss:.1f} MB, "
                f"CPU {cores:.3f} cores ({rate / cores if cores else 0:.0f} probes per CPU-s), "
                f"ready {ready:.1f}s after spawn"
            )
            if n == 1000 and args.targets == 3:
                line += (
                    f" [goals: RSS <= {GOAL_RSS_MB:g} MB "
                    f"{'met' if rss <= GOAL_RSS_MB else 'MISSED'}, CPU <= {GOAL_CPU} cores "
                    f"{'met' if cores <= GOAL_CPU else 'MISSED'}]"
                )
            print(line, flush=True)
            if not args.no_added:
                more, _, _ = measure(root, n, args.targets + 1, listeners, args)
                per_target = (more - rss) * 1024 / n
                print(
                    f"  {n} services x {args.targets + 1} targets: RSS {more:.1f} MB -> "
                    f"{per_target:.1f} KB per added target (goal <= {GOAL_PER_TARGET_KB:g} KB: "
                    f"{'met' if per_target <= GOAL_PER_TARGET_KB else 'MISSED'})",
                    flush=True,
                )
    finally:
        listeners.close()
        if args.keep:
            print(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
