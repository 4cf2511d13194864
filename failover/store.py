"""Durable state for one daemon: the decision state file and the append-only journal.

Both must survive `kill -9` and power loss. The state file is replaced atomically
(temp file in the same directory, fsync, rename, fsync of the directory), so a reader sees
either the old or the new version, never a mix. The journal is JSON lines written with one
`O_APPEND` write per entry and an fsync; the only damage a crash can leave is a torn final line,
which readers skip and the next append seals off with a newline. A write the disk refuses
halfway (ENOSPC, EIO) is truncated away at once, so a full disk leaves no torn line either.

Every write that fails is remembered in `failing` (file name -> when, why) until the same file
is written again: the journal's `journal_unwritable` alarm and `/readyz` read it.

Every method is synchronous and may block on fsync: async callers use `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
JOURNAL_FILE = "journal.jsonl"
LOCK_FILE = "lock"
_TMP_SUFFIX = ".tmp"


class StoreLockedError(Exception):
    """Another process (normally another daemon) holds the state directory's lock."""


class StoreCorruptError(Exception):
    """A state file cannot be parsed. Never reset silently: the operator has to decide."""

    problem = "is corrupt"

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"{path} {self.problem} ({detail}); move it aside to inspect it, then restart: "
            "without it the daemon starts afresh and re-reads the published DNS "
            f"({JOURNAL_FILE} keeps the history)"
        )
        self.path = path


class StoreSchemaError(StoreCorruptError):
    """Valid JSON that is not what the daemon writes (a hand edit, another tool): starting on
    it would silently drop every pin and pause, so the daemon refuses, naming the key."""

    problem = "does not match its schema"


class StoreUnwritableError(Exception):
    """The state directory refuses writes at start-up (full, read-only, wrong owner)."""

    def __init__(self, path: Path, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        super().__init__(
            f"cannot write in the state directory {path} ({reason}): free space there, or fix "
            "its permissions (the daemon's user must own it), or point instance.state_dir at "
            "another directory; the daemon keeps its journal and state there"
        )
        self.path = path


class JournalWriteError(OSError):
    """An append the disk refused. `landed`: entries that reached the file anyway (only when
    the partial write could not be truncated away), so the caller neither loses nor repeats."""

    def __init__(self, exc: OSError, path: Path, landed: int = 0) -> None:
        super().__init__(exc.errno, exc.strerror or str(exc), str(path))
        self.landed = landed


def _dumps(data: Any, *, indent: int | None = None) -> str:
    # sort_keys: stable bytes for diffs and tests; allow_nan=False: NaN is not JSON and other
    # tools (jq, the admin API's clients) would choke on it.
    return json.dumps(data, sort_keys=True, allow_nan=False, ensure_ascii=False, indent=indent)


def _fsync_dir(path: Path) -> None:
    """Make a rename or a file creation in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_entry(entry: dict[str, Any]) -> bytes:
    """One journal line (raises ValueError/TypeError for what is not JSON)."""
    return (_dumps(entry) + "\n").encode()


def _write_all(fd: int, data: bytes) -> None:
    """os.write may write less than asked (disk full, signals): finish the job or raise."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _named_error(exc: OSError, path: Path) -> OSError:
    """os.write and os.fsync raise without a file name: say which file the disk refused."""
    if exc.filename is not None:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


class ServiceBodies(dict[str, Any]):
    """Every service's intents body, and which of them can differ from the snapshot before
    (`changed`; None: any of them). See `Store.save_services_state`."""

    changed: frozenset[str] | None = None


class Store:
    """The files of one daemon's `state_dir`: `state.json`, `journal.jsonl`, small JSON files."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnwritableError(self.state_dir, exc) from None
        self.state_path = self.state_dir / STATE_FILE
        self.journal_path = self.state_dir / JOURNAL_FILE
        self.lock_path = self.state_dir / LOCK_FILE
        self._lock_fd: int | None = None
        self._warned_lines: set[int] = set()
        # file name -> (since, error) for every file whose last write failed. Written from
        # worker threads: single dict operations only (atomic under the GIL).
        self.failing: dict[str, tuple[float, str]] = {}
        # service -> (body, its JSON) from the last `save_services_state` (one writer at once)
        self._service_texts: dict[str, tuple[Any, str]] = {}
        self._service_order: list[str] = []  # their names, sorted
        self._ordered_texts: list[str] = []  # their JSON, in that order
        self._position: dict[str, int] = {}  # name -> index in both lists

    # -- lock ---------------------------------------------------------------------------------

    def lock(self) -> None:
        """Take the directory for this process; two daemons on one state_dir would race.

        flock is released by the kernel when the process dies, even on kill -9, so a stale lock
        file never blocks a restart. Leftover temp files of a crashed writer are removed here,
        once we know nobody else is writing.
        """
        if self._lock_fd is not None:
            return
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreUnwritableError(self.state_dir, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise StoreLockedError(
                f"{self.lock_path} is held by another failover process{who}; "
                "stop it or give this one another state_dir"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise StoreUnwritableError(self.state_dir, exc) from None
        self._lock_fd = fd
        self._remove_stale_tmp()

    def check_writable(self, size: int = 64 * 1024) -> None:
        """Start-up check: `size` bytes can be written and fsynced in the state directory.

        A daemon that starts on a full or read-only state dir would fail its first journal
        write, so it refuses to start instead, naming the directory and the fix
        (StoreUnwritableError). Once running, a disk that fills is survived (see journal.py).
        """
        try:
            fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=".probe.", suffix=_TMP_SUFFIX)
        except OSError as exc:
            raise StoreUnwritableError(self.state_dir, exc) from None
        try:
            _write_all(fd, b"\0" * size)
            os.fsync(fd)
        except OSError as exc:
            raise StoreUnwritableError(self.state_dir, exc) from None
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def unlock(self) -> None:
        if self._lock_fd is None:
            return
        fd, self._lock_fd = self._lock_fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def _remove_stale_tmp(self) -> None:
        for tmp in self.state_dir.glob(f".*{_TMP_SUFFIX}"):
            log.info("removing %s left by an interrupted write", tmp)
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    # -- state file and small JSON files ------------------------------------------------------

    def load_state(self) -> dict[str, Any]:
        """The last saved state; {} on first start. Raises StoreCorruptError, never resets."""
        data = self._read(self.state_path)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise StoreCorruptError(
                self.state_path, f"expected an object, got {type(data).__name__}"
            )
        return data

    def save_state(self, data: dict[str, Any]) -> None:
        self._atomic_write(self.state_path, data)

    def save_services_state(self, version: int, services: Mapping[str, Any]) -> None:
        """`save_state({"version": version, "services": services})`, byte for byte, with each
        service's JSON kept from the last save while its body is the same object: the engine
        hands over unchanged bodies as they were, and re-encoding 10,000 services on every
        group commit of a mass failover cost ~0.1 s of CPU each time.

        `services` may say which of its bodies can differ from the last save
        (`ServiceBodies.changed`): then only those are looked at, and the file is joined from
        the kept texts in C. Walking 10,000 services in Python on each group commit held the
        GIL ~3 ms from a worker thread, a few hundred times during a mass failover, which the
        event loop waited for."""
        changed = getattr(services, "changed", None)
        known = self._service_texts
        if changed is None or len(known) != len(services) or known.keys() != services.keys():
            self._save_all(services)
        else:
            ordered, position = self._ordered_texts, self._position
            for name in changed:
                body = services[name]
                cached = known[name]
                if cached[0] is not body:
                    text = f"{_dumps(name)}: {_dumps(body)}"
                    known[name] = (body, text)
                    ordered[position[name]] = text
        inner = ", ".join(self._ordered_texts)
        text = f'{{"services": {{{inner}}}, "version": {_dumps(version)}}}'
        self._atomic_write(self.state_path, None, text=text)

    def _save_all(self, services: Mapping[str, Any]) -> None:
        """Every service's text, kept or encoded again (see `save_services_state`)."""
        known, fresh = self._service_texts, {}
        for name, body in services.items():
            cached = known.get(name)
            if cached is None or cached[0] is not body:
                cached = (body, f"{_dumps(name)}: {_dumps(body)}")
            fresh[name] = cached
        self._service_texts = fresh
        if fresh.keys() != known.keys() or len(self._service_order) != len(fresh):
            self._service_order = sorted(fresh)
            self._position = {name: i for i, name in enumerate(self._service_order)}
        self._ordered_texts = [fresh[name][1] for name in self._service_order]

    def write_json(self, name: str, data: Any) -> None:
        """Atomically replace `state_dir/name` (e.g. the builtin provider's zone data)."""
        self._atomic_write(self._named(name), data)

    def read_json(self, name: str) -> Any | None:
        """Content of `state_dir/name`, None when absent; StoreCorruptError when unparsable."""
        return self._read(self._named(name))

    def _named(self, name: str) -> Path:
        if not name or "/" in name or name.startswith(".") or name in (LOCK_FILE, JOURNAL_FILE):
            raise ValueError(f"{name!r} is not a plain file name usable in the state directory")
        return self.state_dir / name

    def _read(self, path: Path) -> Any | None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreCorruptError(path, str(exc)) from None

    def _atomic_write(self, path: Path, data: Any, *, text: str | None = None) -> None:
        # serialise first: fail before I/O (compact: fast); `text`: `data` already encoded
        payload = ((_dumps(data) if text is None else text) + "\n").encode()
        try:
            fd, tmp = tempfile.mkstemp(
                dir=self.state_dir, prefix=f".{path.name}.", suffix=_TMP_SUFFIX
            )
        except OSError as exc:
            self._failed(path, exc)
            raise
        try:
            _write_all(fd, payload)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(tmp, path)
            _fsync_dir(self.state_dir)
        except BaseException as exc:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                error = _named_error(exc, path)
                self._failed(path, error)
                raise error from None
            raise
        self.failing.pop(path.name, None)

    def _failed(self, path: Path, exc: OSError) -> None:
        since = self.failing.get(path.name, (time.time(), ""))[0]
        self.failing[path.name] = (since, f"{path}: {exc.strerror or exc}")

    # -- journal ------------------------------------------------------------------------------

    def append(self, entry: dict[str, Any]) -> None:
        """Add one entry durably. Returns only after the line is on disk (fsync)."""
        self.append_many([entry])

    def append_many(self, entries: list[dict[str, Any]]) -> None:
        """Add entries durably with one write and one fsync (a group commit)."""
        self.append_lines([encode_entry(entry) for entry in entries])

    def append_lines(self, lines: list[bytes]) -> None:
        """Append encoded entries (`encode_entry`) with one write and one fsync.

        All or nothing: when the disk refuses part of the write (ENOSPC after a short write,
        EIO on fsync), the file is truncated back to where it was, so no torn line is left and
        a retry repeats no entry. Raises JournalWriteError (an OSError naming the file)."""
        if not lines:
            return
        data = b"".join(lines)
        created = not self.journal_path.exists()
        try:
            fd = os.open(
                self.journal_path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            self._failed(self.journal_path, exc)
            raise JournalWriteError(exc, self.journal_path) from None
        try:
            size = os.fstat(fd).st_size
            sealed = bool(size) and os.pread(fd, 1, size - 1) != b"\n"
            if sealed:
                # A crash tore the last line: start on a fresh line so this entry stays whole.
                data = b"\n" + data
            written = 0
            try:
                # One write of the whole batch: with O_APPEND it lands at the end in one piece.
                while written < len(data):
                    written += os.write(fd, memoryview(data)[written:])
                os.fsync(fd)
            except OSError as exc:
                landed = self._undo_append(fd, size, data[:written], sealed)
                self._failed(self.journal_path, exc)
                raise JournalWriteError(exc, self.journal_path, landed) from None
        finally:
            os.close(fd)
        self.failing.pop(self.journal_path.name, None)
        if created:
            try:
                _fsync_dir(self.state_dir)
            except OSError as exc:  # the entries are in the file: do not have them written twice
                log.warning("%s: cannot fsync the directory: %s", self.state_dir, exc)

    def _undo_append(self, fd: int, size: int, written: bytes, sealed: bool) -> int:
        """Cut a refused append off the journal; the entries that stay in it when that fails
        (the torn rest is sealed off by the next append and skipped by readers)."""
        try:
            os.ftruncate(fd, size)
            return 0
        except OSError as exc:
            log.error("%s: cannot truncate a partial write away: %s", self.journal_path, exc)
            return max(0, written.count(b"\n") - int(sealed))

    def history(self, service: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Journal entries, oldest first; only `service`'s when given; the last `limit` ones.

        Lines that do not parse (a torn tail, or one that a later append sealed off) are
        skipped with one warning each per Store, so a crash costs at most the entry being
        written and never the history.
        """
        if limit is not None and limit <= 0:
            return []
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            return []
        entries: deque[dict[str, Any]] = deque(maxlen=limit)
        lines = raw.split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                entry = None
            if not isinstance(entry, dict):
                if number not in self._warned_lines:
                    self._warned_lines.add(number)
                    torn = "torn final line" if number == len(lines) else "unreadable line"
                    log.warning(
                        "%s: skipping %s %d (interrupted write?)", self.journal_path, torn, number
                    )
                continue
            if service is None or entry.get("service") == service:
                entries.append(entry)
        return list(entries)
