"""Time formatting shared by the journal, the admin API and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(ts: float) -> str:
    """UTC RFC 3339 with milliseconds, e.g. 2026-11-26T22:49:37.123Z."""
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
