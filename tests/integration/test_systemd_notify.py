"""sd_notify from the real daemon to a fake systemd: a unix datagram socket in tmp_path."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from failover.config.loader import load_config
from failover.daemon import Daemon
from tests.support import DaemonProcess, TargetServer, daemon_config, free_port, wait_until


class FakeSystemd:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def received(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def index(self, predicate: Callable[[str], bool], start: int = 0) -> int | None:
        return next((i for i, m in enumerate(self.received()) if i >= start and predicate(m)), None)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(tmp_path / "notify.sock")
    try:
        yield fake
    finally:
        fake.close()


def test_ready_status_watchdog_reload_and_stopping(tmp_path: Path, systemd: FakeSystemd) -> None:
    primary = TargetServer("127.0.0.41").start()
    secondary = TargetServer("127.0.0.42").start()
    metrics_port = free_port()
    config = daemon_config(
        tmp_path, primary, secondary, dns_port=free_port(), metrics_port=metrics_port
    )
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000"}
    daemon = DaemonProcess(config, metrics_port, tmp_path / "admin.sock", env=env)
    try:
        daemon.start()
        ready = wait_until(
            lambda: systemd.index(lambda m: m.startswith("READY=1")) is not None, 20, "READY=1"
        )
        assert ready
        first = systemd.received()[systemd.index(lambda m: m.startswith("READY=1")) or 0]
        assert "\nSTATUS=1 services, " in first
        wait_until(lambda: systemd.received().count("WATCHDOG=1") >= 3, 20, "watchdog pings")
        wait_until(
            lambda: any(
                m == "STATUS=1 services, 0 failed over, 0 alarms" for m in systemd.received()
            ),
            20,
            "a STATUS line once the records are read back",
        )

        assert daemon.proc is not None
        mark = len(systemd.received())
        daemon.proc.send_signal(signal.SIGHUP)
        reloading = wait_until(
            lambda: systemd.index(lambda m: m.startswith("RELOADING=1\nMONOTONIC_USEC="), mark),
            20,
            "RELOADING=1",
        )
        wait_until(
            lambda: systemd.index(lambda m: m.startswith("READY=1"), reloading + 1) is not None,
            20,
            "READY=1 after the reload",
        )
        assert daemon.stop() == 0
        assert systemd.received()[-1] == "STOPPING=1"  # and no ping after it
    finally:
        daemon.stop()
        primary.close()
        secondary.close()


async def test_a_stuck_engine_stops_the_watchdog_pings(
    tmp_path: Path, systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hold the engine's lock, as a deadlocked cycle would: pings stop, then resume."""
    primary = TargetServer("127.0.0.43").start()
    secondary = TargetServer("127.0.0.44").start()
    try:
        path = daemon_config(tmp_path, primary, secondary, dns_port=0, metrics_port=0)
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
        monkeypatch.setenv("WATCHDOG_USEC", "100000")
        daemon = Daemon(load_config(path))
        await daemon.start()
        try:
            engine = daemon.engine
            assert engine is not None
            monkeypatch.setattr(engine, "stall_limit", lambda: 1.5)  # not 61 s of provider reads
            daemon.serving()
            watchdog = daemon.watchdog
            assert watchdog is not None
            await until(lambda: watchdog.pings >= 3, systemd)
            async with engine.lock:  # the loop cannot cycle any more
                missed = watchdog.missed
                await until(lambda: watchdog.missed >= missed + 3, systemd)
                pings, received = watchdog.pings, systemd.received().count("WATCHDOG=1")
                await until(lambda: watchdog.missed >= missed + 6, systemd)
                assert watchdog.pings == pings
                assert systemd.received().count("WATCHDOG=1") == received
                assert not engine.alive()
            await until(lambda: watchdog.pings > pings, systemd)
            assert engine.alive()
        finally:
            await daemon.stop()
        assert "WATCHDOG=1" in systemd.received()
    finally:  # TargetServer.close runs its own loop: not from inside this one
        await asyncio.to_thread(primary.close)
        await asyncio.to_thread(secondary.close)


async def until(predicate: Callable[[], bool], systemd: FakeSystemd | None = None) -> None:
    for _ in range(3000):
        if systemd is not None:
            systemd.received()  # drain, as systemd would
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")
