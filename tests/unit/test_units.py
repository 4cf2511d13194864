"""One way to write a duration or a size, for config messages, summaries and decision lines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.config.parse import parse_duration
from failover.units import format_duration, format_size


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"), (-5, "0s"), (0.2, "200ms"), (0.0005, "0.5ms"), (1.5, "1.5s"), (42, "42s"),
        (60, "1m"), (90, "1m30s"), (120.5, "2m0.5s"), (3600, "1h"), (3900, "1h5m"),
        (5400, "1h30m"), (3959, "1h5m59s"), (7200, "2h"), (86400, "24h"), (97200, "27h"),
        (59.9996, "1m"),
    ],
)  # fmt: skip
def test_format_duration_is_exact(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"), (-5, "0s"), (0.2, "1s"), (42, "42s"), (42.000000001, "42s"), (59.5, "1m"),
        (60, "1m"), (130, "2m10s"), (129.01, "2m10s"), (3600, "1h"), (3959, "1h5m59s"),
        (97200, "27h"),
    ],
)  # fmt: skip
def test_format_duration_round_up_for_countdowns(seconds: float, text: str) -> None:
    assert format_duration(seconds, round_up=True) == text


@given(st.integers(min_value=0, max_value=1000 * 3600 * 100))
def test_format_duration_round_trips_through_the_config_syntax(millis: int) -> None:
    assert parse_duration(format_duration(millis / 1000)) == pytest.approx(millis / 1000)


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 bytes"), (1, "1 byte"), (1000, "1000 bytes"), (4096, "4KiB"), (1024**2, "1MiB")],
)
def test_format_size(n: int, text: str) -> None:
    assert format_size(n) == text
