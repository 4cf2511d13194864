"""Processes seen through /proc: a daemon's probe process, whether a process is gone, which
signals it ignores."""

from __future__ import annotations

from pathlib import Path


def probe_child(daemon_pid: int) -> int | None:
    """The daemon's probe process, if it has one now."""
    try:
        children = Path(f"/proc/{daemon_pid}/task/{daemon_pid}/children").read_text().split()
    except FileNotFoundError:
        return None
    for pid in map(int, children):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"failover.probes.child" in cmdline:
            return pid
    return None


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # a zombie has exited (its parent reaps it)


def ignores(pid: int, signum: int) -> bool:
    """Whether the process ignores the signal (its /proc status mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    raise AssertionError(f"no SigIgn for {pid}")
