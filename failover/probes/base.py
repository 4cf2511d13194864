"""The probe signature. A probe never enforces its own deadline: the caller owns timeouts.

A probe is `async (spec, ctx) -> ProbeResult`. `ctx` carries what every run may share (the HTTP
session, the TLS context cache) and `ctx.run`, the progress of this one run: the probe calls
`ctx.run.enter(phase)` as it moves from phase to phase (`resolve`, `connect`, `tls`,
`first_byte`, `transfer`…), so the caller can say where a run was when it cancelled it
(`timeout after 500ms in tls`) and report the time spent in each phase so far. Give each run its
own `ProbeRun` with `ctx.for_run()`; a probe that never calls `enter` still works, its timeouts
just name no phase.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from failover.config.types import ProbeConfig
from failover.model import ProbeResult
from failover.tls import TlsContextCache


class ProbeRun:
    """Progress of one probe run: the phase in progress and the seconds spent in each phase.

    Phase durations add up when a phase is entered again (an HTTP redirect opens a second
    connection: `connect` is the sum over both). Only the probe writes; anyone may read.
    """

    __slots__ = ("_phase_started", "_started", "detail", "phase", "timings")

    def __init__(self) -> None:
        self.phase: str | None = None
        """The phase in progress; None before the first `enter` and after `finish`."""
        self.timings: dict[str, float] = {}
        """Seconds spent in each finished phase (and `total` once finished)."""
        self.detail: dict[str, str | int | float] = {}
        """Facts learnt on the way (`tls_version`, `cert_expiry`), kept even on failure."""
        self._started = self._phase_started = time.monotonic()

    def __repr__(self) -> str:
        return f"ProbeRun(phase={self.phase!r}, timings={self.timings!r})"

    def start(self, phase: str) -> None:
        """Restart the clock and open the first phase (a probe calls this first)."""
        self.timings.clear()
        self.detail.clear()
        self._started = self._phase_started = time.monotonic()
        self.phase = phase

    def enter(self, phase: str | None) -> None:
        """Close the phase in progress (adding its duration) and open `phase` (None: none)."""
        now = time.monotonic()
        if self.phase is not None:
            self.timings[self.phase] = self.timings.get(self.phase, 0.0) + now - self._phase_started
        self.phase, self._phase_started = phase, now

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def finish(self) -> float:
        """Close the phase in progress, record `total` and return it."""
        self.enter(None)
        self.timings["total"] = total = time.monotonic() - self._started
        return total

    def snapshot(self) -> dict[str, float]:
        """The timings so far, the phase in progress counted up to now, and `total` (for a
        caller that cancelled the run)."""
        now = time.monotonic()
        timings = dict(self.timings)
        if self.phase is not None:
            timings[self.phase] = timings.get(self.phase, 0.0) + now - self._phase_started
        timings["total"] = now - self._started
        return timings


@dataclass(slots=True)
class ProbeContext:
    """What probe runs share (one per scheduler), and the progress of the current run."""

    http: aiohttp.ClientSession
    tls: TlsContextCache = field(default_factory=TlsContextCache)
    """SSL contexts, built off the event loop once per distinct TLS settings."""
    run: ProbeRun = field(default_factory=ProbeRun)
    """This run's progress; `for_run()` gives each run its own."""
    lean_http: bool = True
    """HTTP(S) hops take the lean path (`probes.httpwire`) rather than aiohttp's session."""

    def for_run(self) -> ProbeContext:
        """A context for one run: the same shared resources, a fresh `ProbeRun` (built directly,
        not with `dataclasses.replace`: this runs once per probe)."""
        return ProbeContext(self.http, self.tls, ProbeRun(), self.lean_http)


ProbeFn = Callable[[ProbeConfig, ProbeContext], Awaitable[ProbeResult]]
