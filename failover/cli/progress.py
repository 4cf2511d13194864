"""What a long command shows while it waits: one line on stderr, rewritten in place on a
terminal, plain lines (only when something changed) anywhere else.

Nothing shows during the first second (a quick answer needs no progress). No colour is used,
so `NO_COLOR` has nothing to turn off; control codes are written only to a terminal.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from failover.client import AdminClient, DaemonUnreachable

QUIET_FOR = 1.0  # seconds before the first progress line
POLL = 0.5  # seconds between two looks at the daemon's status


class Progress:
    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.clock = clock
        self.started = clock()
        self._shown = ""  # the line on screen (terminal) or the last state printed (plain)

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def update(self, state: str, detail: str = "") -> None:
        """`state` is what is being waited for; `detail` the part that changes every second
        (elapsed, time left). A pipe gets a line only when `state` changes."""
        if self.elapsed < QUIET_FOR:
            return
        if self.tty:
            text = f"{state} {detail}".rstrip()
            width = shutil.get_terminal_size((100, 20)).columns - 1
            if len(text) > width:
                text = text[: max(width - 1, 0)] + "…"
            self.stream.write("\r\x1b[K" + text)
            self._shown = text
        elif state != self._shown:
            self.stream.write(f"{state} {detail}".rstrip() + "\n")
            self._shown = state
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line that stays (Ctrl-C acknowledged…), printed above the progress line."""
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self._shown = "" if self.tty else self._shown


def seconds(value: float) -> str:
    return f"{value:.0f}s" if value >= 10 else f"{value:.1f}s"


def left_until(when: str | None) -> float | None:
    """Seconds from now until an RFC 3339 time of the daemon (None when absent or unreadable)."""
    if not when:
        return None
    try:
        then = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (then - datetime.now(UTC)).total_seconds())


def dns_wait(svc: dict[str, Any], elapsed: float) -> tuple[str, str]:
    """(state, detail) of a DNS change of one service, per provider, from its status body."""
    parts: dict[str, tuple[int, str]] = {}
    budget = 0.0
    for record in svc.get("records") or []:
        provider = record.get("provider", "?")
        budget = max(budget, record.get("verify_timeout_seconds") or 0.0)
        busy = svc.get("changing") or svc.get("verifying")  # `verified` is the last change's
        if not busy and record.get("verified") is False:
            rank, word = 0, "NOT verified"
        elif not busy and record.get("verified") is True:
            rank, word = 4, "verified"
        elif svc.get("changing") and not record.get("in_sync"):
            rank, word = 1, "waiting for the provider to accept"
        elif svc.get("verifying") and record.get("in_sync"):
            rank, word = 2, "accepted, verifying on its name servers"
        elif record.get("in_sync"):
            rank, word = 3, "in sync"
        else:
            rank, word = 1, record.get("error") or "not in sync yet"
        if provider not in parts or rank < parts[provider][0]:  # several records: the least
            parts[provider] = (rank, word)  # advanced one speaks for the provider
    state = "; ".join(f"{p}: {w}" for p, (_, w) in parts.items()) or "waiting for the daemon"
    deadline = f" of up to {seconds(budget)}" if budget else ""
    return state, f"({seconds(elapsed)}{deadline})"


async def while_waiting(
    work: Awaitable[Any],
    client: AdminClient,
    show: Callable[[dict[str, Any]], tuple[str, str] | None],
    progress: Progress,
) -> Any:
    """Await `work` while showing `show(status body)` every POLL seconds; a status that cannot
    be read just shows nothing new (the work itself reports an unreachable daemon)."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            done, _ = await asyncio.wait([task], timeout=POLL)
            if done:
                break
            if progress.elapsed < QUIET_FOR:
                continue
            try:
                status, body = await client.call("GET", "/v1/status")
            except DaemonUnreachable:
                continue
            shown = show(body) if status == 200 and isinstance(body, dict) else None
            if shown is not None:
                progress.update(*shown)
        return task.result()
    finally:
        if not task.done():
            task.cancel()
        progress.clear()
