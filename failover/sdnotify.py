"""systemd's notification protocol (`Type=notify`), without a dependency: one datagram per message.

The daemon tells systemd when it is ready (READY=1), reloading (RELOADING=1 with
MONOTONIC_USEC, then READY=1 again), stopping (STOPPING=1), and a one-line STATUS that
`systemctl status` shows. With `WatchdogSec=`, `Watchdog` pings (WATCHDOG=1) from the event
loop every half period, and only while `alive()` says the decision loop is making progress: a
blocked event loop sends nothing because the ping runs on it, and a stuck engine stops the
pings on purpose, so systemd kills and restarts the daemon in both cases.

Outside systemd (`$NOTIFY_SOCKET` unset) every call is a no-op. A failed send is logged once
and never raised: a notification must not take the daemon down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("failover.sdnotify")


def _address(raw: str) -> str | None:
    """`/run/systemd/notify` or `@abstract` (Linux abstract namespace); other kinds unsupported."""
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    return None


class SystemdNotifier:
    """Sends notifications to `$NOTIFY_SOCKET`; does nothing when it is unset."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = _address(raw) if raw else None
        if raw and self.address is None:
            log.warning("NOTIFY_SOCKET=%s is not a unix socket path; not notifying systemd", raw)
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """One datagram of `KEY=value` lines; True when systemd got it."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %s: %s", self.address.lstrip("\0"), exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        """RELOADING=1 with the CLOCK_MONOTONIC time systemd (>= 253) matches against."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of `$WATCHDOG_USEC`), or None when no watchdog applies to
    this process (`$WATCHDOG_PID` names another one, as after a fork)."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000


class Watchdog:
    """Pings every `interval` while `alive()`; refreshes STATUS when `status()` changes."""

    def __init__(
        self,
        notifier: SystemdNotifier,
        interval: float | None,
        alive: Callable[[], bool],
        status: Callable[[], str],
        *,
        status_every: float = 1.0,
    ) -> None:
        self.notifier = notifier
        self.interval = interval
        self.alive = alive
        self.status = status
        self.status_every = status_every
        self.pings = 0
        self.missed = 0  # pings withheld because the decision loop was not alive
        self._last_status = ""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.notifier.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="sd-watchdog")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def refresh_status(self) -> None:
        text = self.status()
        if text != self._last_status and self.notifier.status(text):
            self._last_status = text

    async def _run(self) -> None:
        step = min(self.status_every, self.interval) if self.interval else self.status_every
        next_ping, streak = time.monotonic(), 0
        while True:
            self.refresh_status()
            if self.interval is not None and time.monotonic() >= next_ping:
                next_ping = time.monotonic() + self.interval
                if self.alive():
                    self.notifier.send("WATCHDOG=1")
                    self.pings += 1
                    streak = 0
                else:
                    self.missed += 1
                    streak += 1
                    if streak == 1:
                        log.error(
                            "decision loop stalled: withholding the systemd watchdog ping so "
                            "that systemd restarts the daemon"
                        )
            await asyncio.sleep(step)
