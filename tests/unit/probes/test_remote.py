"""`ProbeProcess`: the probes in a real child process, against real local targets. Results
come back to the daemon's loop; a reload's results are never given a spec that did not
produce them; a hung child or one that sends garbage is replaced; a child that keeps dying
is reported."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sys
import time
from pathlib import Path

import pytest

from failover.config.types import HostPort, TcpProbeConfig
from failover.model import ProbeResult
from failover.probes import remote
from failover.probes.child import encode_frame, read_frame
from failover.probes.remote import ProbeProcess
from failover.probes.scheduler import ProbeJob
from tests.support.procs import gone


def tcp_job(port: int, target: str = "primary", interval: float = 0.2) -> ProbeJob:
    spec = TcpProbeConfig("tcp", HostPort("127.0.0.1", port), interval, 0.5)
    return ProbeJob("shop", target, spec)


class Results:
    def __init__(self) -> None:
        self.calls: list[tuple[ProbeJob, ProbeResult]] = []
        self.lags: list[float] = []

    def __call__(self, job: ProbeJob, result: ProbeResult, _at: float) -> None:
        self.calls.append((job, result))

    def of(self, target: str) -> list[bool]:
        return [r.ok for job, r in self.calls if job.target == target]


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_results_of_the_child_reach_the_loop(
    tcp_server: tuple[int, list[int]], closed_port: int
) -> None:
    port, accepted = tcp_server
    results = Results()
    jobs = [tcp_job(port, "primary"), tcp_job(closed_port, "secondary")]
    probes = ProbeProcess(jobs, results, on_lag=results.lags.append)
    await probes.start()
    try:
        await wait_for(
            lambda: len(results.of("primary")) >= 3 and len(results.of("secondary")) >= 3
        )
        assert set(results.of("primary")) == {True} and accepted
        assert set(results.of("secondary")) == {False}
        await wait_for(lambda: results.lags)  # scheduled runs' lags, for the daemon's histogram
        assert probes.pid is not None and probes.distinct == 2
    finally:
        await probes.aclose()
    assert probes.pid is None  # the child left when its stdin closed


async def test_a_reload_never_gives_a_job_a_result_of_its_old_spec(
    tcp_server: tuple[int, list[int]], closed_port: int
) -> None:
    port, _ = tcp_server
    results = Results()
    kept, moved = tcp_job(port, "primary"), tcp_job(port, "secondary")
    probes = ProbeProcess([kept, moved], results)  # not started: deliveries are driven by hand
    moved_now = dataclasses.replace(
        moved, spec=dataclasses.replace(moved.spec, address=HostPort("127.0.0.1", closed_port))
    )
    probes.set_jobs([kept, moved_now])
    up, down = ProbeResult(True, "ok", 0.0), ProbeResult(False, "refused", 0.0)
    probes._deliver(
        [
            (0, kept.key, up, 0.0),  # in flight at the reload, same spec: still true
            (0, moved.key, up, 0.0),  # the old address's answer: not about the new one
            (1, moved.key, down, 0.0),
            (1, ("gone", "x", "tcp"), up, 0.0),  # a job the list no longer has
        ],
        [],
    )
    assert [(job, r.ok) for job, r in results.calls] == [(kept, True), (moved_now, False)]


@pytest.mark.parametrize(
    "script, why",
    [
        ("import time; time.sleep(60)", "sent nothing for 0.5s (hung)"),
        (
            "import sys, time; sys.stdout.buffer.write(b'\\0\\0\\0\\5hello'); sys.stdout.flush();"
            " time.sleep(60)",
            "sent an unreadable frame",
        ),
        (
            "import pickle, struct, sys, time; body = pickle.dumps(('jobs', 1, []));"
            " sys.stdout.buffer.write(struct.pack('>I', len(body)) + body); sys.stdout.flush();"
            " time.sleep(60)",
            "sent an unreadable frame (ValueError)",
        ),
    ],
)
async def test_a_hung_or_garbled_child_is_replaced(
    script: str, why: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote, "CLOSE_WAIT", 0.5)  # it ignores the end of its stdin: killed
    probes = ProbeProcess(
        [tcp_job(9)], Results(), command=[sys.executable, "-c", script], silence=0.5
    )
    await probes.start()
    try:
        first = probes.pid
        await wait_for(lambda: probes.started >= 2)
        assert probes.pid != first
        assert why in caplog.text
    finally:
        await probes.aclose()
    if "hung" in why:  # a garbled one may already be replaced again (and killed) by then
        assert "did not exit within 0.5s; killing it" in caplog.text


async def test_a_reap_cut_short_by_the_close_still_ends_the_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`aclose` cancels the supervisor, which may be waiting for a replaced child to exit:
    the close must still wait for (and kill) that child, not drop it unwaited (a process left
    running, its pipes garbage-collected later as unclosed transports)."""
    monkeypatch.setattr(remote, "CLOSE_WAIT", 0.5)  # it ignores its stdin's end: killed then
    probes = ProbeProcess(
        [tcp_job(9)], Results(), command=[sys.executable, "-c", "import time; time.sleep(60)"]
    )
    await probes.spawn()
    pid = probes.pid
    assert pid is not None
    reaping = asyncio.create_task(probes._reap())  # the supervisor's reap of a restart
    await asyncio.sleep(0.1)
    reaping.cancel()
    await asyncio.gather(reaping, return_exceptions=True)
    await probes.aclose()
    assert gone(pid)


async def test_a_child_that_keeps_dying_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "MAX_BACKOFF", 0.01)
    failures: list[str] = []
    probes = ProbeProcess(
        [tcp_job(9)],
        Results(),
        command=[sys.executable, "-c", "raise SystemExit(3)"],
        on_failure=failures.append,
    )
    await probes.start()
    try:
        await wait_for(lambda: failures, timeout=30)
    finally:
        await probes.aclose()
    assert probes.started == remote.MAX_DEATHS
    # exit code 3, or 255 on asyncio's loop after a uvloop test in the same process (uvloop's
    # SIGCHLD handler outlives its loop and reaps the child first): a test-process artefact
    (failure,) = failures
    assert re.fullmatch(
        r"the probe process died 5 times within 60s \(last: exited, exit code (3|255)\);"
        r" this instance cannot probe",
        failure,
    ), failure


async def test_a_frame_cut_short_reads_as_the_end() -> None:
    reader = asyncio.StreamReader()
    frame = encode_frame(("results", [], [0.1]))
    reader.feed_data(frame + frame[:-1])
    reader.feed_eof()
    assert await read_frame(reader) == ("results", [], [0.1])
    assert await read_frame(reader) is None


async def test_a_child_that_cannot_be_started_again_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(remote, "MAX_BACKOFF", 0.01)
    failures: list[str] = []
    command = [sys.executable, "-c", "raise SystemExit(3)"]
    probes = ProbeProcess([tcp_job(9)], Results(), command=command, on_failure=failures.append)
    await probes.start()
    command[0] = str(tmp_path / "gone")  # the interpreter removed, say by an upgrade
    try:
        await wait_for(lambda: failures, timeout=30)
    finally:
        await probes.aclose()
    (failure,) = failures
    assert "(last: could not be started ([Errno 2] No such file or directory" in failure, failure
    assert probes.started == 1


HEARTBEATS = (
    "import pickle, struct, sys, time\n"
    "body = pickle.dumps(('results', [], []))\n"
    "while True:\n"
    "    sys.stdout.buffer.write(struct.pack('>I', len(body)) + body); sys.stdout.flush()\n"
    "    time.sleep(0.05)\n"
)


async def test_a_stall_of_the_daemons_own_loop_does_not_kill_a_healthy_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loop blocked longer than the silence allowed: the child's frames wait in the pipe
    and are read once the loop runs again; the child is not taken for hung."""
    monkeypatch.setattr(remote, "CLOSE_WAIT", 0.5)  # the stand-in ignores its stdin's end
    probes = ProbeProcess(
        [tcp_job(9)], Results(), command=[sys.executable, "-c", HEARTBEATS], silence=0.3
    )
    await probes.start()
    try:
        await asyncio.sleep(0.3)  # its first frames
        time.sleep(0.9)  # noqa: ASYNC251 - the loop held on purpose, as a long lock hold would
        await asyncio.sleep(0.9)
        assert probes.started == 1 and probes.last_exit is None
    finally:
        await probes.aclose()
