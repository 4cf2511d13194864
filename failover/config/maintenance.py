"""The per-target `maintenance:` windows: the target is drained while one is open.

targets:
  - name: secondary
    maintenance:                      # one window, or a list of them
      days: [sun]                     # mon..sun
      window: "02:00-04:00"           # HH:MM-HH:MM in `timezone`, like scheduled drills
      timezone: Europe/Paris          # default UTC
      reason: "kernel updates"        # shown by status and the journal
"""

from __future__ import annotations

from failover.config.drills import parse_timezone, parse_window
from failover.config.parse import Section, plain, string
from failover.config.types import DAYS, MaintenanceWindow


def _one(m: Section) -> MaintenanceWindow | None:
    days: list[str] = []
    for path, node in m.items("days", "a list of days like [sun]"):
        day = str(node).strip().lower()[:3]
        if day not in DAYS:
            m.errors.append(f"{path}: unknown day {node!r}; expected one of {', '.join(DAYS)}")
        elif day not in days:
            days.append(day)
    if not days and not m.failed("days"):
        m.error("days", "missing; expected the days of the window, like [sun]")
    window = m.need("window", parse_window, 'a window like "02:00-04:00"')
    timezone = m.get("timezone", parse_timezone, "UTC")
    reason = m.opt("reason", string)
    m.done()
    if not days or window is None:
        return None
    text = plain(reason) if reason else "maintenance window"
    return MaintenanceWindow(tuple(days), window, timezone, text)


def parse_maintenance(t: Section) -> tuple[MaintenanceWindow, ...]:
    """A target's windows: `maintenance:` holds one mapping or a list of them."""
    raw = t.raw("maintenance")
    if raw is None:
        return ()
    nodes = t.items("maintenance") if isinstance(raw, list) else [(t.sub("maintenance"), raw)]
    out = []
    for path, node in nodes:
        m = Section.open(t.errors, node, path)
        window = _one(m) if m is not None else None
        if window is not None:
            out.append(window)
    return tuple(out)
