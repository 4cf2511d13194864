"""Listeners that cannot starve the daemon: bounded connections, idle and read time, fd budget.

Why: the admin and metrics ports accept connections before any token is checked. Unbounded,
1,100 idle connections ate every file descriptor under systemd's default limit: probes failed
with EMFILE, the unix socket stopped answering, and the daemon judged targets on its own
starvation. So at start the soft RLIMIT_NOFILE is raised to the hard limit, a reserve is kept
for probes, providers and the journal, and each listener gets a connection cap that fits in
what is left. At the cap, a new connection resets the oldest one (a flood of clients holding
connections cannot lock a health check or an operator out); a connection
that does not complete a request within `IDLE_TIMEOUT` (idle keep-alive, slow headers) is
closed by aiohttp's keep-alive timer, which runs from the moment the connection is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from failover.config.types import Config

log = logging.getLogger("failover.listeners")

IDLE_TIMEOUT = 10.0  # seconds to send a complete request head, from accept or the last response
BODY_TIMEOUT = 10.0  # seconds to send a request body once its head arrived (admin.py)
LINGER = 1.0  # seconds aiohttp keeps draining an unread body after answering (its default: 10)
DEFAULT_CAP = 1024  # connections per listener when file descriptors are plentiful
MIN_CAP = 4  # below this a listener is useless; the limit is then too low (warned)
BASE_RESERVE = 64  # stdio, epoll, journal, state file and lock, thread pool, resolver, logs
PER_PROBE = 2  # a probe in flight: its socket, and a second address family (happy eyeballs)
PER_PROVIDER = 16  # an API client's connection pool, DNS verification queries
PROBE_CONCURRENCY = 256  # ProbeScheduler's default bound on probes in flight
WARN_EVERY = 10.0  # seconds between two warnings of a full listener
KERNEL_BACKLOG = 128  # connections the kernel queues for accept (they cost us no descriptor)


@dataclass(frozen=True)
class FdBudget:
    """How the file descriptors are shared: `reserve` never goes to listeners."""

    soft: int
    hard: int
    reserve: int
    caps: dict[str, int] = field(default_factory=dict)  # per listener name
    warning: str = ""


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one (no privilege needed); return both."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:  # e.g. above fs.nr_open
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, wanted, exc)
    return soft, hard


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 16


def plan_budget(
    soft: int, hard: int, probes: int, providers: int, listeners: list[str], in_use: int
) -> FdBudget:
    """Caps for `listeners` that leave the reserve alone. Pure: the limits are parameters."""
    limit = soft if soft != resource.RLIM_INFINITY else 1 << 20
    reserve = BASE_RESERVE + PER_PROBE * min(probes, PROBE_CONCURRENCY) + PER_PROVIDER * providers
    spare = max(0, limit - reserve - in_use)
    share = spare // max(1, len(listeners))
    caps = {name: max(MIN_CAP, min(DEFAULT_CAP, share)) for name in listeners}
    warning = ""
    if share < DEFAULT_CAP:
        wanted = reserve + in_use + DEFAULT_CAP * len(listeners)
        warning = (
            f"open-files limit is low: {soft} (hard {hard}) for {probes} probes and {providers} "
            f"providers; {reserve} are kept for probes, providers and the journal, leaving "
            f"{', '.join(f'{n} {c}' for n, c in caps.items())} connections to the listeners"
            f"{' (the reserve is not safe)' if share < MIN_CAP else ''}. "
            f"Raise LimitNOFILE (systemd) or ulimit -n to at least {wanted}"
        )
    return FdBudget(soft, hard, reserve, caps, warning)


def budget_for(config: Config, probes: int) -> FdBudget:
    """At start: raise the limit, cap each listener of `config`, warn when the limit is low."""
    soft, hard = raise_nofile_limit()
    names = ["unix"]
    if config.admin.listen is not None and config.admin.token_file is not None:
        names.append("admin")
    if config.metrics.listen is not None:
        names.append("metrics")
    providers = len(config.providers) + len(config.notifications)
    budget = plan_budget(soft, hard, probes, providers, names, open_fds())
    if budget.warning:
        log.warning("%s", budget.warning)
    return budget


class ConnectionGate:
    """One listener's connections, at most `limit`: when a new one arrives at the limit, the
    oldest is reset (whatever it was doing), so a flood of clients that hold connections cannot
    lock out a newcomer such as a health check or an operator, and never costs more than
    `limit` file descriptors."""

    def __init__(
        self, name: str, limit: int, on_evicted: Callable[[str], None] | None = None
    ) -> None:
        self.name = name
        self.limit = limit
        self.evicted = 0
        self._conns: dict[_Counted, None] = {}  # oldest first
        self._on_evicted = on_evicted
        self._warned = float("-inf")

    @property
    def active(self) -> int:
        return len(self._conns)

    @property
    def batch(self) -> int:
        """Connections asyncio accepts in one go (its `backlog`): each may evict one whose
        descriptor is freed only on the next loop iteration, so this bounds the overshoot."""
        return max(MIN_CAP, min(KERNEL_BACKLOG, self.limit // 4))

    def wrap(self, factory: Callable[[], Any]) -> Callable[[], asyncio.BaseProtocol]:
        def make() -> asyncio.BaseProtocol:
            while len(self._conns) >= self.limit:
                self._evict_oldest()
            conn = _Counted(factory(), self)
            self._conns[conn] = None
            return conn

        return make

    def _evict_oldest(self) -> None:
        oldest = next(iter(self._conns))
        del self._conns[oldest]
        oldest.reset()
        self.evicted += 1
        if self._on_evicted is not None:
            self._on_evicted(self.name)
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning(
                "listener %s is full (%d connections): resetting the oldest for each new one "
                "(%d so far)",
                self.name,
                self.limit,
                self.evicted,
            )

    def released(self, conn: _Counted) -> None:
        self._conns.pop(conn, None)


class _Counted(asyncio.Protocol):
    """Forwards every protocol event to aiohttp's handler; gives the slot back on close."""

    def __init__(self, inner: asyncio.Protocol, gate: ConnectionGate) -> None:
        self._inner = inner
        self._gate = gate
        self._transport: asyncio.BaseTransport | None = None
        self._reset = False

    def reset(self) -> None:
        self._reset = True
        if self._transport is not None:
            self._transport.abort()  # type: ignore[attr-defined]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if self._reset:  # evicted before it was even set up
            transport.abort()  # type: ignore[attr-defined]
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gate.released(self)
        self._transport = None
        self._inner.connection_lost(exc)


async def runner_for(app: web.Application) -> web.AppRunner:
    """An AppRunner whose connections close after `IDLE_TIMEOUT` without a complete request,
    and which drains the unread body of an answered request (a slow sender's) for `LINGER`."""
    runner = web.AppRunner(
        app, access_log=None, keepalive_timeout=IDLE_TIMEOUT, lingering_time=LINGER
    )
    await runner.setup()
    return runner


class GatedTCPSite(web.TCPSite):
    """A TCPSite whose connections pass through a `ConnectionGate`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, gate: ConnectionGate):
        super().__init__(runner, host, port)
        self.gate = gate

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        assert self._runner.server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.gate.wrap(self._runner.server),
            self._host,
            self._port,
            backlog=self.gate.batch,
        )
        _deepen_backlog(self._server)

    @property
    def bound_port(self) -> int:
        sockets = getattr(self._server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else self._port


class GatedUnixSite(web.UnixSite):
    def __init__(self, runner: web.BaseRunner, path: Path, gate: ConnectionGate):
        super().__init__(runner, str(path))
        self.gate = gate

    async def start(self) -> None:
        await web.BaseSite.start(self)
        assert self._runner.server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(
            self.gate.wrap(self._runner.server), str(self._path), backlog=self.gate.batch
        )
        _deepen_backlog(self._server)


def _deepen_backlog(server: asyncio.AbstractServer | None) -> None:
    """asyncio uses one number for the kernel's accept queue and for its accept batch: a small
    queue makes clients' SYNs drop (a connect then hangs a second) when a burst arrives. Listen
    again, on a duplicate of each socket, with a deep queue; the batch stays small."""
    for wrapped in getattr(server, "sockets", None) or ():
        with contextlib.closing(wrapped.dup()) as sock:
            sock.listen(KERNEL_BACKLOG)
