"""Peers of `bench/mass_failover.py` (its TCP targets are in `bench/tcp_targets.py`): BIND
serving one big zone with its statistics channel, moto's server in its own process behind a
request-counting proxy, and a reader of the daemon's journal. Everything binds to 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
from aiohttp import ClientSession, ClientTimeout, web

from tests.providers.bind import KEY_NAME, LIMITED_KEY, ZONE, BindServer, find_tool
from tests.support import free_port, wait_until

BENCH_ZONE = "bench.test"


class BenchBind(BindServer):
    """tests.providers.bind.BindServer plus `bench.test` (empty but for its apex), a JSON
    statistics channel (exact UPDATE/QUERY opcode counters) and zone transfers to loopback."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.stats_port = free_port()

    def _write_config(self) -> Path:
        d = self.dir
        self.secret = self._keygen(KEY_NAME)
        self.limited_secret = self._keygen(LIMITED_KEY)
        for zone in (ZONE, BENCH_ZONE):  # example.test: BindServer.start waits for its SOA
            (d / f"{zone}.zone").write_text(
                "$TTL 60\n@ SOA ns1 hostmaster 1 3600 600 604800 60\n@ NS ns1\nns1 A 127.0.0.1\n"
            )
        zones = "".join(
            f'zone "{zone}" {{ type primary; file "{d}/{zone}.zone";\n'
            f"  allow-transfer {{ 127.0.0.1; }};\n"
            f"  update-policy {{ grant {KEY_NAME} zonesub ANY; }}; }};\n"
            for zone in (ZONE, BENCH_ZONE)
        )
        conf = d / "named.conf"
        conf.write_text(
            f'include "{d}/{KEY_NAME}.key";\n'
            f'include "{d}/{LIMITED_KEY}.key";\n'
            f'options {{ directory "{d}"; pid-file "{d}/named.pid";\n'
            f'  session-keyfile "{d}/session.key";\n'
            f"  listen-on port {self.port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n"
            "  recursion no; dnssec-validation no; notify no; };\n"
            f"statistics-channels {{ inet 127.0.0.1 port {self.stats_port}"
            " allow { 127.0.0.1; }; };\n"
            "controls { };\n" + zones
        )
        checkconf = find_tool("named-checkconf")
        assert checkconf
        subprocess.run([checkconf, str(conf)], check=True, capture_output=True)
        return conf

    def stats(self) -> dict[str, Any]:
        """The server's counters: opcodes (QUERY, UPDATE), nsstats (UpdateDone...), sockstats."""
        url = f"http://127.0.0.1:{self.stats_port}/json/v1/server"
        with urllib.request.urlopen(url, timeout=5) as resp:
            data: dict[str, Any] = json.load(resp)
        return data

    def soa_serial(self, zone: str = BENCH_ZONE) -> int:
        response = dns.query.udp(
            dns.message.make_query(zone, "SOA"), "127.0.0.1", timeout=2, port=self.port
        )
        return int(response.answer[0][0].serial)

    def answers(self, names: list[str]) -> dict[str, tuple[list[str], bool]]:
        """Every name asked one by one (UDP, RD clear): its A values and the AA flag."""
        out: dict[str, tuple[list[str], bool]] = {}
        for name in names:
            query = dns.message.make_query(name, "A")
            query.flags &= ~dns.flags.RD
            resp = dns.query.udp(query, "127.0.0.1", timeout=2, port=self.port)
            values = sorted(rr.to_text() for rrset in resp.answer for rr in rrset)
            aa = bool(resp.flags & dns.flags.AA) and resp.rcode() == dns.rcode.NOERROR
            out[name] = (values, aa)
        return out


@dataclass
class ProxyCounts:
    """What the daemon asked moto for, per Route 53 operation, and how big each change was."""

    operations: Counter[str] = field(default_factory=Counter)
    change_sizes: list[int] = field(default_factory=list)  # <Change> elements per request
    last_change_done: float = 0.0  # wall clock when moto answered the last change request
    # (sent, answered, operation, <Change> elements) per request, wall clock: `--trace`
    timeline: list[tuple[float, float, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot_timeline(self) -> list[tuple[float, float, str, int]]:
        with self.lock:
            return list(self.timeline)

    def snapshot(self) -> tuple[Counter[str], list[int], float]:
        with self.lock:
            return Counter(self.operations), list(self.change_sizes), self.last_change_done


_ROUTES = (
    ("POST", re.compile(r"/2013-04-01/hostedzone/[^/]+/rrset/?$"), "ChangeResourceRecordSets"),
    ("GET", re.compile(r"/2013-04-01/hostedzone/[^/]+/rrset/?$"), "ListResourceRecordSets"),
    ("GET", re.compile(r"/2013-04-01/hostedzonesbyname/?$"), "ListHostedZonesByName"),
    ("GET", re.compile(r"/2013-04-01/hostedzone/[^/]+/?$"), "GetHostedZone"),
    ("GET", re.compile(r"/2013-04-01/change/[^/]+/?$"), "GetChange"),
)
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


def operation(method: str, path: str) -> str:
    for verb, pattern, name in _ROUTES:
        if method == verb and pattern.search(path):
            return name
    return f"{method} {path}"


class MotoPeer:
    """`python -m moto.server` in its own process (so its CPU is not the benchmark's), and a
    reverse proxy in a thread of this process that counts every HTTP request the daemon
    makes. The benchmark's own calls go to moto directly and are not counted."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.proxy_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proxy_url = f"http://127.0.0.1:{self.proxy_port}"
        self.log = workdir / "moto.log"
        self.counts = ProxyCounts()
        self.proc: subprocess.Popen[bytes] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.client: Any = None
        self.zone_id = ""

    def start(self) -> MotoPeer:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._up, 30, "moto's server")
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_proxy(), self._loop).result(10)
        import boto3  # the benchmark's own, uncounted client (straight to moto)

        self.client = boto3.client("route53", endpoint_url=self.url, region_name="us-east-1")
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"moto exited: {self.log.read_text()[-2000:]}")
        with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=1):
            return True

    def reset(self) -> None:
        """Empty account, one public hosted zone `bench.test`, counters at zero."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()
        zone = self.client.create_hosted_zone(
            Name=f"{BENCH_ZONE}.", CallerReference=str(time.time())
        )
        self.zone_id = zone["HostedZone"]["Id"]
        self.counts = ProxyCounts()

    def records(self) -> dict[str, list[str]]:
        """name -> A values of every simple A record set in the zone (full listing)."""
        out: dict[str, list[str]] = {}
        pages = self.client.get_paginator("list_resource_record_sets")
        for page in pages.paginate(HostedZoneId=self.zone_id):
            for rrset in page["ResourceRecordSets"]:
                if rrset["Type"] == "A":
                    name = rrset["Name"].rstrip(".")
                    out[name] = sorted(r["Value"] for r in rrset.get("ResourceRecords", []))
        return out

    async def _start_proxy(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=120), auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.proxy_port).start()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        sent = time.time()
        body = await request.read()
        op = operation(request.method, request.path)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self._session.request(
            request.method, self.url + request.path_qs, headers=headers, data=body
        ) as upstream:
            payload = await upstream.read()
            status = upstream.status
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
        with self.counts.lock:
            self.counts.operations[op] += 1
            size = body.count(b"<Change>")
            self.counts.timeline.append((sent, time.time(), op, size))
            if op == "ChangeResourceRecordSets":
                self.counts.change_sizes.append(size)
                if status == 200:
                    self.counts.last_change_done = time.time()
        return web.Response(status=status, body=payload, headers=out_headers)

    def stop(self) -> None:
        async def close() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class JournalTail:
    """New entries of the daemon's journal.jsonl since the last call (whole lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._rest = b""
        self.published: dict[str, str] = {}  # service -> target of its last accepted change

    def poll(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        entries = []
        for line in lines:
            if line.strip():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                entries.append(entry)
                if entry.get("kind") in ("publish", "switch") and entry.get("result") == "ok":
                    self.published[entry.get("service", "")] = entry.get("to", "")
        return entries


def clean_aws_env() -> dict[str, str]:
    """Dummy credentials, no profile, no instance metadata, no proxy: the daemon inherits it."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_ROUTE_53",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ):
        os.environ.pop(name, None)
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    os.environ.update(env)
    return env


class Profiler:
    """py-spy (`pip install py-spy`) sampling the daemon, all threads, until `stop()`."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        tool = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.out = out
        args = ["record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
        self.proc = subprocess.Popen(
            [tool, *args, "--threads", "--nonblocking", "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def summary(self, top: int = 30) -> list[str]:
        """Inclusive share of samples per function, per thread kind (main loop vs workers)."""
        inclusive: Counter[str] = Counter()
        threads: Counter[str] = Counter()
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue  # a line cut short
            frames = stack.split(";")
            n = int(count)
            total += n
            thread = frames[0].split(" ")[0] if frames else "?"
            kind = "main" if "MainThread" in frames[0] else "worker threads"
            threads[kind] += n
            seen: set[str] = set()
            for frame in frames[1:]:
                name = re.sub(r":\d+\)$", ")", frame)
                if name not in seen:
                    seen.add(name)
                    inclusive[f"[{kind}] {name}"] += n
            del thread
        if not total:
            return ["(no samples)"]
        lines = [
            f"{total} samples; " + ", ".join(f"{k} {v / total:.0%}" for k, v in threads.items())
        ]
        skip = ("runpy", "__main__", "<module>", "cli.py", "asyncio/runners", "base_events")
        skip += ("events.py",)
        skip += ("threading.py", "concurrent/futures/thread.py")
        for name, n in inclusive.most_common():
            if any(s in name for s in skip):
                continue
            lines.append(f"{n / total:6.1%}  {name}")
            if len(lines) > top:
                break
        return lines
