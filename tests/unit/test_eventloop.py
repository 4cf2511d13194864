"""Choosing the daemon's event loop: uvloop when installed, asyncio's as the fallback."""

from __future__ import annotations

import asyncio
import sys

import pytest

from failover import eventloop


async def _name() -> str:
    return eventloop.running_loop_name()


def test_auto_picks_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.delenv(eventloop.ENV, raising=False)
    name, factory = eventloop.choose()
    assert name == "uvloop" and factory is not None
    assert eventloop.run(_name(), factory) == "uvloop"


def test_asyncio_is_forced_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "asyncio")
    name, factory = eventloop.choose()
    assert (name, factory) == ("asyncio", None)
    assert eventloop.run(_name(), factory) == "asyncio"


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    assert eventloop.choose("auto") == ("asyncio", None)
    assert eventloop.choose("") == ("asyncio", None)


def test_uvloop_demanded_but_missing_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(eventloop.EventLoopError, match=r"pip install 'failover\[fast\]'"):
        eventloop.choose("uvloop")


def test_bad_value_names_the_choices() -> None:
    with pytest.raises(eventloop.EventLoopError, match="expected one of auto, uvloop, asyncio"):
        eventloop.choose("tokio")


def test_running_loop_name_of_the_default_loop() -> None:
    assert asyncio.run(_name()) == "asyncio"


def test_running_loop_name_outside_a_loop() -> None:
    assert eventloop.running_loop_name() == "none"


def test_the_daemon_favours_the_loop_over_threads() -> None:
    before = sys.getswitchinterval()
    try:
        eventloop.favour_the_loop()
        assert sys.getswitchinterval() == pytest.approx(eventloop.SWITCH_INTERVAL)
        assert before > eventloop.SWITCH_INTERVAL  # Python's default is 5 ms
    finally:
        sys.setswitchinterval(before)
