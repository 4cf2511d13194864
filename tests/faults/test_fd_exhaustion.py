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

from tests.faults.flood_support import Attacker
from tests.support import Lab, admin_listen, free_port

NOFILE = 256  # soft and hard: the daemon cannot raise it
HOARD = 600  # connections held (reopened as the daemon resets them): over twice the limit


def test_connection_hoarding_on_the_admin_port_starves_no_probe(tmp_path: Path) -> None:
    admin_port = free_port()
    lab = Lab(
        tmp_path,
        addresses=("127.0.3.11", "127.0.3.12"),
        nofile=NOFILE,
        instance="flood-1",
        admin_extra=admin_listen(tmp_path, admin_port, "secret-token"),
    )
    primary, secondary, daemon = lab.primary, lab.secondary, lab.daemon
    hoard: Attacker | None = None
    try:
        lab.start(ready_timeout=60)
        lab.wait_answer(primary.host, timeout=30)
        lab.wait_health("secondary", "up", timeout=30)
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
        assert lab.answer() == [primary.host]
        assert daemon.log.stat().st_size - log_before < 64 * 1024, "the log is flooding"

        primary.stop()  # after the attack a real failure still fails over
        lab.wait_answer(secondary.host, timeout=30)
    finally:
        if hoard is not None:
            hoard.stop()
        lab.close()
