"""Recurring weekly windows (scheduled drills, maintenance): is `now` inside one? Pure: the
time zone database is data, `now` is a parameter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from failover.config.types import DAYS


def window_bounds(
    days: Sequence[str], window: tuple[int, int], timezone: str, now: float
) -> tuple[float, float] | None:
    """(start, end) in unix time of the window that contains `now`, or None outside windows.

    `window` is [start, end) in minutes after local midnight on each of `days`."""
    local = datetime.fromtimestamp(now, ZoneInfo(timezone))
    if DAYS[local.weekday()] not in days:
        return None
    minute = local.hour * 60 + local.minute
    start, end = window
    if not start <= minute < end:
        return None
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight + timedelta(minutes=start)).timestamp(), (
        midnight + timedelta(minutes=end)
    ).timestamp()
