"""The admin API's models: request bodies the handlers parse with, response bodies they
answer with; the JSON Schema (OpenAPI 3.0) is generated from both by `apischema_gen.py`.

Requests are frozen dataclasses: `parse(Model, body)` is how a handler reads its body, so the
published schema and the validation are one thing (required fields, types, no unknown field:
a typo such as `dryrun` must not turn a rehearsal into a change). Responses are TypedDicts
describing what `views.py`, the engine and the drill build; their schemas list the fields
clients may rely on and leave room for more (`additionalProperties` stays open).
"""

# no `from __future__ import annotations`: TypedDict needs NotRequired evaluated (3.11)
import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict, TypeVar, Union

T = TypeVar("T")

# ---------------------------------------------------------------------------- requests


class BadRequest(ValueError):
    """The body does not match its model; the message names the field."""


@dataclass(frozen=True)
class ActorRequest:
    """Who asks (kept in the journal)."""

    actor: str = "unknown"


@dataclass(frozen=True)
class PromoteRequest:
    target: str
    reason: str
    actor: str = "unknown"
    force: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class DrillRequest:
    to: str | None = None
    hold: str | float = "1m"  # a duration like "2m", or seconds
    dry_run: bool = False
    actor: str = "unknown"


@dataclass(frozen=True)
class SwitchoverRequest:
    target: str
    reason: str
    ttl: str | int = "30s"  # a duration like "30s", or seconds
    at: str | None = None
    actor: str = "unknown"
    dry_run: bool = False


@dataclass(frozen=True)
class DrainRequest:
    target: str
    reason: str
    duration: str | float | None = None
    force: bool = False
    actor: str = "unknown"


@dataclass(frozen=True)
class UndrainRequest:
    target: str
    actor: str = "unknown"


FIELD_DOCS: dict[str, str] = {
    "actor": "who asks, e.g. alice@host (kept in the journal)",
    "target": "the target to pin the service to",
    "reason": "why (kept in the journal)",
    "force": "override the safety rules that allow it (never never-empty)",
    "dry_run": "check and show the plan, change nothing",
    "to": "the target to drill (default: the first other UP target)",
    "hold": "how long to stay on the drill target: a duration like 2m, or seconds",
    "ttl": "the short TTL published during the switchover: a duration like 30s, or seconds",
    "at": "when to start: an RFC 3339 time (UTC if no zone) or +DURATION; default now",
    "duration": "how long the drain lasts (a duration like 2h, or seconds); default until "
    "undrained",
}


def _accepts(kind: Any, value: Any) -> bool:
    if kind is Any:
        return True
    if typing.get_origin(kind) in (Union, types.UnionType):
        return any(_accepts(k, value) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _describe(kind: Any) -> str:
    args = typing.get_args(kind)
    if args:
        return " or ".join(_describe(k) for k in args if k is not type(None))
    return {str: "a string", bool: "true or false", float: "a number", int: "an integer"}.get(
        kind, str(kind)
    )


def parse(model: type[T], body: Any) -> T:
    """`body` (decoded JSON) as a `model` instance, or BadRequest naming the field."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    hints = typing.get_type_hints(model)
    names = {f.name for f in dataclasses.fields(model)}  # type: ignore[arg-type]
    unknown = sorted(set(body) - names)
    if unknown:
        raise BadRequest(
            f"unknown field {unknown[0]!r}; expected some of: {', '.join(sorted(names))}"
        )
    values = {}
    for f in dataclasses.fields(model):  # type: ignore[arg-type]
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.name not in body or (body[f.name] is None and required):
            if required:
                raise BadRequest(f"missing field {f.name!r}")
            continue
        if not _accepts(hints[f.name], body[f.name]):
            raise BadRequest(f"field {f.name!r} must be {_describe(hints[f.name])}")
        values[f.name] = body[f.name]
    return model(**values)


# ---------------------------------------------------------------------------- responses


class ErrorBody(TypedDict):
    """Every error: a stable code and a sentence for people; some carry more (a refusal's
    plan and violations, a rejected reload's errors, a superseded promote's winner)."""

    error: str
    message: str


class Change(TypedDict):
    provider: str
    zone: str
    name: str
    type: str
    ttl: int
    before: list[str] | None
    after: list[str]


class Violation(TypedDict):
    rule: str
    message: str


class RefusedBody(ErrorBody):
    service: NotRequired[str]
    target: NotRequired[str]
    plan: NotRequired[list[Change]]
    violations: NotRequired[list[Violation]]
    winner: NotRequired[str | None]


class ReloadRejected(ErrorBody):
    errors: NotRequired[list[str]]


class ProbeStatus(TypedDict):
    type: str
    health: Literal["up", "down", "unknown"]
    last_ok: bool | None
    last_reason: str | None
    last_at: str | None
    successes: int
    failures: int


class PoolValueStatus(TypedDict):
    health: Literal["up", "down", "unknown"]
    reason: str
    published: bool


class PoolStatus(TypedDict):
    """A pool target: DNS serves its UP values; the target is UP while min_up of them are."""

    min_up: int
    values: dict[str, PoolValueStatus]


class TargetStatus(TypedDict):
    health: Literal["up", "down", "unknown"]
    since: str | None
    reason: str | None
    location: str | None
    values: list[str]
    probes: dict[str, ProbeStatus]
    pool: NotRequired[PoolStatus | None]


class FallbackStatus(TypedDict):
    """The all-down fallback: published while every target is DOWN (policy all_down)."""

    values: list[str]
    location: str | None
    policy: Literal["hold", "fallback"]
    active: bool
    health: NotRequired[Literal["up", "down", "unknown"] | None]
    reason: NotRequired[str | None]


class RecordStatus(TypedDict):
    provider: str
    zone: str
    name: str
    type: str
    ttl: int | None
    values: list[str] | None
    in_sync: bool
    verified: bool | None
    error: str | None
    verify_timeout_seconds: NotRequired[float | None]
    verify_method: NotRequired[str | None]  # "dns" (authoritative servers), "api"; None: off


class PinStatus(TypedDict):
    target: str
    reason: str
    actor: str
    at: str
    force: bool


class DrillStatus(TypedDict):
    """A drill in progress: its step (switching, holding, switching back) and time left."""

    to: str
    hold_seconds: float
    actor: str
    started_at: str
    step: str
    stop_requested_by: str | None
    hold_ends_at: str | None


class ServiceStatus(TypedDict):
    active: str | None
    mode: Literal["auto", "pinned", "paused"]
    phase: str
    phase_detail: str | None
    blocked: bool
    reason: str
    alarms: list[str]
    pin: PinStatus | None
    changing: bool
    pending: str | None
    last_error: str | None
    last_switch: dict[str, Any] | None
    targets: dict[str, TargetStatus]
    records: list[RecordStatus]
    verifying: NotRequired[bool]
    drill: NotRequired[DrillStatus | None]
    fallback: NotRequired[FallbackStatus | None]


class ProbeProcessStatus(TypedDict):
    pid: int | None  # None while it is being started again
    restarts: int  # times it died or hung and was started again
    last_exit: str | None  # why the last one ended: `exited (exit code -9)`


class StatusBody(TypedDict):
    instance: str
    location: str | None
    leader: bool
    leader_name: str | None
    isolated: bool
    dry_run: bool
    started_at: str
    event_loop: str  # uvloop or asyncio: the loop this daemon runs on
    probe_process: NotRequired[ProbeProcessStatus | None]  # null: the probes run in the loop
    services: dict[str, ServiceStatus]


class HistoryEntry(TypedDict):
    """One journal entry; kinds carry more fields (providers, changes, report…)."""

    time: str  # RFC 3339, UTC
    service: str  # "*" for daemon-wide entries (reloads, isolation)
    kind: str
    trigger: NotRequired[str | None]
    reason: NotRequired[str | None]
    actor: NotRequired[str | None]
    result: NotRequired[str | None]


class HistorySource(TypedDict):
    """Where `history` on this instance comes from (shared through etcd, or its own journal)."""

    shared: bool
    text: str
    leader: NotRequired[str | None]


class HistoryWithSource(TypedDict):
    """`GET /v1/history?with_source=1`: the entries and where they come from."""

    source: HistorySource
    entries: list[HistoryEntry]


class ProviderOutcome(TypedDict):
    provider: str
    ok: bool
    error: str | None
    accepted_seconds: float | None


class Verification(TypedDict):
    provider: str
    in_sync: bool
    verified: bool | None
    verified_by: NotRequired[str | None]  # "dns" or "api" (`verify: api`); None: not verified
    verify_reason: str
    in_sync_seconds: float | None
    verify_seconds: float | None


class PromoteResult(TypedDict):
    """`result`: dry-run, noop (already served), ok, pending (a follower: the leader has not
    published it yet), partial or error (then a 502).
    `verified` is false when a name server did not confirm the change."""

    service: str
    target: str
    plan: list[Change]
    violations: list[Violation]
    result: str
    providers: NotRequired[list[ProviderOutcome]]
    reason: NotRequired[str | None]
    verified: NotRequired[bool]
    verification: NotRequired[list[Verification]]
    read_back: NotRequired[bool]  # a follower's answer: the leader published it, read back here


class DrillStep(TypedDict):
    step: str
    result: str | None
    verified: bool | None
    seconds: float
    providers: list[dict[str, Any]]


class HoldHealth(TypedDict):
    samples: int
    up: int
    reasons: list[str]


class DrillReport(TypedDict):
    """`result`: ok, failed, aborted (stopped, or a real incident took over) or dry-run."""

    service: str
    to: str
    hold_seconds: float
    dry_run: bool
    result: str
    reason: str
    steps: list[DrillStep]
    hold_health: HoldHealth
    duration_seconds: float


class DrillStopResult(TypedDict):
    result: Literal["stopping"]
    service: str
    to: str


class CommandResult(TypedDict):
    """release, pause, resume, ack: what the decision did per service, verification included."""

    result: str
    services: dict[str, dict[str, Any]]


class SwitchoverStep(TypedDict):
    step: str
    at: str
    what: str


class SwitchoverResult(TypedDict):
    """`result`: dry-run or scheduled; the steps are then carried out by the daemon (status
    shows `switchover`, the journal `kind: switchover`)."""

    service: str
    target: str
    origin: str | None
    ttl: int
    old_ttl: int
    start_at: str
    steps: list[SwitchoverStep]
    plan: list[Change]
    violations: list[Violation]
    result: str
    switchover: NotRequired[dict[str, Any] | None]


class SwitchoverCancelled(TypedDict):
    """The switchover goes to its `restore` step now (`step`: where it stood)."""

    result: Literal["cancelled"]
    service: str
    target: str
    step: str


class DrainResult(TypedDict):
    """`result`: ok (drained; when it was active, the switch away is in the answer, verified),
    pending (a follower: the leader moves it) or error (then a 502)."""

    service: str
    target: str
    result: str
    until: NotRequired[str | None]
    reason: NotRequired[str | None]
    verified: NotRequired[bool]
    providers: NotRequired[list[ProviderOutcome]]


class ReloadResult(TypedDict):
    result: str
    source: str
    summary: str
    changes: dict[str, Any]
