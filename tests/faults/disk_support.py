"""A state disk that fills up: a tiny tmpfs and a filler file, for a daemon whose state_dir is on
it (`tests.support.Lab(..., state_dir=tmpfs.path / "state")`), and a strict journal reader.

Why a real tmpfs: ENOSPC from a real file system is what a full `/var/lib` gives the daemon,
with its short writes (part of a line lands, then the next write fails) and the room left in
the last page of a file. Mounting needs root; the tests skip without it. Every mount is
unmounted by its context manager, even when a test fails.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest


class Tmpfs:
    """A tmpfs of `size` at `path`; `fill()` takes every free byte, `free()` gives them back."""

    def __init__(self, path: Path, size: str = "2m") -> None:
        self.path = path
        self.size = size
        self.filler = path / "filler"

    def __enter__(self) -> Tmpfs:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0700", "tmpfs", str(self.path)],
            check=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        result = subprocess.run(["umount", str(self.path)], capture_output=True)
        if result.returncode != 0:  # a process still holds a file: detach it anyway
            subprocess.run(["umount", "-l", str(self.path)], check=False)

    def fill(self) -> int:
        """Write zeros until ENOSPC (in shrinking chunks, so not a byte is left)."""
        written = 0
        with self.filler.open("ab", buffering=0) as out:
            for chunk in (1 << 16, 4096, 512, 64, 1):
                block = b"\0" * chunk
                while True:
                    try:
                        written += out.write(block) or 0
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        return written

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()


def journal_lines(state_dir: Path) -> list[bytes]:
    path = state_dir / "journal.jsonl"
    return path.read_bytes().split(b"\n") if path.exists() else []


def parse_journal(state_dir: Path) -> list[dict[str, Any]]:
    """Every line of the journal, parsed: a torn or unreadable line fails the test."""
    lines = journal_lines(state_dir)
    assert not lines or lines[-1] == b"", "the journal does not end with a newline"
    entries = []
    for number, line in enumerate(lines[:-1], start=1):
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"journal line {number} does not parse: {line[:200]!r}") from None
    return entries
