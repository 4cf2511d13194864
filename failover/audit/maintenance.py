"""Maintenance windows that drain every target at once (pure: no I/O, no clock).

With a window on the only secondary that overlaps the primary's, there is a time every week
when no target may serve: the drain of the second one is refused by nothing (windows are not
commands), so decisions hold on a drained target. Windows are compared over a winter and a
summer week, so time zones with daylight saving time are judged both ways."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from failover.audit.model import Finding, Severity
from failover.config.types import DAYS, MaintenanceWindow, ServiceConfig

# Mondays of two reference weeks: one in winter, one in summer (daylight saving time)
WEEKS = (datetime(2026, 1, 5), datetime(2026, 7, 6))
Interval = tuple[float, float]


def _intervals(windows: tuple[MaintenanceWindow, ...], monday: datetime) -> list[Interval]:
    out: list[Interval] = []
    for w in windows:
        zone = ZoneInfo(w.timezone)
        for day in w.days:
            date = (monday + timedelta(days=DAYS.index(day))).replace(tzinfo=zone)
            start = (date + timedelta(minutes=w.window[0])).timestamp()
            out.append((start, start + (w.window[1] - w.window[0]) * 60))
    return out


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    return [(max(s1, s2), min(e1, e2)) for s1, e1 in a for s2, e2 in b if max(s1, s2) < min(e1, e2)]


def maintenance_findings(svc: ServiceConfig) -> list[Finding]:
    """Warning: every target of the service is in a maintenance window at some time."""
    if len(svc.targets) < 2 or not all(t.maintenance for t in svc.targets):
        return []
    for monday in WEEKS:
        common = _intervals(svc.targets[0].maintenance, monday)
        for target in svc.targets[1:]:
            common = _intersect(common, _intervals(target.maintenance, monday))
        if common:
            start = datetime.fromtimestamp(min(s for s, _ in common), ZoneInfo("UTC"))
            when = start.strftime("%a %H:%M UTC").lower().replace(" utc", " UTC")
            names = ", ".join(t.name for t in svc.targets)
            return [
                Finding(
                    Severity.WARNING,
                    "maintenance-overlap",
                    f"services.{svc.name}.targets",
                    f"every target of {svc.name} can be in maintenance at once",
                    f"the maintenance windows of {names} overlap (first on {when}): then "
                    "every target is drained and decisions hold on one of them, whatever "
                    "its health.",
                    "Move one target's maintenance window so that another target is always "
                    "available, or add a target without that window.",
                )
            ]
    return []
