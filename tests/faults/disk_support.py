"""A state disk that fills up: a tiny tmpfs, a filler file, and a daemon whose state_dir is on it.

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
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, TargetServer, free_port, wait_until

NAME = "shop.example.test"


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


def config_text(
    workdir: Path,
    state_dir: Path,
    primary: TargetServer,
    secondary: TargetServer,
    metrics_port: int,
    provider: str,
) -> str:
    """One service `shop` behind `provider` (YAML of the `lab` provider)."""
    return f"""
instance: {{name: disk-1, location: lab, state_dir: "{state_dir}"}}
admin: {{socket: "{workdir / "admin.sock"}"}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
providers:
  lab: {provider}
defaults:
  probe: {{interval: 200ms, timeout: 150ms}}
  health: {{fall: 2, rise: 2}}
  policy: {{failback: manual, cooldown: 1s, startup_grace: 3s}}
services:
  shop:
    records:
      - {{provider: lab, zone: example.test, name: {NAME}, type: A, ttl: 30}}
    targets:
      - name: primary
        location: cloud-a
        values: [{primary.host}]
        probes: [{{type: http, url: "{primary.url}"}}]
      - name: secondary
        location: cloud-b
        values: [{secondary.host}]
        probes: [{{type: http, url: "{secondary.url}"}}]
"""


class Daemon:
    """`failover run` in a subprocess; its log goes to `workdir/daemon.log` (not the tmpfs)."""

    def __init__(self, workdir: Path, config: str, metrics_port: int) -> None:
        self.workdir = workdir
        self.config = workdir / "failover.yaml"
        self.config.write_text(config)
        self.metrics_port = metrics_port
        self.socket = workdir / "admin.sock"
        self.log = workdir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True) -> Daemon:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "failover", "run", "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        if wait_ready:
            wait_until(lambda: self.readyz()[0] == 200, 30, "the daemon to be ready")
        return self

    def _get(self, path: str) -> tuple[int, str]:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}: {self.log.read_text()}")
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def readyz(self) -> tuple[int, str]:
        return self._get("/readyz")

    def healthz(self) -> tuple[int, str]:
        return self._get("/healthz")

    def metrics(self) -> str:
        return self._get("/metrics")[1]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "failover", *args, "--socket", str(self.socket)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


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


@contextlib.contextmanager
def targets(primary_host: str, secondary_host: str) -> Iterator[tuple[TargetServer, TargetServer]]:
    primary = TargetServer(primary_host).start()
    secondary = TargetServer(secondary_host).start()
    try:
        yield primary, secondary
    finally:
        primary.close()
        secondary.close()


__all__ = ["NAME", "Daemon", "Tmpfs", "config_text", "free_port", "parse_journal", "targets"]
