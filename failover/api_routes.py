"""The admin API's routes as data, and the OpenAPI document generated from them and from the
models the handlers parse with (`apischema`): the document cannot drift from the code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from failover import __version__
from failover import apischema as m
from failover.apischema_gen import schema

MAX_HISTORY = 100_000  # entries one history call may ask for


@dataclass(frozen=True)
class Route:
    """One endpoint: the handler it runs and the models of what goes in and comes out."""

    method: str
    path: str
    handler: str  # an AdminApi method
    summary: str
    request: type | None = None
    ok: Any = None  # the 200 body's model
    errors: dict[int, Any] = field(default_factory=dict)  # status -> error body model
    query: tuple[dict[str, Any], ...] = ()


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/status",
        "status",
        "Services, active targets, health per target and probe, records, alarms, drills",
        ok=m.StatusBody,
    ),
    Route(
        "GET",
        "/v1/history",
        "history",
        "Journal entries, oldest first",
        ok=list[m.HistoryEntry] | m.HistoryWithSource,
        errors={400: m.ErrorBody, 404: m.ErrorBody},
        query=(
            {
                "name": "service",
                "in": "query",
                "description": "one service; `*` for daemon-wide entries",
                "schema": {"type": "string"},
            },
            {
                "name": "limit",
                "in": "query",
                "description": "the last N entries (default 100)",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY},
            },
            {
                "name": "with_source",
                "in": "query",
                "description": "1: answer {source, entries}; source says where the entries "
                "come from (shared in etcd, or this instance's journal only)",
                "schema": {"type": "string", "enum": ["1", "true"]},
            },
        ),
    ),
    Route("GET", "/v1/openapi.json", "openapi", "This document", ok=dict[str, Any]),
    Route(
        "POST",
        "/v1/services/{service}/promote",
        "promote",
        "Pin the service to a target, publish it and wait for verification. 409: a safety "
        "rule refused it (named), or another command superseded it; 502: a provider failed",
        m.PromoteRequest,
        m.PromoteResult,
        {
            400: m.ErrorBody,
            404: m.ErrorBody,
            409: m.RefusedBody,
            502: m.PromoteResult,
            503: m.RefusedBody,
        },
    ),
    Route(
        "POST",
        "/v1/services/{service}/drill",
        "drill",
        "Drill: switch to a secondary, verify, hold, switch back, verify; answers the report "
        "when the drill ends (502: it failed or was aborted; 409: preflight refused it)",
        m.DrillRequest,
        m.DrillReport,
        {400: m.ErrorBody, 404: m.ErrorBody, 409: m.ErrorBody, 502: m.DrillReport},
    ),
    Route(
        "POST",
        "/v1/services/{service}/drill/stop",
        "drill_stop",
        "End the running drill now: back to its origin, verified",
        m.ActorRequest,
        m.DrillStopResult,
        {400: m.ErrorBody, 404: m.ErrorBody, 409: m.ErrorBody},
    ),
    Route(
        "POST",
        "/v1/services/{service}/switchover",
        "switchover",
        "Plan a switchover: lower the TTL, wait out the old one, switch (pinned, verified), "
        "restore the TTL; answers once scheduled. 409: a rule refused it (named)",
        m.SwitchoverRequest,
        m.SwitchoverResult,
        {400: m.ErrorBody, 404: m.ErrorBody, 409: m.RefusedBody, 503: m.RefusedBody},
    ),
    Route(
        "POST",
        "/v1/services/{service}/switchover/cancel",
        "switchover_cancel",
        "End the switchover in progress: the TTL is restored at once (a switch already made "
        "stays, pinned). 409 when none runs",
        m.ActorRequest,
        m.SwitchoverCancelled,
        {400: m.ErrorBody, 404: m.ErrorBody, 409: m.ErrorBody},
    ),
    Route(
        "POST",
        "/v1/services/{service}/drain",
        "drain",
        "Drain a target: decisions treat it as unavailable (probes go on); an active target is "
        "switched away from and the answer waits for verification. 409: rule last-up or pinned",
        m.DrainRequest,
        m.DrainResult,
        {400: m.ErrorBody, 404: m.ErrorBody, 409: m.RefusedBody, 502: m.DrainResult},
    ),
    Route(
        "POST",
        "/v1/services/{service}/undrain",
        "undrain",
        "End a target's drain (409 when it is not drained by a command)",
        m.UndrainRequest,
        m.DrainResult,
        {400: m.ErrorBody, 404: m.ErrorBody, 409: m.ErrorBody, 502: m.DrainResult},
    ),
    *(
        Route(
            "POST",
            f"/v1/services/{{service}}/{verb}",
            "service_verb",
            text,
            m.ActorRequest,
            m.CommandResult,
            {400: m.ErrorBody, 404: m.ErrorBody, 409: m.ErrorBody, 503: m.ErrorBody},
        )
        for verb, text in (
            ("release", "End the pin: back to automatic decisions (may switch DNS)"),
            ("pause", "Stop automatic decisions for the service"),
            ("resume", "Resume automatic decisions for the service"),
            ("ack", "Acknowledge a flap block so automation may act again"),
        )
    ),
    Route(
        "POST",
        "/v1/pause",
        "global_verb",
        "Stop automatic decisions for every service",
        m.ActorRequest,
        m.CommandResult,
        {400: m.ErrorBody, 503: m.ErrorBody},
    ),
    Route(
        "POST",
        "/v1/resume",
        "global_verb",
        "Resume automatic decisions for every service",
        m.ActorRequest,
        m.CommandResult,
        {400: m.ErrorBody, 503: m.ErrorBody},
    ),
    Route(
        "POST",
        "/v1/reload",
        "reload",
        "Re-read the configuration file; 400 lists why a file is rejected (the running "
        "configuration stays)",
        m.ActorRequest,
        m.ReloadResult,
        {
            400: m.ReloadRejected,
            409: m.ErrorBody,
            500: m.ReloadRejected,
            501: m.ErrorBody,
            503: m.ErrorBody,
        },
    ),
)

ERROR_TEXT = {
    400: "bad input: the message names the field",
    401: "missing or wrong bearer token (TCP listener)",
    404: "no such service, target or path",
    409: "refused or conflicting: the message says why",
    413: "request body too large",
    500: "a reload failed unexpectedly (the running configuration stays)",
    501: "not available in this daemon",
    502: "accepted, but a DNS provider failed or the drill did not succeed",
    503: "busy, starting or stopping, or the records cannot be read now",
}


def _operation_id(route: Route) -> str:
    words = [w.strip("{}") for w in route.path.split("/")[2:]]
    return "_".join([route.method.lower(), *words])


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.0 of the admin API, generated from ROUTES and the models in apischema."""
    refs: dict[str, Any] = {}

    def content(model: Any) -> dict[str, Any]:
        return {"application/json": {"schema": schema(model, refs)}}

    paths: dict[str, Any] = {}
    for route in ROUTES:
        responses: dict[str, Any] = {"200": {"description": "OK", "content": content(route.ok)}}
        errors = {401: m.ErrorBody, 413: m.ErrorBody, **route.errors}
        if route.request is not None:
            errors.setdefault(400, m.ErrorBody)
        for status, model in sorted(errors.items()):
            responses[str(status)] = {"description": ERROR_TEXT[status], "content": content(model)}
        op: dict[str, Any] = {
            "operationId": _operation_id(route),
            "summary": route.summary,
            "responses": responses,
        }
        parameters = list(route.query)
        if "{service}" in route.path:
            parameters.insert(
                0,
                {"name": "service", "in": "path", "required": True, "schema": {"type": "string"}},
            )
        if parameters:
            op["parameters"] = parameters
        if route.request is not None:
            op["requestBody"] = {"required": False, "content": content(route.request)}
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "failover admin API",
            "version": __version__,
            "description": "HTTP+JSON over the admin unix socket, or TCP with a bearer token "
            "(admin.listen, admin.token_file). Every error is `{error, message}`.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(refs.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }
