"""Which event loop the daemon runs on: uvloop when installed (the `fast` extra), else asyncio's.

Why: at thousands of probes per second most of the prober's CPU is the event loop's own work
(sockets, callbacks, timers); uvloop does it in C for a good share of that. It stays optional:
asyncio's loop is the fallback, and `FAILOVER_EVENT_LOOP=asyncio` forces it (to rule uvloop out
when chasing a problem), `=uvloop` demands it (an error if it is not installed).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

ENV = "FAILOVER_EVENT_LOOP"
SWITCH_INTERVAL = 0.0005  # seconds a thread keeps the GIL while another waits (Python: 0.005)
CHOICES = ("auto", "uvloop", "asyncio")

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class EventLoopError(ValueError):
    """The requested event loop cannot be had; the message says how to fix it."""


def choose(wanted: str | None = None) -> tuple[str, LoopFactory | None]:
    """(name, factory) for `wanted` (default: $FAILOVER_EVENT_LOOP, else auto); a None factory
    means asyncio's default loop. Raises EventLoopError for a bad value or a missing uvloop."""
    value = (wanted if wanted is not None else os.environ.get(ENV, "")).strip().lower() or "auto"
    if value not in CHOICES:
        raise EventLoopError(f"{ENV}={value}: expected one of {', '.join(CHOICES)}")
    if value == "asyncio":
        return "asyncio", None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if value == "uvloop":
            raise EventLoopError(
                f"{ENV}=uvloop but uvloop is not installed: pip install 'failover[fast]'"
                f" (or unset {ENV} to fall back to asyncio's loop)"
            ) from None
        return "asyncio", None
    factory: LoopFactory = uvloop.new_event_loop
    return "uvloop", factory


def favour_the_loop() -> None:
    """Background threads (the `/metrics` render, journal writes, provider SDK calls) hand the
    GIL back to the event loop every 0.5 ms instead of every 5 ms. At 10,000 services a scrape's
    render held the loop off for over a second at a time: probes ran late and the local-fault
    guard held automation for nothing. The daemon alone calls it (`failover run`)."""
    sys.setswitchinterval(SWITCH_INTERVAL)


def run(coro: Coroutine[Any, Any, T], factory: LoopFactory | None) -> T:
    """`asyncio.run(coro)` on the loop `factory` makes (None: asyncio's default)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def running_loop_name() -> str:
    """`uvloop` or `asyncio`: what the running loop is (for logs and status); `none` when
    called outside a running loop."""
    try:
        module = type(asyncio.get_running_loop()).__module__
    except RuntimeError:
        return "none"
    return "uvloop" if module.startswith("uvloop") else "asyncio"
