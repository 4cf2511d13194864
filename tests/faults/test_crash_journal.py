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
from pathlib import Path

import pytest

from failover.engine.recovery import open_intents
from tests.providers.bind import BindServer
from tests.providers.peers import bind_peer
from tests.support import Lab, wait_until

SERVICES = 200


def lab(workdir: Path, bind: BindServer) -> Lab:
    """`SERVICES` services on BIND, probed every second with fall 1: when the primary dies,
    they all switch at once."""
    return Lab(
        workdir,
        bind_peer(bind, workdir),
        addresses=("127.0.0.51", "127.0.0.52"),
        instance="crash-1",
        services=tuple(f"s{i:03d}" for i in range(SERVICES)),
        probe="{interval: 1s, timeout: 500ms}",
        health="{fall: 1, rise: 1}",
        policy="{failback: manual, cooldown: 2s, startup_grace: 2s}",
    )


def journal(lab: Lab) -> list[dict]:  # type: ignore[type-arg]
    lines = (lab.state / "journal.jsonl").read_bytes().splitlines()
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a torn final line: the store seals it at the next start
    return entries


def served(lab: Lab) -> dict[str, list[str]]:
    return {f"s{i:03d}": lab.answer(f"s{i:03d}") for i in range(SERVICES)}


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3])
def test_kill9_mid_switch_loses_no_dns_change(
    tmp_path: Path, bind: BindServer, delay: float
) -> None:
    with lab(tmp_path, bind) as crashing:
        primary, secondary = crashing.primary, crashing.secondary
        crashing.start()
        wait_until(
            lambda: all(v == [primary.host] for v in served(crashing).values()), 60, "publication"
        )
        serial = bind.serial()
        primary.status = 503  # the primary dies: 200 services switch at once
        wait_until(lambda: bind.serial() != serial, 30, "the first UPDATE of the switch")
        time.sleep(delay)
        crashing.kill9()

        answers = served(crashing)
        moved = {name for name, values in answers.items() if values == [secondary.host]}
        entries = journal(crashing)
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
        crashing.start()
        wait_until(lambda: not open_intents(journal(crashing)), 60, "reconciliation")
        time.sleep(1.5)  # a few cycles: any flip would show
        assert served(crashing) == answers, "a restart changed what DNS serves"
        after = journal(crashing)[len(entries) :]
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
