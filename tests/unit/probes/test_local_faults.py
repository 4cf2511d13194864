"""Probe failures that say nothing about the target: EMFILE & co., and a stalled event loop."""

from __future__ import annotations

import asyncio
import errno
import time

from failover.config.types import HostPort, ProbeConfig, TcpProbeConfig
from failover.model import ProbeResult
from failover.probes.base import ProbeContext
from failover.probes.net import local_fault_of, os_error_reason
from failover.probes.scheduler import ProbeJob, ProbeScheduler


def job(timeout: float = 0.2) -> ProbeJob:
    spec = TcpProbeConfig("t", HostPort("127.0.0.1", 9), interval=1.0, timeout=timeout)
    return ProbeJob("shop", "primary", spec)


def test_resource_errors_are_named_as_local_faults() -> None:
    reason = os_error_reason(OSError(errno.EMFILE, "Too many open files"))
    assert reason == "local fault (emfile): too many open files"
    assert local_fault_of(f"no answer from 1.2.3.4 (udp): {reason}") == "emfile"
    assert local_fault_of("[Errno 105] No buffer space available") == "enobufs"
    assert local_fault_of(os_error_reason(ConnectionRefusedError(errno.ECONNREFUSED, ""))) is None


async def test_a_probe_failing_with_emfile_is_marked_local() -> None:
    async def starved(_spec: ProbeConfig, _ctx: ProbeContext) -> ProbeResult:
        raise OSError(errno.EMFILE, "Too many open files")

    async def reported(_spec: ProbeConfig, _ctx: ProbeContext) -> ProbeResult:
        return ProbeResult(False, os_error_reason(OSError(errno.ENFILE, "x")), 0.001)

    for probe, kind in ((starved, "emfile"), (reported, "enfile")):
        sched = ProbeScheduler([job()], lambda *_: None, registry={"tcp": probe})
        [(_, result)] = await sched.run_once()
        assert not result.ok
        assert result.detail["local_fault"] == kind


async def test_a_timeout_while_the_loop_stalled_is_local_and_a_plain_one_is_not() -> None:
    async def blocks_the_loop(_spec: ProbeConfig, _ctx: ProbeContext) -> ProbeResult:
        time.sleep(0.4)  # noqa: ASYNC251 -- the point: the loop is held, the deadline fires late
        await asyncio.sleep(1)
        return ProbeResult(True, "ok", 0.0)

    async def slow_target(_spec: ProbeConfig, _ctx: ProbeContext) -> ProbeResult:
        await asyncio.sleep(1)
        return ProbeResult(True, "ok", 0.0)

    results = {}
    for name, probe in (("stall", blocks_the_loop), ("slow", slow_target)):
        sched = ProbeScheduler([job()], lambda *_: None, registry={"tcp": probe})
        sched.watch.start()
        try:
            [(_, results[name])] = await sched.run_once()
        finally:
            await sched.watch.aclose()
    assert results["stall"].detail.get("local_fault") == "loop_lag"
    assert "event loop stalled" in results["stall"].reason
    assert "local_fault" not in results["slow"].detail
    assert results["slow"].reason.startswith("timeout after 200ms")
