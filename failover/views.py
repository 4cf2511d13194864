"""Read-only views of the engine: the admin API's status body and the metrics' live view."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from failover.config.types import Config
from failover.coord.base import Coordinator
from failover.core import decide as core
from failover.core.health import ProbeState, TargetHealth
from failover.core.plan import Violation
from failover.core.values import serves
from failover.eventloop import running_loop_name
from failover.journal import JournalHealth
from failover.metrics import LiveView, ProbeView, ServiceView, TargetView
from failover.model import Change, Health, values_for_type
from failover.pool_views import fallback_json, pool_json, pool_metrics
from failover.provider_sync import ProviderSync, SyncState
from failover.runtime import ServiceRuntime
from failover.slicing import Steps
from failover.timefmt import rfc3339


def status(
    config: Config,
    coord: Coordinator,
    services: Mapping[str, ServiceRuntime],
    *,
    isolated: bool,
    canary_failing: Callable[[str], bool],
    local_fault: str = "",
    dry_run: bool,
    started_at: float,
    journal: JournalHealth,
    votes: Callable[[str, str, Health], dict[str, str]] | None = None,
    decided: Callable[[ServiceRuntime], Mapping[str, TargetHealth]] | None = None,
    decided_fallback: Callable[[ServiceRuntime], TargetHealth | None] | None = None,
) -> dict[str, Any]:
    """The body of `GET /v1/status` (docs/api.md), plus the instance-wide alarms. `votes` gives
    each instance's view of a target and `decided` (`decided_fallback`: of the fallback) the
    health the decision uses (the quorum's, with several instances)."""
    alarms = ["journal_unwritable"] if journal.unwritable else []
    views = {
        name: _service_status(
            config,
            rt,
            votes,
            decided(rt) if decided else None,
            decided_fallback(rt) if decided_fallback else None,
        )
        for name, rt in services.items()
    }
    return {
        "instance": config.instance.name,
        "location": config.instance.location,
        "leader": coord.is_leader(),
        "leader_name": coord.leader_name(),
        "coordination": coord.condition(),
        "instances": _instances(config, coord, isolated),
        "isolated": isolated,
        "local_fault": local_fault or None,
        "canaries": {
            c.name: {"location": c.location, "failing": canary_failing(c.name)}
            for c in config.canaries
        },
        "dry_run": dry_run,
        "started_at": rfc3339(started_at),
        "event_loop": running_loop_name(),
        "alarms": alarms,
        "journal": journal.as_json(),
        "services": views,
    }


def _instances(config: Config, coord: Coordinator, isolated: bool) -> dict[str, Any]:
    """Every live vantage point: where it runs, whether it believes itself cut off."""
    me = config.instance.name
    out = {
        name: {"location": view.location, "isolated": view.isolated, "at": rfc3339(view.at)}
        for name, view in coord.views().items()
        if name != me
    }
    out[me] = {"location": config.instance.location, "isolated": isolated, "at": None}
    return dict(sorted(out.items()))


def _service_status(
    config: Config,
    rt: ServiceRuntime,
    votes: Callable[[str, str, Health], dict[str, str]] | None,
    decided: Mapping[str, TargetHealth] | None,
    decided_fallback: TargetHealth | None = None,
) -> dict[str, Any]:
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
            "pool": pool_json(rt, target),
            "votes": (
                votes(rt.name, target.name, health.health)
                if votes
                else {config.instance.name: health.health.value}
            ),
            "decided": (decided or rt.targets)[target.name].health.value,
            "probes": {
                p.name: probe_json(p.type, rt.probes[(target.name, p.name)]) for p in target.probes
            },
        }
    records = []
    for record in rt.config.records:
        current = (rt.current or {}).get(record.key)
        wanted = values_for_type(record.type, active_cfg.values) if active_cfg else None
        if active_cfg is not None and active_cfg.pool is not None and current is not None:
            wanted = current.values if serves(active_cfg, record.type, current.values) else None
        elif rt.published.kind == "fallback" and rt.config.fallback is not None:
            wanted = values_for_type(record.type, rt.config.fallback.values)
        sync = rt.sync.get(record.provider)
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
                "verified": _verified(sync),
                "error": rt.provider_errors.get(record.provider),
                "sync": sync.as_json() if sync else None,
                "verify_timeout_seconds": check.timeout if check and check.enabled else None,
                "verify_method": check.method if check and check.enabled else None,
            }
        )
    provider_alarms = rt.alarms()
    alarms = set(decision.alarms) if decision else set()
    alarms |= set(provider_alarms)
    return {
        "active": active,
        "mode": rt.state.mode.value,
        "phase": rt.phase.value,
        "phase_detail": rt.detail or None,
        "blocked": rt.state.blocked,
        "reason": decision.reason if decision else "starting: no decision yet",
        "alarms": sorted(alarms),
        "alarm_details": provider_alarms,
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
        "fallback": fallback_json(rt, decided_fallback),
    }


def live_view_steps(
    config: Config,
    coord: Coordinator,
    services: Mapping[str, ServiceRuntime],
    isolated: bool,
    journal: JournalHealth,
    votes: Callable[[str, str, Health], dict[str, str]] | None = None,
    *,
    local_fault: bool = False,
) -> Steps[LiveView]:
    """What the metrics collector exports at scrape time (so a metric never drifts), as sliced
    work (one step per service): at 10,000 services building it took ~0.4 s, too long to hold
    the event loop at once (`slicing.run_sliced`; `run_whole` builds it in one go). Each
    service's part is consistent; two services may be seen a few milliseconds apart, as two
    scrapes would."""
    views = []
    vantage: list[tuple[str, str, str, int]] = []
    for name, rt in list(services.items()):  # a copy: a reload may swap them between steps
        targets = tuple(
            TargetView(
                t.name,
                rt.targets[t.name].health,
                tuple(ProbeView(p.name, rt.probes[(t.name, p.name)].last_ok) for p in t.probes),
                pool_metrics(rt, t),
            )
            for t in rt.config.targets
        )
        active = rt.published.target if rt.published.kind == "target" else None
        alarms = set(rt.decision.alarms) if rt.decision else set()
        alarms |= set(rt.alarms())
        fallback = None if rt.config.fallback is None else rt.published.kind == "fallback"
        views.append(
            ServiceView(
                name, rt.state.mode, active, targets, frozenset(alarms), rt.phase.value, fallback
            )
        )
        for t in rt.config.targets:
            own = rt.targets[t.name].health
            seen = list((votes(name, t.name, own) if votes else {"": own.value}).values())
            for health in Health:
                vantage.append((name, t.name, health.value, seen.count(health.value)))
        yield
    return LiveView(
        config.instance.name,
        coord.is_leader(),
        isolated,
        tuple(views),
        tuple(vantage),
        journal_unwritable=journal.unwritable,
        journal_pending=journal.pending,
        journal_lost=journal.lost,
        local_fault=local_fault,
    )


def _verified(sync: ProviderSync | None) -> bool | None:
    """True only when the provider's latest change verified; False while it lags behind a
    failed verification; None when not known (never a verdict about an older change)."""
    if sync is None:
        return None
    if sync.state is SyncState.VERIFIED:
        return True
    if sync.unverified or sync.state is SyncState.NOT_VERIFIED:
        return False
    return None


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
