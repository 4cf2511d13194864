"""asyncio wiring: store, providers, engine, probes, admin and metrics servers, signals.

Start order matters: the state dir is locked first (two daemons must never share it), the
published answer is read back before any probe result can trigger a decision, and the
listeners open last so `readyz` never reports a half-started daemon. systemd hears READY=1
only then.

Reload (SIGHUP, `POST /v1/reload`) parses the whole file before touching anything; providers
that changed are opened before the swap (a builtin server, which owns an address and a data
file, under the engine's lock once its predecessor is closed), so a provider that cannot start
rejects the reload with the old configuration intact. Shutdown (SIGTERM) is bounded: in-flight
changes get `instance.shutdown_timeout`, each provider `CLOSE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from failover import heap, readiness, sdnotify
from failover import listeners as fd
from failover import reload as live_reload
from failover.admin import AdminApi, start_unix_site
from failover.config.loader import ConfigError, load_config
from failover.config.types import Config, HostPort
from failover.coord.base import Coordinator
from failover.coord.factory import create_coordinator
from failover.coord.shared_journal import SharedJournal
from failover.drill import DrillScheduler, restore_drill_metrics
from failover.engine import CommandError, Engine
from failover.eventloop import running_loop_name
from failover.metrics import Metrics
from failover.model import ProbeResult, Trigger
from failover.notify import Notifier
from failover.probes.remote import ProbeProcess
from failover.probes.scheduler import ProbeJob, ProbeScheduler
from failover.probes.sharing import in_a_child, rate
from failover.provider_life import CLOSE_TIMEOUT, ProviderLife
from failover.providers.base import Provider
from failover.runtime import ServiceRuntime
from failover.scrape import SharedRender, metrics_app
from failover.store import Store
from failover.wiring import probe_jobs, provider_zones

log = logging.getLogger("failover.daemon")

RELOAD_WAIT = 30.0  # a reload waits this long for in-flight changes of what it replaces


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
        self.notifier = Notifier(config.notifications, self.metrics.notifications)
        self.providers: dict[str, Provider] = {}
        self.lifecycle = ProviderLife(self.store, self.metrics)
        self.engine: Engine | None = None
        self.coord: Coordinator | None = None
        self.shared: SharedJournal | None = None  # the history copied to etcd (coordination)
        self.scheduler: ProbeScheduler | ProbeProcess | None = None
        self.failure: str | None = None  # why the daemon stops on its own (exit 1)
        self.metrics_address: HostPort | None = None
        self._runners: list[web.AppRunner] = []
        self._engine_task: asyncio.Task[None] | None = None
        self._drill_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._locked = False
        self.sd = sdnotify.SystemdNotifier()
        self.watchdog: sdnotify.Watchdog | None = None
        self._reload_lock = asyncio.Lock()
        self._signal_tasks: set[asyncio.Task[None]] = set()
        self.budget: fd.FdBudget | None = None

    def _gate(self, name: str) -> fd.ConnectionGate:
        assert self.budget is not None
        counter = self.metrics.listener_resets
        counter.labels(name)
        return fd.ConnectionGate(name, self.budget.caps[name], lambda n: counter.labels(n).inc())

    async def start(self, *, schedule_probes: bool = True) -> None:
        jobs = probe_jobs(self.config)
        self.budget = fd.budget_for(self.config, len(jobs))
        if schedule_probes and in_a_child(
            self.config.instance.probe_process, (job.spec for job in jobs)
        ):
            self.scheduler = ProbeProcess(
                jobs,
                self._on_probe_result,
                on_lag=self.metrics.scheduling_lag.observe,
                on_failure=self.fail,
                on_restart=self.metrics.probe_process_restarts.inc,
            )
            await self.scheduler.spawn()  # it imports while the rest starts; jobs come later
        self.store.lock()
        self._locked = True
        self.store.check_writable()
        zones = provider_zones(self.config)
        for name in self.config.providers:
            self.providers[name] = await self.lifecycle.open(name, self.config, zones)
        coord = create_coordinator(self.config, self.store)  # etcd when `coordination:`
        await coord.start()
        self.coord = coord
        engine = Engine(
            self.config, self.store, self.providers, coord, self.metrics, dry_run=self.dry_run
        )
        self.engine = engine
        engine.journal.on_entry = self._on_entry
        if isinstance(self.scheduler, ProbeProcess):
            engine.probe_process = self.scheduler.describe
        if self.config.coordination is not None:
            self.shared = SharedJournal(self.config.coordination.etcd, self.config.instance.name)
            await self.shared.start()
        await self.notifier.start()
        self._prime(self.config)
        await engine.start(wait_for_reads=not schedule_probes)
        await asyncio.to_thread(restore_drill_metrics, engine)
        if self.scheduler is None:  # probes in this loop (always for `run --once`)
            lag = self.metrics.scheduling_lag.observe
            self.scheduler = ProbeScheduler(jobs, engine.on_probe_result, on_lag=lag)
        if self.config.metrics.listen is not None:
            await self._start_metrics(self.config.metrics.listen)
        api = AdminApi(engine, reload=self.reload, shared=self.shared)
        socket = self.config.admin.socket
        self._runners.append(await start_unix_site(api.app(), socket, self._gate("unix")))
        if self.config.admin.listen is not None and self.config.admin.token_file is not None:
            token = read_token(self.config.admin.token_file)
            runner = await fd.runner_for(api.app(token=token))
            listen = self.config.admin.listen
            await fd.GatedTCPSite(runner, listen.host, listen.port, self._gate("admin")).start()
            self._runners.append(runner)
        if schedule_probes:
            await self.scheduler.start()
            self._engine_task = asyncio.create_task(engine.run(), name="engine")
            self._drill_task = asyncio.create_task(DrillScheduler(engine).run(), name="drills")
        log.info(
            "failover started: instance %s, %d services, %d probes (%d distinct run),"
            " admin socket %s, event loop %s%s%s",
            self.config.instance.name,
            len(self.config.services),
            len(self.scheduler.jobs),
            self.scheduler.distinct,
            self.config.admin.socket,
            running_loop_name(),
            ", probes in a child process" if isinstance(self.scheduler, ProbeProcess) else "",
            " (dry-run: no DNS writes)" if self.dry_run else "",
        )

    def _on_probe_result(self, job: ProbeJob, result: ProbeResult, finished_at: float) -> None:
        """The probe process's results (it gets its jobs once the engine runs)."""
        if self.engine is not None:
            self.engine.on_probe_result(job, result, finished_at)

    def _on_entry(self, entry: dict[str, Any]) -> None:
        self._notify(entry)
        if self.shared is not None:
            self.shared.publish(entry)

    def _notify(self, entry: dict[str, object]) -> None:
        """Decisions are told by the leader only (followers decide nothing they act on);
        an operator's command by the instance that received it."""
        if entry.get("trigger") == "manual" or (self.coord is not None and self.coord.is_leader()):
            self.notifier.emit(entry)

    def _prime(self, config: Config) -> None:
        self.metrics.prime(
            (s.name, ((t.name, (p.name for p in t.probes)) for t in s.targets))
            for s in config.services.values()
        )

    async def run_once(self) -> None:
        """`run --once`: one probe round, one decision per service, then return."""
        assert self.engine is not None
        assert isinstance(self.scheduler, ProbeScheduler)  # `--once` never starts a child
        self.engine.single_round = True
        for job, result in await self.scheduler.run_once():
            self.engine.on_probe_result(job, result, time.time())
        await self.engine.cycle()

    async def _start_metrics(self, listen: HostPort) -> None:
        """Scrapes render off the loop, shared (scrape.py), on a capped listener."""
        engine = self.engine
        render = SharedRender(self.metrics, engine.live_view_sliced if engine is not None else None)
        runner = await fd.runner_for(metrics_app(render, self._healthz, self._readyz))
        site = fd.GatedTCPSite(runner, listen.host, listen.port, self._gate("metrics"))
        await site.start()
        self._runners.append(runner)
        self.metrics_address = HostPort(listen.host, site.bound_port)

    async def _healthz(self, request: web.Request) -> web.Response:
        status, text = readiness.healthz(self.engine, running=self._engine_task is not None)
        return web.Response(status=status, text=text)

    async def _readyz(self, request: web.Request) -> web.Response:
        status, text = readiness.readyz(self.engine)
        return web.Response(status=status, text=text)

    async def wait(self) -> None:
        await self._stopped.wait()

    def request_stop(self) -> None:
        self._stopped.set()

    def fail(self, reason: str) -> None:
        """Stop because this instance cannot do its job (its probes cannot run): exit 1, and
        the service manager starts it again."""
        log.error("stopping: %s", reason)
        self.failure = reason
        self._stopped.set()

    def request_reload(self) -> None:
        """SIGHUP: reload in a task (the outcome is logged and journalled by `reload`)."""

        async def run() -> None:
            with contextlib.suppress(CommandError):
                await self.reload("SIGHUP")

        task = asyncio.create_task(run(), name="reload")
        self._signal_tasks.add(task)
        task.add_done_callback(self._signal_tasks.discard)

    def serving(self) -> None:
        """Tell systemd the daemon serves (records read back, listeners open) and start the
        watchdog pings, which stop when the engine loop stalls or its task has died."""
        engine, task = self.engine, self._engine_task
        assert engine is not None
        self.sd.ready(self.status_line())

        def alive() -> bool:
            return task is not None and not task.done() and engine.alive()

        self.watchdog = sdnotify.Watchdog(
            self.sd, sdnotify.watchdog_interval(), alive, self.status_line
        )
        self.watchdog.start()

    def status_line(self) -> str:
        """The STATUS systemd shows: `3 services, 1 failed over, 0 alarms`."""
        return readiness.status_line(self.engine, self.config, dry_run=self.dry_run)

    # ---------------------------------------------------------------- reload

    async def reload(self, actor: str = "SIGHUP") -> dict[str, Any]:
        """Parse the config file again and swap in what changed. A rejected reload changes
        nothing; it raises CommandError (400: the file; 503: busy), sets
        failover_config_last_reload_successful to 0, and is logged and journalled."""
        engine = self.engine
        if engine is None or self._stopped.is_set():
            log.warning("reload ignored: the daemon is starting or stopping")
            raise CommandError("unavailable", "the daemon is starting or stopping", 503)
        async with self._reload_lock:
            self.sd.reloading()
            try:
                diff = await self._reload(engine)
            except Exception as exc:
                error = exc if isinstance(exc, CommandError) else None
                if error is None:  # a bug: say so, but keep the daemon and the old config
                    log.exception("reload failed")
                    error = CommandError("reload_failed", f"{type(exc).__name__}: {exc}", 500)
                errors = error.extra.get("errors") or []
                log.error(
                    "reload rejected, the running configuration stays: %s",
                    "; ".join([str(error).splitlines()[0], *errors]),
                )
                await engine.journal.write(
                    "*",
                    "reload",
                    Trigger.MANUAL,
                    str(error).splitlines()[0],
                    engine.clock(),
                    actor=actor,
                    result="error",
                    errors=errors or None,
                )
                self.metrics.reload_ok.set(0)  # after the journal: an alert finds the reason
                raise error from None
            finally:
                if not self._stopped.is_set():
                    self.sd.ready(self.status_line())
            self.metrics.reload_ok.set(1)
            self.metrics.reload_success_time.set_to_current_time()
            heap.settle()  # the new configuration's objects join the frozen start-up heap
            summary = diff.summary()
            log.info("configuration reloaded from %s: %s", self.config.source, summary)
            await engine.journal.write(
                "*",
                "reload",
                Trigger.MANUAL,
                f"configuration reloaded: {summary}",
                engine.clock(),
                actor=actor,
                result="ok",
                changes=diff.as_json(),
            )
            return {
                "result": "ok",
                "source": str(self.config.source),
                "summary": summary,
                "changes": diff.as_json(),
            }

    async def _reload(self, engine: Engine) -> live_reload.ConfigDiff:
        source, old = self.config.source, self.config
        if source is None:
            raise CommandError("no_source", "this daemon was not started from a file", 409)
        try:
            new = await asyncio.to_thread(load_config, source)
        except ConfigError as exc:
            raise CommandError(
                "invalid_config",
                _rejected(source, "is invalid", exc.errors),
                400,
                errors=exc.errors,
            ) from None
        fixed = live_reload.restart_only_changes(old, new)
        if fixed:
            raise CommandError(
                "restart_required", _rejected(source, "needs a restart", fixed), 400, errors=fixed
            )
        old_zones, new_zones = provider_zones(old), provider_zones(new)
        diff = live_reload.diff(old, new, old_zones, new_zones)
        closing = {*diff.providers.removed, *diff.providers.changed}
        opening = {*diff.providers.added, *diff.providers.changed}
        local = {n for n in opening if new.providers[n].type == "builtin"}
        touched = {*diff.services.removed, *diff.services.changed}

        def affected(rt: ServiceRuntime) -> bool:
            return rt.config.name in touched or any(
                r.provider in closing for r in rt.config.records
            )

        opened: dict[str, Provider] = {}
        freed: list[str] = []
        try:
            for name in sorted(opening - local):
                opened[name] = await self.lifecycle.open(name, new, new_zones)
            async with engine.quiesced(affected, RELOAD_WAIT):
                if local:  # free the builtin servers' addresses and data files first
                    freed = sorted(n for n in closing if old.providers[n].type == "builtin")
                    await self.lifecycle.reopen_builtin(
                        sorted(local), freed, new, new_zones, opened, self.providers
                    )
                providers = {n: self.providers[n] for n in new.providers if n not in closing}
                providers.update(opened)
                await engine.reconfigure(new, providers, closing)
        except Exception as exc:
            await asyncio.gather(*(self.lifecycle.close(n, p) for n, p in opened.items()))
            if isinstance(exc, CommandError):
                raise
            message = f"a provider cannot start: {type(exc).__name__}: {exc}"
            raise CommandError(
                "provider_failed", _rejected(source, "cannot be applied", [message]), 400
            ) from None
        retired = [(n, self.providers[n]) for n in sorted(closing) if n not in freed]
        await asyncio.gather(*(self.lifecycle.close(n, p) for n, p in retired))
        self.providers, self.config = providers, new
        if self.scheduler is not None:
            jobs = probe_jobs(new)
            self.scheduler.set_jobs(jobs)
            self._warn_if_probes_belong_elsewhere(jobs)
        self._prime(new)
        if "notifications" in diff.settings:
            await self.notifier.reconfigure(new.notifications)
        return diff

    def _warn_if_probes_belong_elsewhere(self, jobs: list[ProbeJob]) -> None:
        """`probe_process: auto` chooses at start-up; a reload that moves the probe rate
        across the threshold says so (the choice follows at the next restart)."""
        setting = self.config.instance.probe_process
        if setting != "auto":
            return
        specs = [job.spec for job in jobs]
        wanted, running = in_a_child(setting, specs), isinstance(self.scheduler, ProbeProcess)
        if wanted != running:
            log.warning(
                "the probes now run %.1f times a second: instance.probe_process auto would run "
                "them in %s, where they move at the next restart (systemctl restart failover)",
                rate(specs),
                "a child process" if wanted else "the event loop",
            )

    # --------------------------------------------------------------- shutdown

    async def stop(self) -> None:
        """Stop deciding; give in-flight DNS changes `instance.shutdown_timeout` to be
        accepted, then abandon them (journalled); save the state; close listeners and
        providers (each bounded); release the state dir."""
        self._stopped.set()
        for task in self._signal_tasks:  # a SIGHUP reload in progress: we are leaving anyway
            task.cancel()
        await asyncio.gather(*self._signal_tasks, return_exceptions=True)
        self.sd.stopping()
        if self.watchdog is not None:
            await self.watchdog.aclose()
        if self._drill_task is not None:  # a drill in its hold is abandoned where it is
            self._drill_task.cancel()
            await asyncio.gather(self._drill_task, return_exceptions=True)
        if self.scheduler is not None:
            await self.scheduler.aclose()
        if self.engine is not None:
            await self.engine.stop(self.config.instance.shutdown_timeout)
        if self._engine_task is not None:
            done, _ = await asyncio.wait([self._engine_task], timeout=CLOSE_TIMEOUT)
            if not done:
                log.error("the engine loop did not stop within %gs; cancelling it", CLOSE_TIMEOUT)
                self._engine_task.cancel()
                await asyncio.gather(self._engine_task, return_exceptions=True)
        if self.coord is not None:  # after the last write: a leader hands over at once
            await self.coord.aclose()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await asyncio.gather(*(self.lifecycle.close(n, p) for n, p in self.providers.items()))
        if self.engine is not None:
            await self.engine.journal.close()
        if self.shared is not None:  # the last entries (the stop's own) to etcd, bounded
            await self.shared.aclose()
        await self.notifier.aclose()
        if self._locked:
            self.store.unlock()
            self._locked = False
        self.sd.close()
        log.info("failover stopped")


def _rejected(source: Path, what: str, errors: Iterable[str]) -> str:
    lines = "".join(f"\n  {e}" for e in errors)
    return f"{source} {what}; the running configuration stays:{lines}"


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
        loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
        heap.settle()  # before serving: full collections no longer walk the start-up heap
        engine = daemon.engine
        settling = asyncio.create_task(heap.freeze_when(lambda: engine is None or engine.ready))
        daemon.serving()
        await daemon.wait()
        settling.cancel()
        return 1 if daemon.failure is not None else 0
    finally:
        await daemon.stop()
