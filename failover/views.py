"""Read-only views of the engine: the admin API's status body and the metrics' live view."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from failover.config.types import Config
from failover.coord.base import Coordinator
from failover.core import decide as core
from failover.core.health import ProbeState
from failover.core.plan import Violation
from failover.metrics import LiveView, ProbeView, ServiceView, TargetView
from failover.model import Change, values_for_type
from failover.runtime import ServiceRuntime
from failover.timefmt import rfc3339


def status(
    config: Config,
    coord: Coordinator,
    services: Mapping[str, ServiceRuntime],
    *,
    isolated: bool,
    canary_failing: Callable[[str], bool],
    dry_run: bool,
    started_at: float,
) -> dict[str, Any]:
    """The body of `GET /v1/status` (SPEC §8)."""
    return {
        "instance": config.instance.name,
        "location": config.instance.location,
        "leader": coord.is_leader(),
        "leader_name": coord.leader_name(),
        "isolated": isolated,
        "canaries": {
            c.name: {"location": c.location, "failing": canary_failing(c.name)}
            for c in config.canaries
        },
        "dry_run": dry_run,
        "started_at": rfc3339(started_at),
        "services": {name: _service_status(config, rt) for name, rt in services.items()},
    }


def _service_status(config: Config, rt: ServiceRuntime) -> dict[str, Any]:
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
            "votes": {config.instance.name: health.health.value},
            "probes": {
                p.name: probe_json(p.type, rt.probes[(target.name, p.name)]) for p in target.probes
            },
        }
    records = []
    for record in rt.config.records:
        current = (rt.current or {}).get(record.key)
        wanted = values_for_type(record.type, active_cfg.values) if active_cfg else None
        confirmation = rt.confirmations.get(record.provider)
        provider = config.providers.get(record.provider)
        check = provider.verify if provider is not None else None
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
                "verify_timeout_seconds": check.timeout if check and check.enabled else None,
            }
        )
    alarms = set(decision.alarms) if decision else set()
    if rt.unverified:
        alarms.add("not_verified")
    return {
        "active": active,
        "mode": rt.state.mode.value,
        "phase": rt.phase.value,
        "phase_detail": rt.detail or None,
        "blocked": rt.state.blocked,
        "reason": decision.reason if decision else "starting: no decision yet",
        "alarms": sorted(alarms),
        "published": {"kind": rt.published.kind, "detail": rt.published.detail},
        "pin": pin_json(rt.state.pin),
        "changing": rt.inflight is not None,
        "verifying": rt.confirming is not None,
        "drill": drill_json(rt.drill_info) if rt.drill is not None else None,
        "pending": rt.pending,
        "last_error": rt.last_error or None,
        "last_switch": rt.last_switch,
        "targets": targets,
        "records": records,
    }


def live_view(
    config: Config, coord: Coordinator, services: Mapping[str, ServiceRuntime], isolated: bool
) -> LiveView:
    """What the metrics collector exports at scrape time (so a metric never drifts)."""
    views = []
    for name, rt in services.items():
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
        views.append(
            ServiceView(name, rt.state.mode, active, targets, frozenset(alarms), rt.phase.value)
        )
    return LiveView(config.instance.name, coord.is_leader(), isolated, tuple(views))


def drill_json(info: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A running drill as `status` shows it: its step, and the hold's time left."""
    if info is None:
        return None
    body = {k: v for k, v in info.items() if not k.startswith("_")}
    ends = info.get("_hold_ends")
    body["hold_ends_at"] = rfc3339(ends) if isinstance(ends, float) else None
    return body


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
