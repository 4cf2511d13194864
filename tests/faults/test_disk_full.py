"""Issue 10 finding 5: a full state disk must never block a failover, nor lose or tear an entry.

A real daemon keeps its state_dir on a 2 MB tmpfs. The disk is filled, then the primary dies:
DNS must move to the secondary anyway (builtin provider, and BIND through rfc2136), `/readyz`
must fail naming the journal, `status` and the metrics must show the `journal_unwritable`
alarm. Once space is freed, every entry seen in memory lands in the journal in the same order,
no line is torn, and the alarm clears. Waits are bounded polls, never timed assertions.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from failover import store as store_mod
from failover.store import JournalWriteError, Store
from tests.faults.disk_support import Tmpfs, parse_journal
from tests.providers.bind import BindServer
from tests.providers.peers import bind_peer
from tests.support import Lab, Peer, cli, metric_value, wait_until

PRIMARY, SECONDARY = "127.0.0.61", "127.0.0.62"
POLICY = "{failback: manual, cooldown: 1s, startup_grace: 3s}"


def _lab(workdir: Path, disk: Tmpfs, peer: Peer | None = None) -> Lab:
    """The daemon's state_dir on the tmpfs; its config, socket and log stay in `workdir`."""
    return Lab(
        workdir,
        peer,
        addresses=(PRIMARY, SECONDARY),
        instance="disk-1",
        state_dir=disk.path / "state",
        policy=POLICY,
    )


def _history(lab: Lab) -> list[dict[str, Any]]:
    result = lab.cli("history", "--json", "--limit", "10000")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _key(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry["time"], entry["service"], entry["kind"], entry.get("to"), entry["reason"])


def _fail_over_on_full_disk(lab: Lab, disk: Tmpfs) -> None:
    """The common scenario: fill, kill the primary, check the degraded daemon, free, check."""
    daemon, state_dir = lab.daemon, lab.state
    lab.wait_answer(PRIMARY, timeout=30)
    disk.fill()
    lab.primary.stop()
    lab.wait_answer(SECONDARY, timeout=60)

    # The daemon says the journal is behind, everywhere an operator or a probe looks.
    _, text = wait_until(
        lambda: (r := daemon.readyz())[0] == 503 and r, 30, "/readyz to fail on the journal"
    )
    assert "journal" in text and str(state_dir) in text, text
    assert daemon.healthz()[0] == 200  # alive: a restart would lose what waits in memory
    status = wait_until(
        lambda: (s := lab.status())["journal"]["unwritable"] and s, 30, "the status alarm"
    )
    assert "journal_unwritable" in status["alarms"]
    assert "ALARM journal_unwritable" in lab.cli("status").stdout
    assert status["services"]["shop"]["active"] == "secondary"
    assert metric_value(daemon.metrics(), "failover_journal_unwritable") == 1
    # The journal's last page may still hold a few lines: operator commands (which must work
    # on a full disk too) add entries until the disk refuses them and they wait in memory.
    for _ in range(60):
        if (metric_value(daemon.metrics(), "failover_journal_pending_entries") or 0) >= 1:
            break
        for verb in ("pause", "resume"):
            result = lab.cli(verb, "shop")
            assert result.returncode == 0, result.stderr
    else:
        raise AssertionError("no journal entry ever waited in memory")
    switch = [e for e in _history(lab) if e["kind"] == "switch" and e["to"] == "secondary"]
    assert switch, "history must show the switch waiting in memory"
    seen = [_key(e) for e in _history(lab)]

    disk.free()
    wait_until(lambda: daemon.readyz()[0] == 200, 60, "/readyz to recover once space is back")
    wait_until(
        lambda: metric_value(daemon.metrics(), "failover_journal_unwritable") == 0,
        30,
        "the alarm to clear",
    )
    assert metric_value(daemon.metrics(), "failover_journal_pending_entries") == 0
    assert not lab.status()["journal"]["unwritable"]

    on_disk = [_key(e) for e in parse_journal(state_dir)]  # no torn line anywhere
    it = iter(on_disk)
    missing = [k for k in seen if k not in it]  # `seen` is a subsequence: same order, none lost
    assert not missing, f"entries lost or reordered: {missing[:3]}"
    kinds = [e["kind"] for e in parse_journal(state_dir)]
    assert "switch" in kinds
    state = json.loads((state_dir / "state.json").read_text())
    assert state["services"]["shop"]["last_switch_at"] is not None


def _assert_clean_log(lab: Lab) -> None:
    log = lab.log()
    assert "Task exception was never retrieved" not in log
    assert "Traceback" not in log
    assert log.count("journal unwritable") == 1, log  # one line, not one per entry


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Tmpfs]:
    with Tmpfs(tmp_path / "disk") as mounted:
        yield mounted


def test_builtin_fails_over_on_a_full_disk_and_flushes_the_journal_after(
    tmp_path: Path, disk: Tmpfs
) -> None:
    with _lab(tmp_path, disk) as lab:
        lab.start(ready_timeout=30)
        _fail_over_on_full_disk(lab, disk)
        # The zone data the builtin server could not save while the disk was full is saved
        # once it can be: a restart serves the secondary.
        wait_until(
            lambda: SECONDARY in (lab.state / "builtin-lab.json").read_text(),
            30,
            "the builtin zone data to be saved",
        )
    _assert_clean_log(lab)


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    server = BindServer(tmp_path_factory.mktemp("bind")).start()
    try:
        yield server
    finally:
        server.stop()


def test_rfc2136_fails_over_on_a_full_disk_and_keeps_every_entry(
    tmp_path: Path, disk: Tmpfs, bind: BindServer
) -> None:
    with _lab(tmp_path, disk, bind_peer(bind, tmp_path)) as lab:
        lab.start(ready_timeout=30)
        _fail_over_on_full_disk(lab, disk)
    _assert_clean_log(lab)


def test_start_on_a_full_disk_names_the_path_and_the_fix(tmp_path: Path, disk: Tmpfs) -> None:
    state_dir = disk.path / "state"
    state_dir.mkdir()
    disk.fill()
    with _lab(tmp_path, disk) as lab:
        result = cli("run", "-c", str(lab.config))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert str(state_dir) in result.stderr
    assert "No space left on device" in result.stderr
    assert "free space" in result.stderr  # the fix


def test_a_refused_append_is_cut_off_and_a_retry_repeats_nothing(
    disk: Tmpfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(disk.path / "state")
    store.append({"n": 0})
    before = store.journal_path.read_bytes()
    truncated: list[int] = []
    real_truncate = os.ftruncate

    def spy(fd: int, size: int) -> None:
        truncated.append(size)
        real_truncate(fd, size)

    monkeypatch.setattr(store_mod.os, "ftruncate", spy)
    disk.fill()
    batch = [{"n": n, "pad": "x" * 500} for n in range(1, 40)]  # more than the page left
    with pytest.raises(JournalWriteError) as info:
        store.append_many(batch)
    assert info.value.filename == str(store.journal_path) and info.value.landed == 0
    assert truncated == [len(before)]  # part of the batch landed, and was cut off again
    assert store.journal_path.read_bytes() == before
    assert "journal.jsonl" in store.failing
    disk.free()
    store.append_many(batch)
    assert [e["n"] for e in store.history()] == list(range(40))
    assert "journal.jsonl" not in store.failing


def test_when_the_cut_fails_landed_entries_are_not_repeated(
    disk: Tmpfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(disk.path / "state")
    store.append({"n": 0})

    def refuse(fd: int, size: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(store_mod.os, "ftruncate", refuse)
    disk.fill()
    batch = [{"n": n, "pad": "x" * 500} for n in range(1, 40)]
    with pytest.raises(JournalWriteError) as info:
        store.append_many(batch)
    landed = info.value.landed
    assert 0 < landed < len(batch)
    disk.free()
    store.append_many(batch[landed:])  # what the journal retries: only what did not land
    assert [e["n"] for e in store.history()] == list(range(40))  # the torn rest is sealed off
