"""Drill windows: which instant falls in which scheduled window, across days and time zones."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from failover.config.loader import ConfigError, parse_config
from failover.config.types import DrillScheduleConfig
from failover.drill import window_start

PARIS = ZoneInfo("Europe/Paris")


def at(text: str, tz: ZoneInfo = PARIS) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


SCHEDULE = DrillScheduleConfig(
    enabled=True, days=("tue",), window=(600, 660), timezone="Europe/Paris", hold=60.0
)


@pytest.mark.parametrize(
    ("when", "start"),
    [
        ("2026-12-01 10:00:00", "2026-12-01 10:00:00"),  # a Tuesday, the window opens
        ("2026-12-01 10:59:59", "2026-12-01 10:00:00"),
        ("2026-12-01 11:00:00", None),  # the window is [start, end)
        ("2026-12-01 09:59:59", None),
        ("2026-12-02 10:30:00", None),  # Wednesday
        ("2026-06-02 10:30:00", "2026-06-02 10:00:00"),  # summer time: still local 10:00
    ],
)
def test_window_start(when: str, start: str | None) -> None:
    expected = at(start) if start else None
    assert window_start(SCHEDULE, at(when)) == expected


BASE = """
instance: {{name: t, state_dir: /tmp/x}}
providers: {{lab: {{type: builtin, listen: "127.0.0.1:0"}}}}
services:
  shop:
    records: [{{provider: lab, zone: example.test, name: shop.example.test, type: A}}]
    targets:
      - {{name: a, values: [192.0.2.1], probes: [{{type: tcp, address: "192.0.2.1:443"}}]}}
      - {{name: b, values: [192.0.2.2], probes: [{{type: tcp, address: "192.0.2.2:443"}}]}}
    drills: {drills}
"""


def test_drills_config_parses() -> None:
    text = BASE.format(
        drills='{enabled: true, days: [Tue, thu], window: "10:00-11:30", timezone: Europe/Paris,'
        " hold: 2m, target: b}"
    )
    drills = parse_config(text).services["shop"].drills
    assert drills == DrillScheduleConfig(
        True, ("tue", "thu"), (600, 690), "Europe/Paris", 120.0, "b"
    )


@pytest.mark.parametrize(
    ("drills", "expected"),
    [
        ("{enabled: true}", "services.shop.drills.days: missing"),
        ("{enabled: true, days: [tue]}", "services.shop.drills.window: missing"),
        ("{days: [funday]}", "services.shop.drills.days[0]: unknown day"),
        ('{window: "11:00-10:00"}', "services.shop.drills.window: the window must end after"),
        ('{window: "10h-11h"}', "services.shop.drills.window: expected a window like"),
        ("{timezone: Mars/Olympus}", "services.shop.drills.timezone: unknown time zone"),
        ("{target: c}", "services.shop.drills.target: 'c' is not a target"),
        ("{hold: 5}", "services.shop.drills.hold"),
        ("{colour: red}", "services.shop.drills.colour: unknown key"),
    ],
)
def test_drills_config_errors(drills: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE.format(drills=drills))
    assert expected in str(info.value)


def test_drills_are_off_unless_enabled() -> None:
    config = parse_config(BASE.format(drills='{days: [tue], window: "10:00-11:00"}'))
    assert config.services["shop"].drills is not None
    assert config.services["shop"].drills.enabled is False
