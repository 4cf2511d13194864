"""Unauthenticated clients hoarding connections on the admin TCP port (issue 10, finding 3)
must not take the probes' file descriptors: under a low RLIMIT_NOFILE, with hundreds of
connections held open, probes keep working, the unix socket answers, nothing switches, the
log stays small, and afterwards a real primary death still fails over.

Before the fix the listener accepted until EMFILE: probes failed on every run, the unix socket
could not accept, and the logs filled with accept errors.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.faults.flood_support import (
    Attacker,
    Daemon,
    TargetServer,
    dns_a,
    free_port,
    wait_until,
    write_config,
)

NOFILE = 256  # soft and hard: the daemon cannot raise it
HOARD = 600  # connections held (reopened as the daemon resets them): over twice the limit


def test_connection_hoarding_on_the_admin_port_starves_no_probe(tmp_path: Path) -> None:
    primary = TargetServer("127.0.3.11").start()
    secondary = TargetServer("127.0.3.12").start()
    dns_port, metrics_port, admin_port = free_port(), free_port(), free_port()
    config = write_config(
        tmp_path,
        primary,
        secondary,
        dns_port=dns_port,
        metrics_port=metrics_port,
        admin_port=admin_port,
    )
    daemon = Daemon(config, metrics_port, nofile=NOFILE).start()
    hoard: Attacker | None = None
    try:
        wait_until(lambda: dns_a(dns_port) == [primary.host], 30, "publication")
        wait_until(
            lambda: daemon.status()["services"]["shop"]["targets"]["secondary"]["health"] == "up",
            30,
            "both targets UP",
        )
        log_before = daemon.log.stat().st_size
        hoard = Attacker("hold", "--port", str(admin_port), "--count", str(HOARD))
        assert hoard.line().startswith("held ")
        seen = []
        until = time.monotonic() + 5.0
        while time.monotonic() < until:  # the attack goes on (the hoarder reopens)
            shop = daemon.status(timeout=5.0)["services"]["shop"]  # the unix socket answers
            seen.append({name: (t["health"], t["reason"]) for name, t in shop["targets"].items()})
            time.sleep(0.25)
        starved = [s for s in seen if "open files" in json.dumps(s)]
        assert not starved, starved  # no probe ran out of descriptors
        assert seen[-1]["primary"][0] == seen[-1]["secondary"][0] == "up", seen
        stats = json.loads(hoard.stop())
        hoard = None
        assert stats["opened"] > NOFILE, stats  # the attack did exceed the daemon's limit
        time.sleep(1.0)  # the connections went away: nothing may switch now either
        assert daemon.switches() == []
        assert dns_a(dns_port) == [primary.host]
        assert daemon.log.stat().st_size - log_before < 64 * 1024, "the log is flooding"

        primary.stop()  # after the attack a real failure still fails over
        wait_until(lambda: dns_a(dns_port) == [secondary.host], 30, "the failover")
    finally:
        if hoard is not None:
            hoard.stop()
        daemon.stop()
        primary.close()
        secondary.close()
