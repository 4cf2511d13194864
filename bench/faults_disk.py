"""A full state disk during a failover (issue 10, finding 5): how long until DNS moves, how
much waits in memory, how long the journal takes to catch up once space returns.

Runs the real daemon (`failover run`, builtin DNS provider, probes every 200 ms, fall 2) with
its state_dir on a 2 MB tmpfs (needs root). Each trial fills the disk, stops the primary and
polls the DNS answer every 5 ms; then runs operator commands (pause/resume) so that journal
entries pile up in memory; then frees the space and polls `/metrics` until the
`journal_unwritable` alarm clears. If DNS does not move while the disk is full (the code before
the fix), the trial frees the space after `--wait` seconds and reports when DNS moved after.

    sudo python bench/faults_disk.py [--trials 3] [--commands 20] [--wait 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.disk_support import Tmpfs, parse_journal
from tests.support import Lab

POLICY = "{failback: manual, cooldown: 1s, startup_grace: 3s}"


def _metric(lab: Lab, name: str) -> float | None:
    try:
        return lab.metric(name)
    except OSError:
        return None


@dataclass
class Trial:
    moved: float | None  # primary stopped -> DNS answers the secondary, disk full
    after_free: float | None  # space freed -> DNS answers the secondary (when not moved before)
    pending: float  # journal entries waiting in memory after the commands
    flushed: float | None  # space freed -> journal_unwritable cleared
    journal: str


def trial(workdir: Path, commands: int, wait: float) -> Trial:
    with Tmpfs(workdir / "disk") as disk:
        lab = Lab(
            workdir,
            addresses=("127.0.0.81", "127.0.0.82"),
            instance="disk-1",
            state_dir=disk.path / "state",
            policy=POLICY,
        )
        prim, sec = lab.primary, lab.secondary
        with lab:
            lab.start(ready_timeout=30)
            while lab.answer() != [prim.host]:
                time.sleep(0.05)
            disk.fill()
            killed = time.monotonic()
            prim.stop()
            moved: float | None = None
            while time.monotonic() - killed < wait:
                if lab.answer() == [sec.host]:
                    moved = time.monotonic() - killed
                    break
                time.sleep(0.005)
            pending = 0.0
            if moved is not None:
                for _ in range(commands):
                    for verb in ("pause", "resume"):
                        lab.cli(verb, "shop")
                pending = _metric(lab, "failover_journal_pending_entries") or 0.0
            freed = time.monotonic()
            disk.free()
            after_free: float | None = None
            flushed: float | None = None
            deadline = freed + 60
            while time.monotonic() < deadline:
                now = time.monotonic() - freed
                if after_free is None and moved is None and lab.answer() == [sec.host]:
                    after_free = now
                if flushed is None and _metric(lab, "failover_journal_unwritable") == 0:
                    flushed = now
                if (moved is not None or after_free is not None) and flushed is not None:
                    break
                time.sleep(0.02)
        try:
            parse_journal(lab.state)
            journal = "parseable"
        except AssertionError as exc:
            journal = f"BROKEN: {exc}"
    return Trial(moved, after_free, pending, flushed, journal)


def _fmt(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--commands", type=int, default=20, help="pause+resume pairs while full")
    parser.add_argument("--wait", type=float, default=20.0, help="seconds to wait for DNS")
    args = parser.parse_args()
    results: list[Trial] = []
    for n in range(args.trials):
        with tempfile.TemporaryDirectory(prefix="failover-disk-") as tmp:
            r = trial(Path(tmp), args.commands, args.wait)
        results.append(r)
        late = f" (moved {_fmt(r.after_free)} after space was freed)" if r.moved is None else ""
        print(
            f"trial {n + 1}: primary death -> DNS on secondary, disk full: {_fmt(r.moved)}{late}; "
            f"entries waiting in memory: {r.pending:.0f}; space freed -> journal caught up: "
            f"{_fmt(r.flushed)}; journal {r.journal}"
        )
    moved = [r.moved for r in results if r.moved is not None]
    flushed = [r.flushed for r in results if r.flushed is not None]
    if moved:
        print(
            f"DNS moved on a full disk in {len(moved)}/{len(results)} trials: "
            f"median {statistics.median(moved):.2f}s, max {max(moved):.2f}s"
        )
    else:
        print(f"DNS never moved while the disk was full (0/{len(results)} trials)")
    if flushed:
        print(
            f"journal caught up once space returned: median {statistics.median(flushed):.2f}s, "
            f"max {max(flushed):.2f}s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
