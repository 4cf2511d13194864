"""The daemon under test: its configuration (N services in one zone) and its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.mass_peers import BENCH_ZONE, BenchBind, MotoPeer
from bench.tcp_targets import TcpTarget
from tests.providers.bind import KEY_NAME
from tests.support import DaemonProcess

PRIMARY_HOST, SECONDARY_HOST = "127.0.0.61", "127.0.0.62"


def service_name(i: int) -> str:
    return f"svc{i:04d}"


def values(i: int) -> tuple[str, str]:
    """Distinct primary / secondary values per service (10.1.x.y / 10.2.x.y)."""
    return f"10.1.{i // 250}.{i % 250 + 1}", f"10.2.{i // 250}.{i % 250 + 1}"


def config_text(
    workdir: Path,
    n: int,
    provider_block: str,
    primary: TcpTarget,
    secondary: TcpTarget,
    metrics_port: int,
    fall: int = 2,
    probe_timeout: str = "900ms",
    resync: str = "",
    intervals: tuple[str, str] = ("1s", "5s"),
    probe_process: bool = False,
) -> str:
    """Service i's primary and secondary each probe their own port of `primary` / `secondary`
    (`address(i - 1)`): identical probes would run once for all services."""
    # every primary must have reported UP before the grace ends, or a secondary gets published
    text = intervals[0]
    every = float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s"))
    grace = f"{max(10, round(3 * every))}s"
    lines = [
        f'instance: {{name: bench, location: lab, state_dir: "{workdir / "state"}"'
        + (f", resync_interval: {resync}" if resync else "")
        # explicit either way: `auto` (the default) would pick by the probe rate
        + f", probe_process: {'true' if probe_process else 'false'}"
        + "}",
        f'admin: {{socket: "{workdir / "admin.sock"}"}}',
        f'metrics: {{listen: "127.0.0.1:{metrics_port}"}}',
        "providers:",
        provider_block,
        "defaults:",
        f"  probe: {{interval: {intervals[0]}, timeout: {probe_timeout}}}",
        f"  health: {{fall: {fall}, rise: 1}}",
        "  policy: {failback: manual, cooldown: 1s, max_auto_switches: 1000, flap_window: 1m,"
        f" startup_grace: {grace}}}",
        "services:",
    ]
    for i in range(1, n + 1):
        name = service_name(i)
        p, s = values(i)
        lines += [
            f"  {name}:",
            f"    records: [{{provider: dns, zone: {BENCH_ZONE}, name: {name}.{BENCH_ZONE},"
            " type: A, ttl: 30}]",
            "    targets:",
            f"      - {{name: primary, location: cloud-a, values: [{p}],"
            f' probes: [{{type: tcp, address: "{primary.address(i - 1)}"}}]}}',
            f"      - {{name: secondary, location: cloud-b, values: [{s}], probes: [{{type: tcp,"
            f' address: "{secondary.address(i - 1)}", interval: {intervals[1]}}}]}}',
        ]
    return "\n".join(lines) + "\n"


def bind_block(bind: BenchBind, workdir: Path, zone_transfer: bool = True) -> str:
    """BIND lets 127.0.0.1 transfer the zone: the daemon reads it in one AXFR unless told not
    to (`--no-zone-transfer`: one query per name, as against a server that refuses)."""
    secret = workdir / "tsig.secret"
    secret.write_text(bind.secret + "\n")
    return (
        "  dns:\n"
        "    type: rfc2136\n"
        "    server: 127.0.0.1\n"
        f"    port: {bind.port}\n"
        f'    tsig: {{name: {KEY_NAME}, algorithm: hmac-sha256, secret: "${{file:{secret}}}"}}\n'
        f'    verify: {{nameservers: ["127.0.0.1:{bind.port}"], timeout: 30s}}\n'
        f"    zone_transfer: {'true' if zone_transfer else 'false'}\n"
        "    timeout: 10s"
    )


def route53_block(moto: MotoPeer) -> str:
    return (
        "  dns:\n"
        "    type: route53\n"
        f'    endpoint_url: "{moto.proxy_url}"\n'
        "    verify: false        # moto serves no DNS: nothing to query\n"
        "    timeout: 30s"
    )


class BenchDaemon(DaemonProcess):
    """DaemonProcess with a longer start-up allowance (1,000 services to read back)."""

    def start(  # type: ignore[override]
        self, timeout: float = 120.0, on_spawn: Callable[[int], None] | None = None
    ) -> BenchDaemon:
        """Spawn the daemon and wait until it is ready; `on_spawn(pid)` runs right after the
        spawn (`--profile-start` attaches py-spy there, before the imports and the reads)."""
        with self.log.open("ab") as log:
            env = {**os.environ, **self.env}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "failover", "run", "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        if on_spawn is not None:
            on_spawn(self.proc.pid)
        deadline = time.time() + timeout
        while not self.ready():  # raises at once when the daemon exits
            if time.time() > deadline:
                raise SystemExit(f"daemon not ready after {timeout:g}s; see {self.log}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 180.0) -> int:  # type: ignore[override]
        """SIGTERM; the daemon first lets in-flight changes land, which can take a while."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"  !! daemon {self.proc.pid} still running {timeout:g}s after SIGTERM: killed")
            self.proc.kill()
            return self.proc.wait(10)
