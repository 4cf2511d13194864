"""Admin API (docs/api.md): HTTP+JSON over the unix socket, optionally TCP with a bearer token.

Handlers only record intents and read state through the engine; the engine acts. Every error
is JSON `{"error": code, "message": text}` with a 4xx for the caller's mistakes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from failover import apischema as m
from failover.api_routes import MAX_HISTORY, ROUTES, openapi_document
from failover.coord.etcd_client import EtcdError
from failover.coord.shared_journal import SharedJournal, merge
from failover.engine import CommandError, Engine
from failover.listeners import BODY_TIMEOUT, ConnectionGate, GatedUnixSite, runner_for
from failover.timefmt import parse_when

T = TypeVar("T")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVICE_VERBS = ("release", "pause", "resume", "ack")
log = logging.getLogger("failover.admin")


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


def _middleware(token: str | None) -> Any:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is not None:
            # Header bytes that are not UTF-8 arrive as surrogate escapes: compare the bytes.
            sent = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(sent, f"Bearer {token}".encode()):
                return _error(401, "unauthorized", "missing or wrong bearer token")
        try:
            return await handler(request)
        except CommandError as exc:
            return _error(exc.status, exc.code, str(exc), **exc.extra)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
            raise
        except Exception:  # last resort: a bug is a 500 in JSON, its traceback only in our log
            log.exception("admin API: %s %s failed", request.method, request.path)
            return _error(500, "internal_error", "internal error; the daemon's log has details")

    return guard


class _QuietProtocolErrors(logging.Filter):
    """aiohttp answers a malformed request (bad framing, duplicate headers) with a 400 before
    any handler runs, and logs it with a traceback: one line without it, so hostile clients
    cannot fill the logs with tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = f"{record.getMessage()}: {exc.code} {exc.message.strip()}"
            record.args, record.exc_info, record.exc_text = (), None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_QUIET = _QuietProtocolErrors()


async def _body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; a 400 for anything else (never a 500)."""
    if not request.can_read_body:
        return {}
    try:
        async with asyncio.timeout(BODY_TIMEOUT):  # a slow sender must not hold a slot forever
            raw = await request.read()  # bounded by client_max_size (413 beyond)
    except TimeoutError:
        raise CommandError(
            "timeout", f"request body not received within {BODY_TIMEOUT:g}s", 408
        ) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CommandError("bad_json", f"request body is not UTF-8: {exc}") from None
    except RecursionError:
        raise CommandError("bad_json", "request body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise CommandError("bad_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CommandError("bad_request", "request body must be a JSON object")
    return data


async def _parse(request: web.Request, model: type[T]) -> T:
    """The body as its model (apischema): what the OpenAPI document promises is what is read."""
    try:
        parsed = m.parse(model, await _body(request))
    except m.BadRequest as exc:
        raise CommandError("bad_request", str(exc)) from exc
    for each in dataclasses.fields(parsed):  # type: ignore[arg-type]
        value = getattr(parsed, each.name)
        if isinstance(value, str):
            _check_text(each.name, value)
    return parsed


def _check_text(name: str, value: str) -> None:
    """A lone surrogate (`"\\ud800"` in JSON) could be written to neither journal nor state."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CommandError("bad_request", f"field {name!r} is not valid Unicode text") from None


def _limit(raw: str) -> int:
    """ASCII digits only: `²` is a digit to str.isdigit, not to int()."""
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_HISTORY:
        raise CommandError("bad_request", f"limit must be an integer from 1 to {MAX_HISTORY}")
    return int(raw)


class AdminApi:
    """The routes of docs/api.md over one engine."""

    def __init__(
        self,
        engine: Engine,
        reload: Callable[[str], Awaitable[dict[str, Any]]] | None,
        shared: SharedJournal | None = None,
    ) -> None:
        self.engine = engine
        self.reload_cb = reload
        self.shared = shared  # the history shared in etcd, with coordination

    def app(self, token: str | None = None) -> web.Application:
        logging.getLogger("aiohttp.server").addFilter(_QUIET)  # once: filters are a set
        app = web.Application(middlewares=[_middleware(token)], client_max_size=64 * 1024)
        for route in ROUTES:  # the same table the OpenAPI document is generated from
            app.router.add_route(route.method, route.path, getattr(self, route.handler))
        return app

    async def status(self, request: web.Request) -> web.Response:
        body = self.engine.status()
        problem = self.shared.problem if self.shared is not None else None
        body["history"] = self._history_source(problem)
        if self.shared is not None:
            body["history"].update(waiting=self.shared.waiting, dropped=self.shared.dropped)
        return web.json_response(body)

    def _history_source(self, problem: str | None) -> dict[str, Any]:
        """Where `history` on this instance comes from, in one line (status and history)."""
        me = self.engine.config.instance.name
        if self.shared is None:
            return {"shared": False, "text": f"the journal of {me} (this instance runs alone)"}
        leader = self.engine.coord.leader_name()
        if problem is not None:
            return {
                "shared": False,
                "leader": leader,
                "text": f"the journal of {me} only: etcd does not answer ({problem}), so the "
                f"entries of other instances are missing (the leader is {leader or 'unknown'})",
            }
        return {
            "shared": True,
            "leader": leader,
            "text": f"every instance's entries (the last {self.shared.retain} kept in etcd) "
            f"merged with the journal of {me}; the leader is {leader or 'none'}",
        }

    async def history(self, request: web.Request) -> web.Response:
        service = request.query.get("service") or None
        limit = _limit(request.query.get("limit", "100"))
        with_source = request.query.get("with_source")
        if with_source not in (None, "1", "true"):
            raise CommandError("bad_request", "with_source must be 1 or true (or absent)")
        known = service is None or service == "*" or service in self.engine.services
        if not known:  # "*": the daemon-wide entries (reloads, isolation)
            raise CommandError("unknown_service", f"no service {service!r}", 404)
        entries = await self.engine.journal.history(service, limit)
        problem = None
        if self.shared is not None:
            try:
                shared = await self.shared.read(service)
            except EtcdError as exc:
                problem = str(exc)
            else:
                entries = merge(entries, shared, limit=limit)
        body = [{k: v for k, v in e.items() if k != "ts"} for e in entries]
        if with_source is not None:
            return web.json_response({"source": self._history_source(problem), "entries": body})
        return web.json_response(body)

    async def promote(self, request: web.Request) -> web.Response:
        req = await _parse(request, m.PromoteRequest)
        result = await self.engine.promote(
            request.match_info["service"],
            req.target,
            req.reason,
            req.actor,
            force=req.force,
            dry_run=req.dry_run,
        )
        return web.json_response(result, status=_result_status(result))

    async def switchover(self, request: web.Request) -> web.Response:
        req = await _parse(request, m.SwitchoverRequest)
        now = self.engine.clock()
        ttl = _seconds("ttl", req.ttl, 1, 86400)
        if ttl != int(ttl):
            raise CommandError("bad_request", "ttl must be whole seconds")
        at = None
        if req.at is not None:
            try:
                at = parse_when(req.at, now)
            except (ValueError, OverflowError) as exc:
                raise CommandError("bad_request", f"at: {exc}") from None
            if not now - 60 <= at <= now + 30 * 86400:
                raise CommandError("bad_request", "at must be between now and 30 days from now")
        result = await self.engine.switchovers.start(
            request.match_info["service"],
            req.target,
            req.reason,
            req.actor,
            ttl=int(ttl),
            at=at,
            dry_run=req.dry_run,
        )
        return web.json_response(result)

    async def switchover_cancel(self, request: web.Request) -> web.Response:
        req = await _parse(request, m.ActorRequest)
        service = request.match_info["service"]
        return web.json_response(await self.engine.switchovers.cancel(service, req.actor))

    async def drain(self, request: web.Request) -> web.Response:
        req = await _parse(request, m.DrainRequest)
        seconds = None
        if req.duration is not None:
            seconds = _seconds("duration", req.duration, 1, 366 * 86400)
        result = await self.engine.drains.drain(
            request.match_info["service"],
            req.target,
            req.reason,
            req.actor,
            seconds=seconds,
            force=req.force,
        )
        return web.json_response(result, status=_result_status(result))

    async def undrain(self, request: web.Request) -> web.Response:
        req = await _parse(request, m.UndrainRequest)
        result = await self.engine.drains.undrain(
            request.match_info["service"], req.target, req.actor
        )
        return web.json_response(result, status=_result_status(result))

    async def drill(self, request: web.Request) -> web.Response:
        """Run a drill now and answer with its report (the request lasts the whole drill)."""
        from failover.config.parse import parse_duration
        from failover.drill import DrillRefused, run_drill

        req = await _parse(request, m.DrillRequest)
        raw_hold = req.hold
        try:
            hold = (
                float(raw_hold)
                if isinstance(raw_hold, int | float) and not isinstance(raw_hold, bool)
                else parse_duration(raw_hold)
            )
        except (ValueError, OverflowError) as exc:  # OverflowError: an int beyond any float
            raise CommandError("bad_request", f"hold: {exc}") from None
        if not 0 < hold <= 24 * 3600:
            raise CommandError("bad_request", "hold must be between 0 and 24h")
        try:
            report = await run_drill(
                self.engine,
                request.match_info["service"],
                req.to,
                hold,
                dry_run=req.dry_run,
                actor=req.actor,
            )
        except DrillRefused as exc:
            raise CommandError("refused", f"drill refused ({exc.check}): {exc}", 409) from exc
        body = report.as_json()
        return web.json_response(body, status=200 if body["result"] in ("ok", "dry-run") else 502)

    async def drill_stop(self, request: web.Request) -> web.Response:
        """End a running drill now: back to its origin, verified (Ctrl-C of `failover drill`)."""
        from failover.drill import DrillNotRunning, request_stop

        req = await _parse(request, m.ActorRequest)
        try:
            return web.json_response(
                request_stop(self.engine, request.match_info["service"], req.actor)
            )
        except DrillNotRunning as exc:
            raise CommandError("not_drilling", str(exc), 409) from exc

    async def service_verb(self, request: web.Request) -> web.Response:
        verb = request.path.rsplit("/", 1)[-1]
        if verb not in SERVICE_VERBS:
            raise CommandError("not_found", f"unknown action {verb!r}", 404)
        req = await _parse(request, m.ActorRequest)
        result = await self.engine.simple_command(request.match_info["service"], verb, req.actor)
        return web.json_response(result)

    async def global_verb(self, request: web.Request) -> web.Response:
        req = await _parse(request, m.ActorRequest)
        verb = request.path.rsplit("/", 1)[-1]
        result = await self.engine.simple_command(None, verb, req.actor)
        return web.json_response(result)

    async def reload(self, request: web.Request) -> web.Response:
        """Re-read the config file; a rejected file is a 400 listing its errors."""
        if self.reload_cb is None:
            raise CommandError(
                "not_implemented",
                "live reload is not available here; restart the daemon to apply a new config",
                501,
            )
        req = await _parse(request, m.ActorRequest)
        return web.json_response(await self.reload_cb(req.actor))

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())


def _seconds(name: str, value: str | float | int, low: float, high: float) -> float:
    """A duration field: `"30s"` or seconds, within [low, high]; else a 400 naming it."""
    from failover.config.parse import parse_duration

    try:
        seconds = (
            float(value)
            if isinstance(value, int | float) and not isinstance(value, bool)
            else parse_duration(value)
        )
    except (ValueError, OverflowError) as exc:
        raise CommandError("bad_request", f"{name}: {exc}") from None
    if not low <= seconds <= high:
        raise CommandError("bad_request", f"{name} must be between {low:g}s and {high:g}s")
    return seconds


def _result_status(result: dict[str, Any]) -> int:
    """An accepted command whose DNS change failed is a 502: the intent stands, the write didn't."""
    return 502 if result.get("result") in ("error", "partial") else 200


def _prepare_socket_path(path: Path) -> None:
    """Create the directory and remove a stale socket left by a crash (the store lock proves
    no other daemon of this state dir runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_socket():
        path.unlink()


async def start_unix_site(
    app: web.Application, path: Path, gate: ConnectionGate | None = None
) -> web.AppRunner:
    """Serve on a unix socket readable only by the daemon's user and group (0660), with
    bounded connections and idle time like the TCP listeners (listeners.py)."""
    _prepare_socket_path(path)
    runner = await runner_for(app)
    await GatedUnixSite(runner, path, gate or ConnectionGate("unix", 64)).start()
    os.chmod(path, 0o660)
    return runner
