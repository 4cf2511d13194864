"""Findings read from the running daemon: its journal (drills) and its live status (pure).

The bodies are those of `GET /v1/status` and `GET /v1/history` (docs/api.md), so these checks are
tested with the daemon's own answers and never need one to run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from failover.audit.checks import target_path
from failover.audit.model import Finding, Severity
from failover.config.types import Config, ServiceConfig, TargetConfig
from failover.timefmt import rfc3339

DRILL_MAX_AGE = 30 * 86400.0

Entry = Mapping[str, Any]


def _when(entry: Entry) -> float | None:
    ts = entry.get("ts")
    if isinstance(ts, int | float):
        return float(ts)
    text = entry.get("time")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _day(ts: float) -> str:
    return rfc3339(ts)[:10]


def _drill_advice(svc: ServiceConfig, target: TargetConfig) -> str:
    return (
        f"Run `failover drill {svc.name} --to {target.name}` at a quiet hour (it switches, "
        "verifies, holds and switches back), and schedule drills so it stays proven."
    )


def drill_findings(
    config: Config, histories: Mapping[str, Sequence[Entry]], now: float
) -> list[Finding]:
    """Warning per secondary with no successful drill switch to it in the last 30 days.

    `histories` holds each service's journal entries; a service missing from it is skipped
    (the daemon does not run it). A drill counts when its switch succeeded (`result` ok).
    """
    out = []
    for svc in config.services.values():
        entries = histories.get(svc.name)
        if entries is None:
            continue
        for target in svc.targets[1:]:
            drills = [
                (when, e)
                for e in entries
                if e.get("trigger") == "drill"
                and e.get("kind") == "switch"
                and e.get("to") == target.name
                and (when := _when(e)) is not None
            ]
            good = [when for when, e in drills if e.get("result", "ok") == "ok"]
            subject = target_path(svc, target)
            if good and now - max(good) <= DRILL_MAX_AGE:
                continue
            if good:
                age = int((now - max(good)) // 86400)
                title = f"{svc.name} target {target.name} was last drilled {age} days ago"
                detail = (
                    f"The last successful drill switched to it on {_day(max(good))}; since "
                    "then its servers, certificates, data and DNS path may have drifted."
                )
            else:
                title = f"{svc.name} target {target.name} was never drilled"
                detail = "No drill ever switched to it: the fallback is a hope, not a plan."
                if drills:
                    when, last = max(drills, key=lambda d: d[0])
                    detail = (
                        f"No drill switched to it successfully; the last attempt, on "
                        f"{_day(when)}, ended {last.get('result')}."
                    )
            out.append(
                Finding(
                    Severity.WARNING,
                    "drill-overdue",
                    subject,
                    title,
                    detail,
                    _drill_advice(svc, target),
                )
            )
    return out


def daemon_unknown(reason: str) -> Finding:
    """Info: what the daemon knows (drills, live health) could not be read."""
    return Finding(
        Severity.INFO,
        "daemon-state-unknown",
        "daemon",
        "drills and live health unknown: daemon not reachable",
        f"{reason}. Whether the secondaries were drilled, and whether they are UP now, was not "
        "checked.",
        "Run the audit where the daemon's admin API answers (the host running `failover run`, "
        "or give --socket PATH, or --url with --token-file).",
    )


def status_findings(config: Config, status: Mapping[str, Any]) -> list[Finding]:
    """From `GET /v1/status`: automation switched off, and fallbacks that are DOWN right now."""
    services = status.get("services")
    services = services if isinstance(services, Mapping) else {}
    out = []
    missing = sorted(set(config.services) - set(services))
    extra = sorted(set(services) - set(config.services))
    if missing or extra:
        parts = [f"it does not run {', '.join(missing)}"] if missing else []
        parts += [f"it runs {', '.join(extra)}, absent from this file"] if extra else []
        out.append(
            Finding(
                Severity.INFO,
                "daemon-config-differs",
                "daemon",
                "the daemon runs another configuration",
                f"Compared with this file, {'; '.join(parts)}.",
                "Audit the file the daemon runs, or reload the daemon with this one.",
            )
        )
    for svc in config.services.values():
        body = services.get(svc.name)
        if isinstance(body, Mapping):
            out += _service_state(svc, body)
    return out + _vantage_state(config, status)


def _vantage_state(config: Config, status: Mapping[str, Any]) -> list[Finding]:
    """With coordination: the live instances must sit in two or more locations, else one
    outage (or one network path) still blinds every vantage point at once."""
    instances = status.get("instances")
    if config.coordination is None or not isinstance(instances, Mapping):
        return []
    located = {
        name: body.get("location") for name, body in instances.items() if isinstance(body, Mapping)
    }
    places = {loc for loc in located.values() if loc}
    if len(located) >= 2 and len(places) >= 2:
        return []
    where = ", ".join(
        f"{n} in {loc or 'an unknown location'}" for n, loc in sorted(located.items())
    )
    if len(located) < 2:
        title = "only one instance is live: a single vantage point decides"
    else:
        title = f"every live instance runs in {next(iter(places), 'one unknown location')}"
    primaries = {s.targets[0].location for s in config.services.values() if s.targets}
    severity = Severity.CRITICAL if places and places <= primaries else Severity.WARNING
    return [
        Finding(
            severity,
            "instances-one-location",
            "coordination",
            title,
            f"Live instances: {where}. A fault there takes every vantage point (and the "
            "leader) with it"
            + (", and it is where a primary runs" if severity is Severity.CRITICAL else "")
            + ".",
            "Run instances in at least two clouds or sites, never only inside the one they "
            "protect, and set instance.location on each.",
        )
    ]


def _service_state(svc: ServiceConfig, body: Mapping[str, Any]) -> list[Finding]:
    out = []
    subject = f"services.{svc.name}"
    mode, active = body.get("mode"), body.get("active")
    if mode == "paused":
        out.append(
            Finding(
                Severity.WARNING,
                "automation-off",
                subject,
                f"{svc.name} is paused",
                "Probes go on, but no automatic failover happens while it is paused.",
                f"`failover resume {svc.name}` once the maintenance is over.",
            )
        )
    elif mode == "pinned":
        pin = _mapping(body.get("pin"))
        by = f" by {pin.get('actor')}" if pin.get("actor") else ""
        out.append(
            Finding(
                Severity.WARNING,
                "automation-off",
                subject,
                f"{svc.name} is pinned to {active or pin.get('target')}",
                f"It was pinned{by}; it stays on that target even if it fails, until released.",
                f"`failover release {svc.name}` when the incident or test that needed it is over.",
            )
        )
    if body.get("blocked"):
        out.append(
            Finding(
                Severity.WARNING,
                "automation-off",
                subject,
                f"{svc.name} is blocked after too many automatic switches",
                "Automation stays off for this service until an operator acknowledges the "
                "flapping.",
                f"Find why it flapped, then `failover ack {svc.name}`.",
            )
        )
    health = _mapping(body.get("targets"))
    if svc.targets and all(_health(health, t.name) == "down" for t in svc.targets):
        published = (
            f"DNS still serves {active}, which is DOWN"
            if active
            else "nothing is published: clients get no answer from failover"
        )
        out.append(
            Finding(
                Severity.CRITICAL,
                "all-down",
                subject,
                f"every target of {svc.name} is DOWN now",
                f"{published}. No target can take over (alarm all_down).",
                "Compare the probe reasons in `failover status`: if all fail alike, suspect "
                f"the probes or this vantage point (`failover probe -c FILE {svc.name}` from "
                "elsewhere); otherwise repair a target and promote it.",
            )
        )
        return out
    others = [t for t in svc.targets if t.name != active]
    down = [t for t in others if _health(health, t.name) == "down"]
    for target in down:
        alone = len(down) == len(others) and active is not None
        reason = _mapping(health.get(target.name)).get("reason") or "its probes fail"
        out.append(
            Finding(
                Severity.CRITICAL if alone else Severity.WARNING,
                "fallback-down",
                target_path(svc, target),
                f"{svc.name} target {target.name} is DOWN now"
                + (": no fallback is available" if alone else ""),
                f"{target.name}: {reason}. If {active or 'the active target'} failed now, "
                f"failover could not switch to {target.name}.",
                f"Repair {target.name} (or its probes, if they are wrong); `failover probe -c "
                f"FILE {svc.name} {target.name}` shows what fails.",
            )
        )
    return out


def _health(targets: Mapping[str, Any], name: str) -> str | None:
    body = targets.get(name)
    return body.get("health") if isinstance(body, Mapping) else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
