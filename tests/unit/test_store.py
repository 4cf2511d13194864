"""Store: atomic state file, append-only journal, lock; including real kill -9 of a writer."""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from failover import store as store_module
from failover.store import ServiceBodies, Store, StoreCorruptError, StoreLockedError

REPO = Path(__file__).resolve().parents[2]


def _python(script: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-c", script, *args], env=env, text=True, **kwargs
    )


# -- state file ---------------------------------------------------------------------------------


def test_state_round_trip_and_permissions(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    store = Store(state_dir)
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert store.load_state() == {}
    data = {"services": {"shop": {"active": "aws", "mode": "auto", "since": 1.5}}, "v": 1}
    store.save_state(data)
    assert Store(state_dir).load_state() == data
    assert stat.S_IMODE(store.state_path.stat().st_mode) == 0o600
    store.save_state({"v": 2})
    assert store.load_state() == {"v": 2}
    assert [p.name for p in state_dir.iterdir()] == ["state.json"]  # no temp file left


def test_leftover_tmp_is_ignored_then_cleaned_by_lock(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save_state({"v": 1})
    leftover = tmp_path / ".state.json.crashed.tmp"
    leftover.write_text('{"v": 2, "half-writ')  # what a writer killed before its rename leaves
    assert Store(tmp_path).load_state() == {"v": 1}
    store.lock()
    try:
        assert not leftover.exists()
        assert store.load_state() == {"v": 1}
    finally:
        store.unlock()


def test_failed_save_keeps_old_state(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save_state({"v": 1})
    with pytest.raises(ValueError):
        store.save_state({"v": math.nan})  # not JSON: rejected before touching the file
    with pytest.raises(TypeError):
        store.save_state({"v": object()})
    assert store.load_state() == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_corrupt_state_raises_with_path_and_advice(tmp_path: Path, content: bytes) -> None:
    store = Store(tmp_path)
    store.state_path.write_bytes(content)
    with pytest.raises(StoreCorruptError) as info:
        store.load_state()
    assert str(store.state_path) in str(info.value)
    assert "move it aside" in str(info.value)
    assert store.state_path.read_bytes() == content  # never reset silently


def test_named_json_files(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.read_json("builtin-lab.json") is None
    store.write_json("builtin-lab.json", {"zones": {"example.test": {"serial": 3}}})
    assert store.read_json("builtin-lab.json") == {"zones": {"example.test": {"serial": 3}}}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(StoreCorruptError):
        store.read_json("bad.json")
    for name in ("", "../x.json", "a/b", ".hidden", "journal.jsonl", "lock"):
        with pytest.raises(ValueError):
            store.write_json(name, {})


# -- journal ------------------------------------------------------------------------------------


def test_journal_append_history_filter_limit(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.history() == []
    for i in range(6):
        store.append({"n": i, "service": "shop" if i % 2 else "blog", "note": "é\nx"})
    assert [e["n"] for e in store.history()] == [0, 1, 2, 3, 4, 5]
    assert [e["n"] for e in store.history("shop")] == [1, 3, 5]
    assert [e["n"] for e in store.history("shop", limit=2)] == [3, 5]
    assert [e["n"] for e in store.history(limit=1)] == [5]
    assert store.history(limit=0) == []
    assert store.history("nope") == []
    lines = store.journal_path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 7  # one entry per line, newline-terminated
    assert json.loads(lines[0]) == {"n": 0, "note": "é\nx", "service": "blog"}
    assert lines[0].index(b'"n"') < lines[0].index(b'"note"')  # sorted keys
    assert stat.S_IMODE(store.journal_path.stat().st_mode) == 0o600
    with pytest.raises(ValueError):
        store.append({"n": math.inf})
    assert len(store.history()) == 6


def test_torn_last_line_is_skipped_logged_once_and_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path)
    store.append({"n": 0})
    store.append({"n": 1})
    with store.journal_path.open("ab") as f:
        f.write(b'{"n": 2, "serv')  # a writer killed in the middle of its line
    caplog.set_level(logging.WARNING, logger="failover.store")
    assert [e["n"] for e in store.history()] == [0, 1]
    assert [e["n"] for e in store.history()] == [0, 1]
    assert len([r for r in caplog.records if "torn" in r.getMessage()]) == 1

    store.append({"n": 3})
    assert store.journal_path.read_bytes().endswith(b'{"n": 2, "serv\n{"n": 3}\n')
    assert [e["n"] for e in store.history()] == [0, 1, 3]
    assert [e["n"] for e in Store(tmp_path).history(limit=1)] == [3]


# -- lock ---------------------------------------------------------------------------------------

HOLD_LOCK = """
import sys
from pathlib import Path
from failover.store import Store
Store(Path(sys.argv[1])).lock()
print("locked", flush=True)
sys.stdin.read()
"""

TRY_LOCK = """
import sys
from pathlib import Path
from failover.store import Store, StoreLockedError
try:
    Store(Path(sys.argv[1])).lock()
except StoreLockedError as exc:
    print(exc)
    sys.exit(3)
"""


def test_lock_excludes_another_process(tmp_path: Path) -> None:
    holder = _python(HOLD_LOCK, str(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(StoreLockedError) as info:
            Store(tmp_path).lock()
        assert str(tmp_path / "lock") in str(info.value)
        assert f"pid {holder.pid}" in str(info.value)
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        assert holder.wait(timeout=10) == 0
        holder.stdout.close()

    store = Store(tmp_path)
    store.lock()
    try:
        other = _python(TRY_LOCK, str(tmp_path), stdout=subprocess.PIPE)
        out, _ = other.communicate(timeout=10)
        assert other.returncode == 3, out
        assert str(tmp_path / "lock") in out
    finally:
        store.unlock()
    store.lock()  # unlock really released it; lock is reentrant-safe to call again
    store.lock()
    store.unlock()


# -- kill -9 ------------------------------------------------------------------------------------

WRITER = """
import sys
from pathlib import Path
from failover.store import Store
store = Store(Path(sys.argv[1]))
store.lock()
entries = store.history(limit=1)
n = entries[-1]["n"] + 1 if entries else 0
print("ready", n, flush=True)
while True:
    store.append({"n": n, "service": "shop", "pad": "x" * (n * 37 % 700)})
    store.save_state({"counter": n + 1, "pad": ["y"] * (n * 13 % 90)})
    n += 1
"""


def _check_after_crash(store: Store, torn_tails_seen: int) -> tuple[int, bool]:
    """Assert the invariants a crash must keep; return the last journal number and torn-ness."""
    raw = store.journal_path.read_bytes()
    lines = raw.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    invalid = 0
    for line in complete:
        try:
            json.loads(line)
        except ValueError:
            invalid += 1  # only a torn tail that a later append sealed off may be invalid
    assert invalid <= torn_tails_seen
    numbers = [e["n"] for e in store.history()]
    assert numbers == list(range(len(numbers))), "journal has gaps or duplicates"
    last = numbers[-1] if numbers else -1
    state = store.load_state()  # valid JSON, or this raises
    assert last <= state.get("counter", 0) <= last + 1, (state.get("counter"), last)
    assert state == {} or state["pad"] == ["y"] * ((state["counter"] - 1) * 13 % 90)
    return last, tail != b""


def test_kill_9_leaves_a_consistent_journal_and_state(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    store = Store(tmp_path)
    torn_tails, last, starts = 0, -1, []
    for _ in range(6):
        writer = _python(WRITER, str(tmp_path), stdout=subprocess.PIPE)
        assert writer.stdout is not None
        ready = writer.stdout.readline().split()
        assert ready[0] == "ready", f"writer failed to start (seed {seed})"
        starts.append(int(ready[1]))
        time.sleep(rng.uniform(0.02, 0.4))
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
        writer.stdout.close()
        assert writer.returncode == -signal.SIGKILL
        new_last, torn = _check_after_crash(store, torn_tails)
        assert new_last >= last, f"seed {seed}"
        torn_tails += torn
        last = new_last
    # Each restart resumed right after the last entry that reached the disk.
    assert starts[0] == 0 and all(b >= a for a, b in itertools.pairwise(starts))
    assert last > 6, f"writer made too little progress to test anything (seed {seed})"
    store.lock()  # the dead writers' locks are gone; their temp files get cleaned
    try:
        assert not list(tmp_path.glob(".*.tmp"))
    finally:
        store.unlock()


def test_services_state_is_what_save_state_writes_and_reencodes_only_new_bodies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, plain = Store(tmp_path / "fast"), Store(tmp_path / "plain")
    shop, odd = {"mode": "auto", "pin": None}, {"mode": "paused", "note": 'é "q"\n'}
    services: dict[str, Any] = {"zz": shop, "ä-odd": odd, "a": {}}
    for data in ({}, services):
        fast.save_services_state(1, data)
        plain.save_state({"version": 1, "services": data})
        assert fast.state_path.read_bytes() == plain.state_path.read_bytes()
    encoded: list[Any] = []
    real = store_module._dumps

    def counting(data: Any, **kwargs: Any) -> str:
        encoded.append(data)
        return real(data, **kwargs)

    monkeypatch.setattr(store_module, "_dumps", counting)
    changed = {**services, "zz": {"mode": "manual", "pin": "ovh"}}
    fast.save_services_state(1, changed)
    assert {"mode": "manual", "pin": "ovh"} in encoded
    assert shop not in encoded and odd not in encoded  # unchanged bodies: their JSON is kept
    plain.save_state({"version": 1, "services": changed})
    assert fast.state_path.read_bytes() == plain.state_path.read_bytes()


def test_services_state_told_what_changed_writes_what_a_full_save_writes(tmp_path: Path) -> None:
    """Named changes (`ServiceBodies.changed`) are looked at alone, yet the file is the one a
    full save writes, through random changes, removals and additions (which fall back to a
    full look at every service)."""
    rng = random.Random(13)
    told, plain = Store(tmp_path / "told"), Store(tmp_path / "plain")
    bodies: dict[str, Any] = {f"s{i:03d}": {"n": i} for i in range(200)}
    for step in range(60):
        names = rng.sample(sorted(bodies), 5)
        for name in names:
            bodies[name] = {"n": rng.random(), "step": step}
        if step % 10 == 9:  # a service removed and another added: the key set differs
            del bodies[rng.choice(sorted(bodies))]
            bodies[f"new{step}"] = {"n": step}
        snapshot = ServiceBodies(bodies)
        snapshot.changed = frozenset(names)
        told.save_services_state(2, snapshot)
        plain.save_state({"version": 2, "services": bodies})
        assert told.state_path.read_bytes() == plain.state_path.read_bytes(), step
