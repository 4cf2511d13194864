"""The per-service `drills:` section: scheduled failover drills, off by default.

drills:
  enabled: true
  days: [tue]                 # mon..sun
  window: "10:00-11:00"       # HH:MM-HH:MM in `timezone`; the drill starts inside it
  timezone: Europe/Paris      # default UTC
  hold: 5m
  target: ovh-gra             # default: the first other UP target
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from failover.config.parse import Invalid, Section, boolean, duration, plain, string
from failover.config.types import DAYS, DrillScheduleConfig

_WINDOW = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)")


def parse_window(value: object) -> tuple[int, int]:
    text = plain(string(value)).replace(" ", "")
    match = _WINDOW.fullmatch(text)
    if match is None:
        raise Invalid('expected a window like "10:00-11:00" (HH:MM-HH:MM, 24-hour clock)')
    start = int(match[1]) * 60 + int(match[2])
    end = int(match[3]) * 60 + int(match[4])
    if end <= start or end > 24 * 60:
        raise Invalid("the window must end after it starts, on the same day")
    return start, end


def parse_timezone(value: object) -> str:
    name = plain(string(value))
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(
            f"unknown time zone {name!r}; expected an IANA name like Europe/Paris"
        ) from exc
    return name


def parse_drills(s: Section, targets: set[str]) -> DrillScheduleConfig | None:
    if s.raw("drills") is None:
        return None
    d = s.section("drills")
    enabled = d.get("enabled", boolean, False)
    days: list[str] = []
    for path, node in d.items("days", "a list of days like [tue, thu]"):
        day = str(node).strip().lower()[:3]
        if day not in DAYS:
            d.errors.append(f"{path}: unknown day {node!r}; expected one of {', '.join(DAYS)}")
        elif day not in days:
            days.append(day)
    if enabled and not days and not d.failed("days"):
        d.error("days", "missing; expected the days drills may run, like [tue]")
    window = d.get("window", parse_window, (0, 0)) if d.raw("window") is not None else None
    if enabled and window is None:
        d.error("window", 'missing; expected a window like "10:00-11:00"')
    target = d.opt("target", string)
    if target is not None and plain(target) not in targets:
        d.error(
            "target", f"{target!r} is not a target of this service ({', '.join(sorted(targets))})"
        )
    config = DrillScheduleConfig(
        enabled=enabled,
        days=tuple(days),
        window=window or (0, 0),
        timezone=d.get("timezone", parse_timezone, "UTC"),
        hold=d.get("hold", duration(), 300.0),
        target=plain(target) if target is not None else None,
    )
    d.done()
    return config
