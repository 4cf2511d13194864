"""sd_notify against real unix datagram sockets standing in for systemd."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from failover.sdnotify import SystemdNotifier, Watchdog, watchdog_interval


async def until(predicate: Callable[[], bool]) -> None:
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


class FakeSystemd:
    """A bound datagram socket collecting every notification sent to it."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[FakeSystemd, dict[str, str]]]:
    path = tmp_path / "notify.sock"
    fake = FakeSystemd(str(path))
    try:
        yield fake, {"NOTIFY_SOCKET": str(path)}
    finally:
        fake.close()


def test_ready_status_stopping_reach_the_socket(
    systemd: tuple[FakeSystemd, dict[str, str]],
) -> None:
    fake, env = systemd
    notifier = SystemdNotifier(env)
    assert notifier.ready("2 services, 0 alarms")
    assert notifier.status("1 failed over")
    assert notifier.stopping()
    notifier.close()
    assert fake.drain() == [
        "READY=1\nSTATUS=2 services, 0 alarms",
        "STATUS=1 failed over",
        "STOPPING=1",
    ]


def test_reloading_carries_the_monotonic_clock(
    systemd: tuple[FakeSystemd, dict[str, str]],
) -> None:
    fake, env = systemd
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier = SystemdNotifier(env)
    notifier.reloading()
    notifier.close()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    (message,) = fake.drain()
    lines = message.split("\n")
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=")
    assert before <= int(lines[1].split("=")[1]) <= after


def test_abstract_namespace_socket() -> None:
    name = f"failover-test-{secrets.token_hex(6)}"
    fake = FakeSystemd("\0" + name)
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        notifier.close()
        assert fake.drain() == ["READY=1"]
    finally:
        fake.close()


def test_without_systemd_nothing_is_sent() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert not notifier.ready()


def test_a_missing_socket_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert not notifier.ready()
    assert not notifier.status("x")
    notifier.close()
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1


def test_watchdog_interval_follows_systemd_variables() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    mine = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(mine) == 0.5
    assert watchdog_interval({**mine, "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


async def test_watchdog_pings_only_while_the_loop_is_alive(
    systemd: tuple[FakeSystemd, dict[str, str]],
) -> None:
    fake, env = systemd
    alive = False
    notifier = SystemdNotifier(env)
    watchdog = Watchdog(notifier, 0.02, lambda: alive, lambda: "status")
    watchdog.start()
    try:
        await until(lambda: watchdog.missed >= 5)
        assert "WATCHDOG=1" not in fake.drain()
        assert "STATUS=status" in fake.messages
        alive = True
        await until(lambda: fake.drain().count("WATCHDOG=1") >= 3)
        assert watchdog.pings >= 3
    finally:
        await watchdog.aclose()
        notifier.close()
