"""Faults after "accepted" (issue 10, findings 8-9): what an ignoring provider gets, and how long
an alarm outlives its fault.

Runs the real daemon with an `rfc2136` provider on a dnspython UPDATE server on loopback
(tests/faults/dnsserver.py) and prints two figures:

1. ignored updates: the service is pinned to its secondary while the server answers NOERROR to
   every UPDATE and keeps the old answer. Counts the UPDATEs (and journal lines) over
   `--window` seconds, then lets the server apply updates and measures until the pin lands,
   until the alarms clear, and the UPDATEs in the `--window` after that.
2. a lagging name server: one of the two verifying servers is down while the service fails
   over, so the change is not verified; then it comes back. Measures from its return until the
   `not_verified` alarm clears ("never" within `--patience` seconds if it does not).

    python bench/faults_verify.py [--window 60] [--patience 120]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.dnsserver import UpdateServer, Zone
from tests.support import Lab, wait_until

ZONE = "example.test"
NAME = f"shop.{ZONE}"


def alarm(lab: Lab, name: str) -> bool:
    try:
        return (lab.metric("failover_service_alarm", alarm=name) or 0) > 0
    except OSError:
        return True


def seconds_until(
    check: Callable[[], bool], patience: float, since: float | None = None
) -> float | None:
    """Seconds from `since` (default: now) until `check` holds; None after `patience`."""
    start = time.monotonic() if since is None else since
    while time.monotonic() - start < patience:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def show(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def ignored_updates(workdir: Path, window: float, patience: float) -> None:
    zone = Zone(ZONE)
    zone.set(NAME, "A", 30, ["127.0.0.61"])
    server = UpdateServer(zone).start()
    lab = Lab(workdir, server.peer(), addresses=("127.0.0.61", "127.0.0.62"), instance="faults")
    try:
        lab.start()
        wait_until(lambda: lab.service()["active"] == "primary", 20, "the primary read back")
        server.mode = "ignore"
        start, lines = time.monotonic(), len(lab.journal())
        lab.cli("promote", "shop", "secondary", "--reason", "bench", "--yes")
        time.sleep(max(0.0, start + window - time.monotonic()))
        ignoring = server.updates_between(start, start + window)
        journal = len(lab.journal()) - lines
        server.mode = "apply"
        applied = time.monotonic()
        landed = seconds_until(lambda: zone.values(NAME) == ["127.0.0.62"], patience)
        cleared = seconds_until(
            lambda: not alarm(lab, "change_ignored") and not alarm(lab, "not_verified"),
            patience,
            since=applied,
        )
        settled = time.monotonic()
        time.sleep(window)
        after = server.updates_between(settled, settled + window)
    finally:
        lab.close()
        server.close()
    per_minute = 60.0 / window
    print("ignored updates (pinned service, server answers NOERROR and keeps the old answer)")
    rate = ignoring * per_minute
    print(f"  UPDATEs while ignoring    {ignoring} in {window:g} s ({rate:.0f}/min)")
    print(f"  journal lines meanwhile   {journal} ({journal * per_minute:.0f}/min)")
    print(f"  pin landed after applying {show(landed)}")
    print(f"  alarms cleared after      {show(cleared)} (both from the server applying again)")
    print(f"  UPDATEs once it landed    {after} in {window:g} s")


def lagging_server(workdir: Path, patience: float) -> None:
    zone = Zone(ZONE)
    zone.set(NAME, "A", 30, ["127.0.0.63"])
    primary_ns, secondary_ns = UpdateServer(zone).start(), UpdateServer(zone).start()
    peer = primary_ns.peer(primary_ns, secondary_ns)
    lab = Lab(workdir, peer, addresses=("127.0.0.63", "127.0.0.64"), instance="faults")
    try:
        lab.start()
        wait_until(lambda: lab.service()["active"] == "primary", 20, "the primary read back")
        secondary_ns.down = True
        lab.primary.stop()
        raised = seconds_until(lambda: alarm(lab, "not_verified"), patience)
        time.sleep(5)  # the server stays down a while after the alarm
        secondary_ns.down = False
        cleared = seconds_until(lambda: not alarm(lab, "not_verified"), patience)
    finally:
        lab.close()
        primary_ns.close()
        secondary_ns.close()
    print("lagging name server (one of two verifying servers down during a failover)")
    print(f"  not_verified raised after {show(raised)} (verify.timeout 1s)")
    print(f"  cleared after it is back  {show(cleared)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=60.0, help="seconds of each count")
    parser.add_argument("--patience", type=float, default=120.0, help="longest wait, seconds")
    args = parser.parse_args()
    ignored_updates(Path(tempfile.mkdtemp(prefix="failover-bench-")), args.window, args.patience)
    lagging_server(Path(tempfile.mkdtemp(prefix="failover-bench-")), args.patience)
    return 0


if __name__ == "__main__":
    sys.exit(main())
