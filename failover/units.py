"""Durations and sizes as operators read them, in every message, summary and decision line.

Pure (stdlib only, no I/O): the decision core imports it. Durations use the units a config file
is written in (`h`, `m`, `s`, `ms`), so `check-config` prints `1h30m` for `1h30m` and a decision
says `flap window 24h` where the file says `24h`; the text can be pasted back into the file.
"""

from __future__ import annotations

import math

__all__ = ["format_duration", "format_size"]

_MS_PER_HOUR, _MS_PER_MINUTE = 3_600_000, 60_000


def format_duration(seconds: float, *, round_up: bool = False) -> str:
    """`90` → `1m30s`, `5400` → `1h30m`, `7200` → `2h`, `0.2` → `200ms`; negative is `0s`.

    Exact to the millisecond by default: the inverse of the config's `parse_duration`.
    `round_up=True` is for a wait measured on a clock (`129.01` → `2m10s`): whole seconds,
    rounded up so that a countdown never reads shorter than it is.
    """
    if round_up:
        seconds = math.ceil(seconds - 1e-9)
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000, 3):g}ms"
    hours, rest = divmod(round(seconds * 1000), _MS_PER_HOUR)
    minutes, millis = divmod(rest, _MS_PER_MINUTE)
    out = f"{hours}h" if hours else ""
    out += f"{minutes}m" if minutes else ""
    out += f"{millis / 1000:g}s" if millis or not out else ""
    return out


def format_size(n: int) -> str:
    """Bytes: 65536 → `64KiB`, 1048576 → `1MiB`, 1000 → `1000 bytes`, 1 → `1 byte`."""
    for unit, factor in (("MiB", 1024**2), ("KiB", 1024)):
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n} byte{'' if n == 1 else 's'}"
