"""The probe process: `python -m failover.probes.child`, started by the daemon
(`instance.probe_process: true`, see `probes.remote`).

Why a process: at 10,000 services the daemon's event loop is saturated from the first
decision of a mass failover to the last verification, and about half of its work was the
probes' (sockets, connects, uvloop's callbacks). A thread would not help (the busy loop keeps
the GIL: measured, probes starved and timed out, false DOWNs); a process gives the loop back
entirely (`bench/probe_offload.py`).

The child runs the same `ProbeScheduler` as the in-loop mode. It speaks frames on two pipes:
length-prefixed pickles (`write_frame`, `read_frame`), between two processes of the same
installation, never over a network.

- stdin, from the daemon: `("jobs", generation, [ProbeJob, ...])`, the whole job list each time
  (start and every reload). Probes still wanted keep running undisturbed (`set_jobs`).
- stdout, to the daemon: `("results", [(generation, job key, ProbeResult, finished_at), ...],
  [lag, ...])` every `FLUSH` seconds while results come, and at least every `HEARTBEAT`
  seconds (an empty one), so a hung child can be told from an idle one.

Its lifetime is the daemon's: it ignores SIGINT and SIGTERM (a Ctrl-C or a systemd stop reaches
the whole process group; the daemon shuts down in order and then closes the pipe) and exits
when its stdin ends, so a daemon killed with -9 takes its probes with it. Anything that would
print to stdout goes to stderr: fd 1 carries frames only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pickle
import signal
import struct
import sys
from typing import Any

from failover import eventloop, logs

log = logging.getLogger("failover.probes.child")

FLUSH = 0.01
"""Seconds results wait to be sent together (2,000 results/s: ~20 per frame)."""
HEARTBEAT = 1.0
"""A frame at least this often, results or not."""
MAX_BACKLOG = 16 * 1024 * 1024
"""Bytes of unsent frames above which results are dropped (the daemon is frozen or stuck:
what the probes saw minutes ago is worth nothing, and memory must not grow without bound)."""
MAX_FRAME = 256 * 1024 * 1024
_HEADER = struct.Struct(">I")


def encode_frame(message: object) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next message, or None at the end of the stream (also mid-frame: the writer died)."""
    try:
        header = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        if size > MAX_FRAME:
            raise ValueError(f"probe process frame of {size} bytes: the stream is corrupt")
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
    return pickle.loads(body)


class _Outbox:
    """Results and lags gathered for the next frame; sent at once after `FLUSH`."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport
        self._results: list[tuple[int, tuple[str, str, str], Any, float]] = []
        self._lags: list[float] = []
        self._timer: asyncio.TimerHandle | None = None
        self.dropped = 0

    def result(self, generation: int, key: tuple[str, str, str], result: Any, at: float) -> None:
        self._results.append((generation, key, result, at))
        self._soon()

    def lag(self, lag: float) -> None:
        self._lags.append(lag)
        self._soon()

    def _soon(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH, self.flush)

    def flush(self) -> None:
        self._timer = None
        results, lags, self._results, self._lags = self._results, self._lags, [], []
        if self._transport.is_closing():
            return
        if self._transport.get_write_buffer_size() > MAX_BACKLOG:
            if not self.dropped:
                log.warning("the daemon reads no probe results: dropping them until it does")
            self.dropped += len(results)
            results, lags = [], []
        self._transport.write(encode_frame(("results", results, lags)))


async def serve(stdin: asyncio.StreamReader, transport: asyncio.WriteTransport) -> None:
    """Run probes for the job lists read from `stdin` until it ends."""
    from failover.probes.scheduler import ProbeJob, ProbeScheduler

    outbox = _Outbox(transport)
    generation = 0
    scheduler: ProbeScheduler | None = None

    def on_result(job: ProbeJob, result: Any, finished_at: float) -> None:
        outbox.result(generation, job.key, result, finished_at)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            outbox.flush()

    beat = asyncio.create_task(heartbeat())
    try:
        while (message := await read_frame(stdin)) is not None:
            kind, generation, jobs = message
            if kind != "jobs":
                raise ValueError(f"unknown message {kind!r} from the daemon")
            if scheduler is None:
                scheduler = ProbeScheduler(jobs, on_result, on_lag=outbox.lag)
                await scheduler.start()
            else:
                scheduler.set_jobs(jobs)
    finally:
        beat.cancel()
        if scheduler is not None:
            await scheduler.aclose()


async def _main() -> int:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    frames = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not corrupt a frame
    transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, frames)
    try:
        await serve(stdin, transport)
    except (BrokenPipeError, ConnectionResetError):
        return 0  # the daemon is gone
    finally:
        transport.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="failover-probes", description=__doc__)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--log-format", default="text", choices=logs.FORMATS)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logs.setup(args.log_level, args.log_format)
    _, factory = eventloop.choose()
    try:
        return eventloop.run(_main(), factory)
    except Exception:
        log.exception("the probe process failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
