"""Time formatting shared by the journal, the admin API and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(ts: float) -> str:
    """UTC RFC 3339 with milliseconds, e.g. 2026-11-26T22:49:37.123Z."""
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_when(text: str, now: float) -> float:
    """`--at`: an ISO 8601 / RFC 3339 time (UTC when it names no zone), or `+DURATION` from
    now (`+10m`). ValueError names the accepted forms."""
    from failover.config.parse import parse_duration  # the config's duration grammar

    raw = text.strip()
    if raw.startswith("+"):
        return now + parse_duration(raw[1:])
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time; expected e.g. 2026-12-05T14:00:00Z or +10m"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
