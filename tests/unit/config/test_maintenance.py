"""Per-target `maintenance:` windows: one mapping or a list, the drill window grammar."""

from __future__ import annotations

import pytest

from failover.config.types import MaintenanceWindow
from tests.unit.config.helpers import base, errors_of, load, target


def test_one_window_or_a_list() -> None:
    cfg = base()
    target(cfg, 1)["maintenance"] = {
        "days": ["Sun", "sat"],
        "window": "02:00-04:30",
        "timezone": "Europe/Paris",
        "reason": "kernel updates",
    }
    backup = load(cfg).services["shop"].targets[1]
    assert backup.maintenance == (
        MaintenanceWindow(("sun", "sat"), (120, 270), "Europe/Paris", "kernel updates"),
    )
    target(cfg, 0)["maintenance"] = [
        {"days": ["mon"], "window": "01:00-02:00"},
        {"days": ["thu"], "window": "23:00-24:00"},
    ]
    primary = load(cfg).services["shop"].targets[0]
    assert [w.days for w in primary.maintenance] == [("mon",), ("thu",)]
    assert primary.maintenance[0].reason == "maintenance window"
    assert primary.maintenance[0].timezone == "UTC"
    assert load(base()).services["shop"].targets[0].maintenance == ()


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({"window": "02:00-03:00"}, "targets[1].maintenance.days: missing"),
        ({"days": ["sun"]}, "targets[1].maintenance.window: missing"),
        ({"days": ["funday"], "window": "02:00-03:00"}, "maintenance.days[0]: unknown day"),
        ({"days": ["sun"], "window": "3-4"}, "maintenance.window: expected a window like"),
        ({"days": ["sun"], "window": "04:00-03:00"}, "the window must end after it starts"),
        (
            {"days": ["sun"], "window": "02:00-03:00", "timezone": "Mars/Olympus"},
            "maintenance.timezone: unknown time zone",
        ),
        ({"days": ["sun"], "window": "02:00-03:00", "when": 1}, "maintenance.when: unknown key"),
        ("sunday", "targets[1].maintenance: expected a mapping"),
        ([{"days": ["sun"]}], "targets[1].maintenance[0].window: missing"),
    ],
)
def test_errors_name_the_key_and_the_fix(window: object, expected: str) -> None:
    cfg = base()
    target(cfg, 1)["maintenance"] = window
    errors = errors_of(cfg)
    assert any(expected in e for e in errors), errors
