"""asyncio wiring: store, providers, engine, probes, admin and metrics servers, signals.

Start order matters: the state dir is locked first (two daemons must never share it), the
published answer is read back before any probe result can trigger a decision, and the
listeners open last so `readyz` never reports a half-started daemon.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from failover.admin import AdminApi, start_unix_site
from failover.config_types import Config, HostPort
from failover.coord.standalone import StandaloneCoordinator
from failover.engine import TICK, Engine
from failover.metrics import Metrics
from failover.probes.scheduler import ProbeJob, ProbeScheduler
from failover.providers.base import Provider
from failover.providers.registry import create_provider
from failover.store import Store

log = logging.getLogger("failover.daemon")


def probe_jobs(config: Config) -> list[ProbeJob]:
    return [
        ProbeJob(service.name, target.name, spec)
        for service in config.services.values()
        for target in service.targets
        for spec in target.probes
    ]


def provider_zones(config: Config) -> dict[str, set[str]]:
    zones: dict[str, set[str]] = {name: set() for name in config.providers}
    for service in config.services.values():
        for record in service.records:
            zones[record.provider].add(record.zone)
    return zones


def read_token(path: Path) -> str:
    token = path.read_text().strip()
    if not token:
        raise OSError(f"admin token file {path} is empty")
    return token


class Daemon:
    """One running failover instance. `start()` then `wait()`; `stop()` from anywhere."""

    def __init__(self, config: Config, *, dry_run: bool = False) -> None:
        self.config = config
        self.dry_run = dry_run
        self.store = Store(config.instance.state_dir)
        self.metrics = Metrics()
        self.providers: dict[str, Provider] = {}
        self.engine: Engine | None = None
        self.scheduler: ProbeScheduler | None = None
        self.metrics_address: HostPort | None = None
        self._runners: list[web.AppRunner] = []
        self._engine_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._locked = False

    async def start(self, *, schedule_probes: bool = True) -> None:
        self.store.lock()
        self._locked = True
        zones = provider_zones(self.config)
        for name, provider_config in self.config.providers.items():
            provider = create_provider(provider_config, zones[name], self.store)
            provider.on_error = self._error_counter(name)
            await provider.start()
            self.providers[name] = provider
        coord = StandaloneCoordinator(self.config.instance.name, self.store)
        await coord.start()
        self.coord = coord
        engine = Engine(
            self.config, self.store, self.providers, coord, self.metrics, dry_run=self.dry_run
        )
        self.engine = engine
        self.metrics.prime(
            (s.name, ((t.name, (p.name for p in t.probes)) for t in s.targets))
            for s in self.config.services.values()
        )
        await engine.start()
        self.scheduler = ProbeScheduler(
            probe_jobs(self.config),
            engine.on_probe_result,
            on_lag=self.metrics.scheduling_lag.observe,
        )
        if self.config.metrics.listen is not None:
            await self._start_metrics(self.config.metrics.listen)
        api = AdminApi(engine, reload=None)
        self._runners.append(await start_unix_site(api.app(), self.config.admin.socket))
        if self.config.admin.listen is not None and self.config.admin.token_file is not None:
            token = read_token(self.config.admin.token_file)
            runner = web.AppRunner(api.app(token=token), access_log=None)
            await runner.setup()
            listen = self.config.admin.listen
            await web.TCPSite(runner, listen.host, listen.port).start()
            self._runners.append(runner)
        if schedule_probes:
            await self.scheduler.start()
            self._engine_task = asyncio.create_task(engine.run(), name="engine")
        log.info(
            "failover started: instance %s, %d services, admin socket %s%s",
            self.config.instance.name,
            len(self.config.services),
            self.config.admin.socket,
            " (dry-run: no DNS writes)" if self.dry_run else "",
        )

    def _error_counter(self, provider: str) -> Callable[[str], None]:
        def count(kind: str) -> None:
            self.metrics.provider_errors.labels(provider, kind).inc()

        return count

    async def run_once(self) -> None:
        """`run --once`: one probe round, one decision per service, then return."""
        assert self.engine is not None and self.scheduler is not None
        self.engine.single_round = True
        for job, result in await self.scheduler.run_once():
            self.engine.on_probe_result(job, result, time.time())
        await self.engine.cycle()

    async def _start_metrics(self, listen: HostPort) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, listen.host, listen.port)
        await site.start()
        self._runners.append(runner)
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else listen.port
        self.metrics_address = HostPort(listen.host, port)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        """Alive when the engine loop has cycled recently (a stuck loop fails this)."""
        engine = self.engine
        last = engine.last_cycle_at if engine else None
        if engine is not None and self._engine_task is None:
            return web.Response(text="ok\n")
        if last is None or time.time() - last > 5 * TICK + 10:
            return web.Response(status=503, text="engine loop not cycling\n")
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        """Ready once every service's published records have been read back."""
        if self.engine is None or not self.engine.ready:
            return web.Response(status=503, text="not ready: published records not read yet\n")
        return web.Response(text="ready\n")

    async def wait(self) -> None:
        await self._stopped.wait()

    def request_stop(self) -> None:
        self._stopped.set()

    async def stop(self) -> None:
        """Finish the cycle in flight, close listeners and providers, release the state dir."""
        self._stopped.set()
        if self.scheduler is not None:
            await self.scheduler.aclose()
        if self.engine is not None:
            await self.engine.stop()
        if self._engine_task is not None:
            await self._engine_task
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        for provider in self.providers.values():
            await provider.aclose()
        if self._locked:
            self.store.unlock()
            self._locked = False
        log.info("failover stopped")


async def run_daemon(config: Config, *, dry_run: bool = False, once: bool = False) -> int:
    """The `failover run` command: serve until SIGTERM/SIGINT."""
    daemon = Daemon(config, dry_run=dry_run)
    try:
        await daemon.start(schedule_probes=not once)
        if once:
            await daemon.run_once()
            return 0
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.request_stop)
        loop.add_signal_handler(
            signal.SIGHUP,
            lambda: log.warning(
                "SIGHUP ignored: live reload is not available yet; restart instead"
            ),
        )
        await daemon.wait()
        return 0
    finally:
        await daemon.stop()
