"""Journal on a disk that refuses writes: nothing raises, nothing is lost or reordered.

The store refuses appends and state saves while `full` is set (the errors a full disk gives);
the journal must keep entries in memory, keep calling `on_entry`, report itself behind, and
write everything in order once the store accepts again (its own retry timer, no new entry
needed). Waits are bounded polls on the journal's state, never timed assertions.
"""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from typing import Any

import pytest

from failover import journal as journal_mod
from failover.journal import Journal
from failover.model import Trigger
from failover.store import JournalWriteError, Store


class FullStore(Store):
    """A real store whose disk is full while `full` is set."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.full = False
        self.attempts = 0

    def _refuse(self, path: Path) -> OSError:
        exc = OSError(errno.ENOSPC, "No space left on device", str(path))
        self.failing[path.name] = (0.0, f"{path}: No space left on device")
        return exc

    def append_lines(self, lines: list[bytes]) -> None:
        self.attempts += 1
        if self.full:
            raise JournalWriteError(self._refuse(self.journal_path), self.journal_path)
        super().append_lines(lines)

    def save_state(self, data: dict[str, Any]) -> None:
        if self.full:
            raise self._refuse(self.state_path)
        super().save_state(data)


async def _until(predicate: Any, what: str, limit: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _write(journal: Journal, n: int, kind: str = "switch") -> None:
    journal.enqueue("shop", kind, Trigger.AUTO, f"entry {n}", float(n), to="secondary", n=n)


async def test_a_full_disk_parks_entries_then_writes_them_in_order(tmp_path: Path) -> None:
    store = FullStore(tmp_path)
    seen: list[dict[str, Any]] = []
    journal = Journal(store, "i-1", on_entry=seen.append)
    await journal.write("shop", "pin", Trigger.MANUAL, "before", 0.0)
    store.full = True
    for n in range(1, 6):
        await journal.write("shop", "switch", Trigger.AUTO, f"entry {n}", float(n), n=n)  # no raise
    health = journal.health()
    assert health.unwritable and health.pending >= 5
    assert "No space left on device" in health.reason() and str(tmp_path) in health.reason()
    assert [e["n"] for e in seen if e["kind"] == "switch"] == [1, 2, 3, 4, 5]  # told at once
    assert [e["kind"] for e in seen].count("journal_unwritable") == 1
    shown = await journal.history("shop")
    assert [e.get("n") for e in shown] == [None, 1, 2, 3, 4, 5]  # memory after disk, in order

    store.full = False
    store.failing.clear()
    await _until(lambda: not journal.health().unwritable, "the journal to catch up")
    await journal.sync()
    on_disk = store.history()
    kinds = [e["kind"] for e in on_disk]
    assert kinds[0] == "pin"
    assert [e["n"] for e in on_disk if e["kind"] == "switch"] == [1, 2, 3, 4, 5]
    assert kinds.index("journal_unwritable") < kinds.index("journal_recovered")
    assert kinds[-1] == "journal_recovered"
    assert journal.health().pending == 0


async def test_state_saved_once_the_disk_accepts(tmp_path: Path) -> None:
    store = FullStore(tmp_path)
    journal = Journal(store, "i-1")
    store.full = True
    version = {"n": 1}
    journal.mark_state(lambda: dict(version), store.save_state)
    await journal.sync()
    assert not store.state_path.exists()
    version["n"] = 2  # the snapshot is taken when the save is tried, so the latest lands
    store.full = False
    store.failing.clear()
    await _until(lambda: store.state_path.exists(), "the state to be saved")
    assert store.load_state() == {"n": 2}


async def test_overflow_drops_the_oldest_and_summarises_them(tmp_path: Path) -> None:
    store = FullStore(tmp_path)
    journal = Journal(store, "i-1", max_pending=4)
    store.full = True
    for n in range(10):
        _write(journal, n)
    await journal.sync()
    health = journal.health()
    assert health.lost > 0 and "dropped" in health.reason()
    store.full = False
    store.failing.clear()
    await _until(lambda: not journal.health().unwritable, "the journal to catch up")
    await journal.sync()
    on_disk = store.history()
    assert on_disk[0]["kind"] == "journal_lost"  # where the dropped entries were: first
    assert on_disk[0]["lost"] == journal.lost_total
    kept = [e["n"] for e in on_disk if e["kind"] == "switch"]
    assert kept == sorted(kept) and kept[-1] == 9  # the newest are kept, in order
    assert len(kept) + on_disk[0]["kinds"].get("switch", 0) == 10  # each one kept or counted


async def test_retries_back_off_instead_of_spinning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_mod, "RETRY_FIRST", 60.0)
    store = FullStore(tmp_path)
    journal = Journal(store, "i-1")
    store.full = True
    _write(journal, 1)
    await journal.sync()
    tried = store.attempts
    for n in range(2, 50):  # entries made during the backoff wait: not one write attempt each
        _write(journal, n)
        await journal.sync()
    assert store.attempts == tried
    assert journal.health().pending >= 49


async def test_close_logs_what_could_not_be_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FullStore(tmp_path)
    journal = Journal(store, "i-1")
    store.full = True
    await journal.write("shop", "switch", Trigger.AUTO, "the one that matters", 1.0)
    await journal.close()
    lost = [r for r in caplog.records if "lost with this process" in r.getMessage()]
    assert len(lost) == 1 and "the one that matters" in lost[0].getMessage()


async def test_a_bad_value_costs_its_details_not_the_queue(tmp_path: Path) -> None:
    store = Store(tmp_path)
    journal = Journal(store, "i-1")
    await journal.write("shop", "switch", Trigger.AUTO, "nan", 1.0, value=float("nan"))
    await journal.write("shop", "switch", Trigger.AUTO, "next", 2.0)
    assert [e["reason"] for e in store.history()] == ["nan", "next"]


async def test_a_burst_beyond_the_cap_on_a_healthy_disk_is_written_whole(tmp_path: Path) -> None:
    """The cap bounds memory while the disk refuses writes; a mass failover that journals more
    entries at once than the cap, on a disk that accepts them, loses none."""
    store = FullStore(tmp_path)
    journal = Journal(store, "test", max_pending=10)
    for n in range(50):
        _write(journal, n)
    await journal.sync()
    assert [e["n"] for e in store.history()] == list(range(50))
    assert journal.lost_total == 0
