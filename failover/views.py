"""Read-only views of the engine: the admin API's status body and the metrics' live view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from failover.core import decide as core
from failover.core.health import ProbeState
from failover.core.plan import Violation
from failover.metrics import LiveView, ProbeView, ServiceView, TargetView
from failover.model import Change, values_for_type
from failover.timefmt import rfc3339

if TYPE_CHECKING:
    from failover.engine import Engine, ServiceRuntime


def classify_with_pending(rt: ServiceRuntime) -> core.Published:
    """Records split between the old and new target while a change is still reaching every
    provider are a change in progress, not drift."""
    published = core.classify_published(rt.config, rt.current)
    if rt.pending is None or published.kind != "drift" or rt.current is None:
        return published
    allowed = {t for t in (rt.pending, rt.pending_from) if t is not None}
    for record in rt.config.records:
        current = rt.current.get(record.key)
        if current is None:
            continue
        if not any(
            current.values == values_for_type(record.type, t.values)
            for t in rt.config.targets
            if t.name in allowed
        ):
            return published
    return core.Published(
        "target", rt.pending, detail=f"change to {rt.pending} in progress", matches=(rt.pending,)
    )


def status(engine: Engine) -> dict[str, Any]:
    services = {name: _service_status(engine, rt) for name, rt in engine.services.items()}
    return {
        "instance": engine.config.instance.name,
        "location": engine.config.instance.location,
        "leader": engine.coord.is_leader(),
        "leader_name": engine.coord.leader_name(),
        "isolated": engine.isolated,
        "canaries": {
            c.name: {"location": c.location, "failing": engine.canary_failing(c.name)}
            for c in engine.config.canaries
        },
        "dry_run": engine.dry_run,
        "started_at": rfc3339(engine.started_at),
        "services": services,
    }


def _service_status(engine: Engine, rt: ServiceRuntime) -> dict[str, Any]:
    decision = rt.decision
    active = rt.published.target if rt.published.kind == "target" else None
    active_cfg = rt.config.target(active) if active else None
    targets: dict[str, Any] = {}
    for target in rt.config.targets:
        health = rt.targets[target.name]
        targets[target.name] = {
            "health": health.health.value,
            "since": rfc3339(health.since) if health.since else None,
            "reason": health.reason,
            "location": target.location,
            "values": list(target.values),
            "votes": {engine.config.instance.name: health.health.value},
            "probes": {
                p.name: probe_json(p.type, rt.probes[(target.name, p.name)]) for p in target.probes
            },
        }
    records = []
    for record in rt.config.records:
        current = (rt.current or {}).get(record.key)
        wanted = values_for_type(record.type, active_cfg.values) if active_cfg else None
        confirmation = rt.confirmations.get(record.provider)
        records.append(
            {
                "provider": record.provider,
                "zone": record.zone,
                "name": record.name,
                "type": record.type.value,
                "ttl": current.ttl if current else record.ttl,
                "values": list(current.values) if current else None,
                "in_sync": bool(current and wanted is not None and current.values == wanted),
                "verified": confirmation.verified if confirmation else None,
                "error": rt.provider_errors.get(record.provider),
            }
        )
    alarms = set(decision.alarms) if decision else set()
    if rt.unverified:
        alarms.add("not_verified")
    return {
        "active": active,
        "mode": rt.state.mode.value,
        "blocked": rt.state.blocked,
        "reason": decision.reason if decision else "starting: no decision yet",
        "alarms": sorted(alarms),
        "published": {"kind": rt.published.kind, "detail": rt.published.detail},
        "pin": pin_json(rt.state.pin),
        "changing": rt.inflight is not None,
        "pending": rt.pending,
        "last_error": rt.last_error or None,
        "last_switch": rt.last_switch,
        "targets": targets,
        "records": records,
    }


def live_view(engine: Engine) -> LiveView:
    services = []
    for name, rt in engine.services.items():
        targets = tuple(
            TargetView(
                t.name,
                rt.targets[t.name].health,
                tuple(ProbeView(p.name, rt.probes[(t.name, p.name)].last_ok) for p in t.probes),
            )
            for t in rt.config.targets
        )
        active = rt.published.target if rt.published.kind == "target" else None
        alarms = set(rt.decision.alarms) if rt.decision else set()
        if rt.unverified:
            alarms.add("not_verified")
        services.append(ServiceView(name, rt.state.mode, active, targets, frozenset(alarms)))
    return LiveView(
        engine.config.instance.name, engine.coord.is_leader(), engine.isolated, tuple(services)
    )


def change_json(change: Change) -> dict[str, Any]:
    return {
        "provider": change.key.provider,
        "zone": change.key.zone,
        "name": change.key.name,
        "type": change.key.type.value,
        "ttl": change.ttl,
        "before": list(change.before) if change.before is not None else None,
        "after": list(change.after),
    }


def violation_json(violation: Violation) -> dict[str, str]:
    return {"rule": violation.rule, "message": violation.message}


def pin_json(pin: core.Pin | None) -> dict[str, Any] | None:
    if pin is None:
        return None
    return {
        "target": pin.target,
        "reason": pin.reason,
        "actor": pin.actor,
        "at": rfc3339(pin.at),
        "force": pin.force,
    }


def probe_json(kind: str, state: ProbeState) -> dict[str, Any]:
    return {
        "type": kind,
        "health": state.health.value,
        "last_ok": state.last_ok,
        "last_reason": state.last_reason or None,
        "last_at": rfc3339(state.last_at) if state.last_at else None,
        "successes": state.successes,
        "failures": state.failures,
    }
