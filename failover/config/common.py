"""What several config areas share: name spellings, the keys every probe takes, retry policies.

Only `parse` and `types` below it, so every area module (probes, providers, notifications…)
can build on it and the loader imports the areas, never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from failover.config.parse import Section, duration, integer, matching, plain
from failover.config.types import RetryConfig

LOWER_NAME = (r"[a-z0-9][a-z0-9_-]*", "lower-case letters, digits, '-' and '_'")  # services…
NAME = (r"[A-Za-z0-9][A-Za-z0-9_.-]*", "letters, digits, '.', '-' and '_'")  # targets, probes…
valid_name = matching(NAME[0], NAME[1])
positive = duration()
zero_ok = duration(allow_zero=True)


def one_of(registry: Mapping[str, object]) -> str:
    """What a missing `type` of a tagged union should be."""
    return f"a type, one of: {', '.join(registry)}"


def opt_plain(value: str | None) -> str | None:
    return None if value is None else plain(value)


@dataclass(frozen=True)
class ProbeCommon:
    """The keys every probe takes, resolved through the inheritance chain."""

    name: str
    interval: float
    timeout: float
    base_dir: Path | None = None  # relative paths (ca_file…) are read from here
    fast_interval: float | None = None


def retry_policy(sec: Section) -> RetryConfig:
    """`retry: {attempts, initial, max_delay, deadline}` of every provider and webhook."""
    r = sec.section("retry")
    default = RetryConfig()
    config = RetryConfig(
        attempts=r.get("attempts", integer(1, 100), default.attempts),
        initial=r.get("initial", positive, default.initial),
        max_delay=r.get("max_delay", positive, default.max_delay),
        deadline=r.get("deadline", positive, default.deadline),
    )
    r.done()
    return config
