"""kill -9 in the middle of a mass switch: every DNS change has its journal entry.

The journal is written ahead: an `intent` is durable before any provider call. Before that, a
kill between BIND applying an UPDATE and the group commit of the `switch` entries left up to
131 of 200 services switched at the DNS server with nothing in the journal, for good. Here a
real daemon switches 200 services on a real BIND and is killed at several moments; after each
kill, every record BIND serves on the secondary has an intent in the journal, and a restart
reconciles every open intent (journalled, nothing flips).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.engine.recovery import open_intents
from tests.providers.bind import KEY_NAME, BindServer
from tests.support import DaemonProcess, TargetServer, free_port, wait_until

SERVICES = 200
ZONE = "example.test"


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[BindServer]:
    server = BindServer(tmp_path / "bind").start()
    try:
        yield server
    finally:
        server.stop()


def config(workdir: Path, bind: BindServer, primary: TargetServer, secondary: TargetServer) -> Path:
    secret = workdir / "tsig.secret"
    secret.write_text(bind.secret + "\n")
    services = "".join(
        f"""
  s{i:03d}:
    records: [{{provider: bind, zone: {ZONE}, name: s{i:03d}.{ZONE}, type: A, ttl: 30}}]
    targets:
      - {{name: primary, location: cloud-a, values: [{primary.host}],
         probes: [{{type: http, url: "{primary.url}"}}]}}
      - {{name: secondary, location: cloud-b, values: [{secondary.host}],
         probes: [{{type: http, url: "{secondary.url}"}}]}}
"""
        for i in range(SERVICES)
    )
    text = f"""
instance: {{name: crash-1, location: lab, state_dir: "{workdir / "state"}"}}
admin: {{socket: "{workdir / "admin.sock"}"}}
metrics: {{listen: "127.0.0.1:{free_port()}"}}
providers:
  bind:
    type: rfc2136
    server: 127.0.0.1
    port: {bind.port}
    tsig: {{name: {KEY_NAME}, algorithm: hmac-sha256, secret: "${{file:{secret}}}"}}
    verify: false
    timeout: 5s
defaults:
  probe: {{interval: 1s, timeout: 500ms}}
  health: {{fall: 1, rise: 1}}
  policy: {{failback: manual, cooldown: 2s, startup_grace: 2s}}
services:{services}"""
    path = workdir / "failover.yaml"
    path.write_text(text)
    return path


def start(path: Path) -> DaemonProcess:
    port = int(path.read_text().split('listen: "127.0.0.1:')[1].split('"')[0])
    return DaemonProcess(path, port, path.parent / "admin.sock").start()


def journal(workdir: Path) -> list[dict]:  # type: ignore[type-arg]
    lines = (workdir / "state" / "journal.jsonl").read_bytes().splitlines()
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a torn final line: the store seals it at the next start
    return entries


def served(bind: BindServer) -> dict[str, list[str]]:
    return {f"s{i:03d}": bind.values(f"s{i:03d}.{ZONE}") for i in range(SERVICES)}


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3])
def test_kill9_mid_switch_loses_no_dns_change(
    tmp_path: Path, bind: BindServer, delay: float
) -> None:
    primary = TargetServer("127.0.0.51").start()
    secondary = TargetServer("127.0.0.52").start()
    path = config(tmp_path, bind, primary, secondary)
    daemon = start(path)
    try:
        wait_until(
            lambda: all(v == [primary.host] for v in served(bind).values()), 60, "publication"
        )
        serial = bind.serial()
        primary.status = 503  # the primary dies: 200 services switch at once
        wait_until(lambda: bind.serial() != serial, 30, "the first UPDATE of the switch")
        time.sleep(delay)
        daemon.kill9()

        answers = served(bind)
        moved = {name for name, values in answers.items() if values == [secondary.host]}
        entries = journal(tmp_path)
        intended = {
            e["service"]
            for e in entries
            if e["kind"] in ("intent", "switch") and e.get("to") == "secondary"
        }
        assert moved, "the kill came too late or too early: nothing had switched at BIND"
        assert moved <= intended, (
            f"switched at BIND with no journal entry: {sorted(moved - intended)}"
        )

        primary.status = 200  # back before the restart: manual failback, nothing may flip
        daemon = start(path)
        wait_until(lambda: not open_intents(journal(tmp_path)), 60, "reconciliation")
        time.sleep(1.5)  # a few cycles: any flip would show
        assert served(bind) == answers, "a restart changed what DNS serves"
        after = journal(tmp_path)[len(entries) :]
        reconciled = {e["service"]: e for e in after if e.get("reconciled")}
        for name in moved:  # each change the crash interrupted has its outcome now
            ok = [
                e
                for e in entries + after
                if e["service"] == name and e["kind"] == "switch" and e.get("result") == "ok"
            ]
            assert ok, f"{name}: served the secondary, but no switch outcome was journalled"
        for name, entry in reconciled.items():
            assert entry["result"] == ("ok" if name in moved else "error"), entry
        flips = [e for e in after if e["kind"] == "switch" and not e.get("reconciled")]
        assert flips == [], f"the restart switched services: {flips[:3]}"
    finally:
        daemon.stop()
        primary.close()
        secondary.close()
