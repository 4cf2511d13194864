"""`failover demo`: a real failover and failback on loopback, narrated, in under a minute.

Nothing is simulated inside the daemon: two real HTTP targets on 127.0.0.10 and 127.0.0.20,
the real daemon with its builtin authoritative DNS server, real probes, and DNS answers read
with dnspython exactly as `dig` would. Only the outage is staged: we stop the primary's server.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import dns.rdatatype
from aiohttp import web

from failover.client import AdminClient
from failover.config.loader import parse_config
from failover.daemon import Daemon
from failover.render import history_text

PRIMARY_IP, FALLBACK_IP = "127.0.0.10", "127.0.0.20"
NAME = "www.demo.test"
STEP_TIMEOUT = 15.0

CONFIG = """
instance: {{name: demo, location: lab, state_dir: "{state}"}}
admin: {{socket: "{socket}"}}
metrics: {{listen: "127.0.0.1:0"}}
providers:
  lab-dns: {{type: builtin, listen: "127.0.0.1:0"}}  # verifies on itself
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{failback: manual, cooldown: 5s, startup_grace: 5s}}
services:
  www:
    records:
      - {{provider: lab-dns, zone: demo.test, name: {name}, type: A, ttl: 5}}
    targets:
      - name: main
        location: cloud-a
        values: [{primary}]
        probes: [{{type: http, url: "http://{primary}:{pport}/healthz"}}]
      - name: backup
        location: cloud-b
        values: [{fallback}]
        probes: [{{type: http, url: "http://{fallback}:{fport}/healthz"}}]
"""


class DemoError(Exception):
    pass


PAUSE = 1.5  # seconds between steps, so a reader can follow


def say(text: str = "") -> None:
    print(text, flush=True)


async def beat() -> None:
    say()
    await asyncio.sleep(PAUSE)


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text='{"status": "ok"}', content_type="application/json")


async def start_target(host: str, port: int = 0) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise DemoError(
            f"cannot listen on {host}:{port} ({exc}); the demo needs 127.0.0.0/8 on lo"
        ) from exc
    sockets = getattr(site._server, "sockets", None) or []
    return runner, sockets[0].getsockname()[1]


async def dns_answer(port: int) -> list[str]:
    query = dns.message.make_query(NAME, dns.rdatatype.A)
    response = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=1.0)
    return sorted(rr.to_text() for rrset in response.answer for rr in rrset)


async def wait_for_answer(port: int, wanted: str, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < STEP_TIMEOUT:
        try:
            if await dns_answer(port) == [wanted]:
                return time.monotonic() - start
        except (TimeoutError, OSError, dns.exception.DNSException):
            pass
        await asyncio.sleep(0.05)
    raise DemoError(f"timed out after {STEP_TIMEOUT:g}s waiting for {what}")


async def wait_for(predicate: Any, what: str) -> None:
    start = time.monotonic()
    while time.monotonic() - start < STEP_TIMEOUT:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise DemoError(f"timed out after {STEP_TIMEOUT:g}s waiting for {what}")


async def run_demo(*, keep: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="failover-demo-"))
    if not keep:  # the narration tells the story; daemon logs would drown it
        logging.getLogger("failover").setLevel(logging.ERROR)
    runners: list[web.AppRunner] = []
    daemon: Daemon | None = None
    try:
        say(
            "failover demo: a real failover on loopback"
            " (no cloud account; nothing leaves this machine)"
        )
        say()
        primary, pport = await start_target(PRIMARY_IP)
        fallback, fport = await start_target(FALLBACK_IP)
        runners += [primary, fallback]
        say(
            f"1. Two targets serve www: main at {PRIMARY_IP}:{pport},"
            f" backup at {FALLBACK_IP}:{fport}."
        )
        text = CONFIG.format(
            state=workdir / "state",
            socket=workdir / "admin.sock",
            name=NAME,
            primary=PRIMARY_IP,
            fallback=FALLBACK_IP,
            pport=pport,
            fport=fport,
        )
        (workdir / "failover.yaml").write_text(text)
        config = parse_config(text, source=workdir / "failover.yaml")
        daemon = Daemon(config)
        await daemon.start()
        dns_port = daemon.providers["lab-dns"].bound.port  # type: ignore[attr-defined]
        client = AdminClient(socket=config.admin.socket)
        say(f"   failover probes each every 200ms (fall 2, rise 2) and serves {NAME}")
        say(f"   from its builtin DNS server on 127.0.0.1:{dns_port}.")
        waited = await wait_for_answer(dns_port, PRIMARY_IP, "the first publication")
        say(f"2. Both targets UP: the record is created with main ({waited:.1f}s after start):")
        say(f"   dig @127.0.0.1 -p {dns_port} {NAME} A  ->  {PRIMARY_IP}")
        await beat()
        say("3. Outage: main's HTTP server stops now (a cloud going down).")
        await primary.cleanup()
        runners.remove(primary)
        took = await wait_for_answer(dns_port, FALLBACK_IP, "the failover")
        _, hist = await client.call("GET", "/v1/history?service=www&limit=1")
        say(f"   {took:.2f}s later DNS answers {FALLBACK_IP}:")
        say(f"   dig @127.0.0.1 -p {dns_port} {NAME} A  ->  {FALLBACK_IP}")
        if hist:
            say(f"   why: {hist[-1]['reason']}")
        await beat()
        say("4. main comes back.")
        primary, _ = await start_target(PRIMARY_IP, pport)
        runners.append(primary)

        async def primary_up() -> bool:
            _, body = await client.call("GET", "/v1/status")
            return bool(body["services"]["www"]["targets"]["main"]["health"] == "up")

        await wait_for(primary_up, "main to be UP again")
        _, body = await client.call("GET", "/v1/status")
        say(f"   it is UP, yet DNS stays on backup: {body['services']['www']['reason']}")
        await beat()
        say(
            "5. The operator fails back by hand:"
            " failover promote www main --reason 'main recovered'"
        )
        status, result = await client.call(
            "POST",
            "/v1/services/www/promote",
            {"target": "main", "reason": "main recovered", "actor": "demo"},
        )
        if status != 200 or result.get("result") != "ok":
            raise DemoError(f"promote failed: {result}")
        await wait_for_answer(dns_port, PRIMARY_IP, "the failback")
        say(f"   dig @127.0.0.1 -p {dns_port} {NAME} A  ->  {PRIMARY_IP}")
        await client.call("POST", "/v1/services/www/release", {"actor": "demo"})
        say("   failover release www: the service is back under automatic control.")
        say()
        _, entries = await client.call("GET", "/v1/history?service=www&limit=20")
        say("6. The journal (failover history):")
        for line in history_text(entries).splitlines():
            say(f"   {line}")
        say()
        if keep:
            assert daemon.metrics_address is not None
            say("The demo keeps running. Explore it from another terminal:")
            say(f"   failover status --socket {config.admin.socket}")
            say(f"   dig @127.0.0.1 -p {dns_port} {NAME} A")
            say(f"   curl http://{daemon.metrics_address}/metrics")
            say(f"   config: {workdir / 'failover.yaml'}   Ctrl-C to stop.")
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, daemon.request_stop)
            await daemon.wait()
        else:
            say(
                "Done: detection, DNS flip, manual failback, all on loopback."
                " Run `failover demo --keep` to explore."
            )
        return 0
    except DemoError as exc:
        say(f"demo failed: {exc}")
        return 1
    finally:
        if daemon is not None:
            await daemon.stop()
        for runner in runners:
            await runner.cleanup()
        await asyncio.sleep(0)
        shutil.rmtree(workdir, ignore_errors=True)
