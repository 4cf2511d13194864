"""Figures under faults, with real processes: one command, one table.

    python bench/faults.py [--trials N] [--only NAME ...]

Scenarios (each also a test under tests/faults/, which asserts outcomes, never times):
  blip       every target fails for 2 s and recovers together: automatic switches (goal 0)
  crash      kill -9 at moments of a 200-service switch on BIND: services switched at the DNS
             server with no journal entry (goal 0), and open intents reconciled at restart
  blackhole  one provider's API in a network namespace that drops every packet: time until
             another provider's service is published, and its failover after a restart
  promotes   50 concurrent promotes of one service: answers 200 vs 409 superseded
Other fault benches (bench/faults_*.py) run after these when present.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from failover.client import AdminClient
from failover.engine.recovery import open_intents
from tests.faults import test_blackholed_provider as bh
from tests.faults import test_crash_journal as crash
from tests.faults.netns import blackhole
from tests.providers.bind import BindServer
from tests.support import Lab, wait_until

Row = tuple[str, str]


def blip(trials: int) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp, Lab(Path(tmp), addresses=(
        "127.0.0.41", "127.0.0.42")) as lab:  # fmt: skip
        primary, secondary = lab.primary, lab.secondary
        lab.start()
        lab.wait_answer(primary.host)
        for _ in range(trials):
            primary.status = secondary.status = 503
            time.sleep(2.4)  # fall (2 x 200 ms) plus the 2 s outage
            secondary.status = 200
            time.sleep(0.1)
            primary.status = 200
            time.sleep(2.5)
        lab.stop()
        switches = len(lab.daemon.switches(None))
    rows.append(("common-mode blips (2 s, secondary back 100 ms first)", f"{trials}"))
    rows.append(("  automatic switches out of them", f"{switches}"))
    return rows


def crash_runs(trials: int) -> list[Row]:
    missing, moved_total, reconciled = [], 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for trial in range(trials):
            work = Path(tmp) / f"t{trial}"
            work.mkdir()
            bind = BindServer(work / "bind").start()
            try:
                with crash.lab(work, bind) as lab:
                    lab.start()
                    wait_until(lambda b=lab: all(crash.served(b).values()), 60)
                    serial = bind.serial()
                    lab.primary.status = 503
                    wait_until(lambda b=bind, s=serial: b.serial() != s, 30)
                    time.sleep(0.1 * trial)
                    lab.kill9()
                    answers = crash.served(lab)
                    moved = {n for n, v in answers.items() if v == [lab.secondary.host]}
                    entries = crash.journal(lab)
                    known = {e["service"] for e in entries if e["kind"] in ("intent", "switch")}
                    missing.append(len(moved - known))
                    moved_total += len(moved)
                    lab.start()
                    wait_until(lambda b=lab: not open_intents(crash.journal(b)), 60)
                    reconciled += sum(1 for e in crash.journal(lab) if e.get("reconciled"))
            finally:
                bind.stop()
    return [
        (f"kill -9 mid 200-service switch on BIND ({trials} kills, 0-{trials - 1}00 ms in)", ""),
        ("  services switched at BIND by then", f"{moved_total}"),
        ("  ... of which with no journal entry", f"{sum(missing)} (per kill: {missing})"),
        ("  open intents reconciled at restart", f"{reconciled}"),
    ]


def blackholed(trials: int) -> list[Row]:
    publish, failover = [], []
    for _ in range(trials):
        with (
            tempfile.TemporaryDirectory() as tmp,
            blackhole() as dead,
            bh.lab(Path(tmp), dead) as lab,
        ):
            t0 = time.monotonic()
            bh.start(lab)
            lab.wait_answer(lab.primary.host, timeout=60)
            publish.append(time.monotonic() - t0)
            lab.stop()
            lab.primary.stop()
            t0 = time.monotonic()
            bh.start(lab)
            lab.wait_answer(lab.secondary.host, timeout=60)
            failover.append(time.monotonic() - t0)
    return [
        ("blackholed provider (30 s timeout) next to a healthy one", f"{trials} runs"),
        ("  start -> healthy provider's service published", _spread(publish)),
        ("  restart mid-incident -> failover published", _spread(failover)),
    ]


def promotes(trials: int) -> list[Row]:
    won, lost = [], []
    for _ in range(trials):
        with tempfile.TemporaryDirectory() as tmp, Lab(Path(tmp), addresses=(
            "127.0.0.71", "127.0.0.72")) as lab:  # fmt: skip
            lab.start()
            lab.wait_answer("127.0.0.71")
            lab.wait_health("secondary", "up")

            async def race(socket: Path = lab.socket) -> list[int]:
                async def one(i: int) -> int:
                    body = {"target": ("primary", "secondary")[i % 2], "reason": f"r{i}",
                            "actor": "bench", "force": False}  # fmt: skip
                    status, _ = await AdminClient(socket=socket).call(
                        "POST", "/v1/services/shop/promote", body
                    )
                    return status

                return list(await asyncio.gather(*(one(i) for i in range(50))))

            statuses = asyncio.run(race())
            won.append(statuses.count(200))
            lost.append(statuses.count(409))
    return [
        ("50 concurrent promotes, alternating targets", f"{trials} runs"),
        ("  answered 200 / 409 superseded", f"{won} / {lost}"),
    ]


def _spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"
    )


SCENARIOS: dict[str, Callable[[int], list[Row]]] = {
    "blip": blip,
    "crash": crash_runs,
    "blackhole": blackholed,
    "promotes": promotes,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS))
    args = parser.parse_args()
    rows: list[Row] = []
    for name in args.only or SCENARIOS:
        rows += SCENARIOS[name](args.trials)
    width = max(len(label) for label, _ in rows)
    print(f"{'scenario':<{width}}  result")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    if not args.only:
        for extra in sorted(Path(__file__).parent.glob("faults_*.py")):
            print(f"\n== {extra.name}")
            subprocess.run([sys.executable, str(extra)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
