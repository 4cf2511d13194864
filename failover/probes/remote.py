"""The daemon's side of the probe process (`instance.probe_process: true`; see `probes.child`).

`ProbeProcess` has the scheduler's interface for a running daemon (`jobs`, `distinct`, `start`,
`set_jobs`, `aclose`; `run --once` probes in the loop) and the same callbacks (`on_result`,
`on_lag`), so the engine does not know where the probes run.

What it guards against:

- A result of an old job list (in flight while a reload's new list reaches the child) is
  taken only when the job it names still has the same probe spec; a spec a reload changed
  never gets a result the old spec produced.
- The child dies (crash, OOM killer, kill -9): it is started again after a back-off (0.5 s,
  doubling, at most `MAX_BACKOFF`), with the current job list; each death is logged. One that
  keeps dying (`MAX_DEATHS` within `DEATH_WINDOW`) is a fault of this instance: `on_failure`
  is called (the daemon exits 1: systemd restarts it, and with several instances another one
  leads meanwhile). Health stays what the last results said for that second or so.
- The child hangs (alive, no frame for `SILENCE`, though it sends one at least every second):
  it is killed and handled as a death.
- The daemon dies: the child's stdin ends and it exits (see `probes.child`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import failover
from failover.logs import JsonFormatter
from failover.model import ProbeResult
from failover.probes.child import encode_frame, read_frame
from failover.probes.scheduler import JobKey, LagCallback, ProbeJob, ProbeScheduler, ResultCallback

log = logging.getLogger("failover.probes")

MAX_BACKOFF = 10.0
MAX_DEATHS = 5
DEATH_WINDOW = 60.0
SILENCE = 10.0
"""Seconds without a frame after which the child counts as hung (it sends one every second)."""
STALL = 0.5
"""A watch tick this much late means the daemon's own loop stalled (see `_watch`)."""
KEEP_GENERATIONS = 4
CLOSE_WAIT = 5.0


class ProbeProcess:
    """Probes run in a child process; results come back to `on_result` in this loop."""

    def __init__(
        self,
        jobs: Iterable[ProbeJob],
        on_result: ResultCallback,
        *,
        on_lag: LagCallback | None = None,
        on_failure: Callable[[str], None] | None = None,
        on_restart: Callable[[], None] | None = None,
        command: list[str] | None = None,
        silence: float = SILENCE,
    ) -> None:
        # validates the list and answers jobs/distinct; never started here
        self._local = ProbeScheduler(jobs, on_result, on_lag=on_lag)
        self._on_result = on_result
        self._on_lag = on_lag
        self._on_failure = on_failure
        self._on_restart = on_restart
        self._silence = silence
        self._command = command or [sys.executable, "-m", "failover.probes.child", *_log_args()]
        self._generation = 0
        self._lists: dict[int, dict[JobKey, ProbeJob]] = {0: _by_key(self._local.jobs)}
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._spawn_error = ""
        self.deaths: deque[float] = deque(maxlen=MAX_DEATHS)
        self.started = 0
        """How many child processes were started (restarts included)."""
        self.last_exit: str | None = None
        """Why the last child ended (`exited (exit code -9)`), None while the first runs."""

    @property
    def jobs(self) -> tuple[ProbeJob, ...]:
        return self._local.jobs

    @property
    def distinct(self) -> int:
        return self._local.distinct

    def describe(self) -> dict[str, Any]:
        """For `status`: the child's pid (None while it is being started again), how many
        times it was started again, and why the last one ended."""
        return {"pid": self.pid, "restarts": max(0, self.started - 1), "last_exit": self.last_exit}

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def spawn(self) -> None:
        """Start the child without jobs: it imports the probes while the daemon starts (a
        third of a second at start-up that the first results would otherwise wait for)."""
        if self._proc is None:
            await self._spawn()

    async def start(self) -> None:
        """Start the child if `spawn` did not (an OSError when it cannot be), give it the
        jobs, and watch over it."""
        if self._task is not None:
            raise RuntimeError("probe process already started")
        await self.spawn()
        self._send_jobs()
        self._task = asyncio.create_task(self._supervise(), name="probe process")
        self._task.add_done_callback(self._supervisor_ended)

    def _supervisor_ended(self, task: asyncio.Task[None]) -> None:
        """A supervisor that ended on a bug would leave the daemon deciding on old results."""
        if task.cancelled() or task.exception() is None:
            return
        reason = f"the probe process supervisor failed: {task.exception()!r}"
        log.error("%s", reason, exc_info=task.exception())
        if self._on_failure is not None:
            self._on_failure(reason)

    def set_jobs(self, jobs: Iterable[ProbeJob]) -> None:
        """Swap in a new job list (ValueError, changing nothing, when it is invalid)."""
        self._local.set_jobs(jobs)
        self._generation += 1
        self._lists[self._generation] = _by_key(self._local.jobs)
        self._lists.pop(self._generation - KEEP_GENERATIONS, None)
        self._send_jobs()

    async def aclose(self) -> None:
        """Close the child's stdin (it stops its probes and exits); kill it if it lingers."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._reap()

    # ------------------------------------------------------------------ the child

    async def _spawn(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self._command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=_child_env(),
        )
        self.started += 1
        log.info(
            "probe process started (pid %d, %d distinct probes)", self._proc.pid, self.distinct
        )

    def _send_jobs(self) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        message = ("jobs", self._generation, list(self._local.jobs))
        proc.stdin.write(encode_frame(message))

    async def _reap(self) -> None:
        """Close the child's stdin and wait for it (kill it after `CLOSE_WAIT`). It stays
        `_proc` until it has exited: when `aclose` cancels the supervisor in the middle of a
        restart's reap, its own reap finishes the job instead of leaving a child unwaited."""
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            async with asyncio.timeout(CLOSE_WAIT):
                await proc.wait()
        except TimeoutError:
            log.warning("the probe process did not exit within %gs; killing it", CLOSE_WAIT)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._proc is proc:
            self._proc = None

    async def _supervise(self) -> None:
        backoff = 0.5
        while True:
            began = time.monotonic()
            why = await self._pump() if self._proc is not None else self._spawn_error
            if self._closing:
                return
            proc = self._proc
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await self._reap()
            code = proc.returncode if proc is not None else None
            self.last_exit = f"{why} (exit code {code})"
            now = time.monotonic()
            if now - began > DEATH_WINDOW:
                backoff = 0.5
            self.deaths.append(now)
            if len(self.deaths) == MAX_DEATHS and now - self.deaths[0] <= DEATH_WINDOW:
                reason = (
                    f"the probe process died {MAX_DEATHS} times within {DEATH_WINDOW:g}s"
                    f" (last: {why}, exit code {code}); this instance cannot probe"
                )
                log.error("%s", reason)
                if self._on_failure is not None:
                    self._on_failure(reason)
                return
            log.error(
                "the probe process %s (exit code %s); starting it again in %gs",
                why,
                code,
                backoff,
            )
            await asyncio.sleep(backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)
            try:
                await self._spawn()
                self._send_jobs()
            except OSError as exc:  # no memory, no pids, the interpreter gone after an upgrade
                self._spawn_error = f"could not be started ({exc})"
                continue
            if self._on_restart is not None:
                self._on_restart()

    async def _pump(self) -> str:
        """Deliver the child's results until it ends or hangs; says which."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        heard = [time.monotonic()]  # when the last frame came
        watch = asyncio.create_task(self._watch(proc, heard), name="probe process watch")
        try:
            while True:
                try:
                    message = await read_frame(proc.stdout)
                    if message is None:
                        return "exited" if not watch.done() else watch.result()
                    kind, results, lags = message
                    if kind != "results":
                        raise ValueError(f"unknown message {kind!r}")
                except Exception as exc:  # a corrupt frame: the stream cannot be trusted
                    return f"sent an unreadable frame ({type(exc).__name__})"
                heard[0] = time.monotonic()
                self._deliver(results, lags)
        finally:
            watch.cancel()

    async def _watch(self, proc: asyncio.subprocess.Process, heard: list[float]) -> str:
        """Kill a child that sent nothing for `silence` seconds while this loop ran freely.

        Not a timeout on the read: after this loop itself stalls (a mass failover's lock held
        for seconds), frames wait in the pipe and a timeout would fire before the read that
        drains them, killing a healthy child. A tick that came late says the loop stalled:
        the frames get read first, then the silence is judged again."""
        tick = min(0.5, self._silence / 4)
        while True:
            before = time.monotonic()
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now - before > tick + STALL:
                continue  # this loop stalled: what the child sent meanwhile is still unread
            if now - heard[0] >= self._silence:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                return f"sent nothing for {self._silence:g}s (hung)"

    def _deliver(
        self, results: list[tuple[int, JobKey, ProbeResult, float]], lags: list[float]
    ) -> None:
        current = self._lists[self._generation]
        for generation, key, result, finished_at in results:
            job = current.get(key)
            if job is None:
                continue
            if generation != self._generation:
                old = self._lists.get(generation, {}).get(key)
                if old is None or old.spec != job.spec:
                    continue  # produced by a spec this job no longer has
            try:
                self._on_result(job, result, finished_at)
            except Exception:
                log.exception("result callback failed for %s", "/".join(key))
        if self._on_lag is not None:
            for lag in lags:
                self._on_lag(lag)


def _by_key(jobs: Iterable[ProbeJob]) -> dict[JobKey, ProbeJob]:
    return {job.key: job for job in jobs}


def _child_env() -> dict[str, str]:
    """The daemon's environment, with the directory this `failover` was imported from first on
    the path: the child runs the same code as the daemon, installed or from a checkout."""
    root = str(Path(failover.__file__).resolve().parent.parent)
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def _log_args() -> list[str]:
    """The daemon's log level and format, for the child's lines to look like its own."""
    root = logging.getLogger()
    level = logging.getLevelName(root.getEffectiveLevel()).lower()
    json = any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    return ["--log-level", level, "--log-format", "json" if json else "text"]
