"""The audit's maintenance-overlap check: every target drained at once by its windows."""

from __future__ import annotations

from dataclasses import replace

from failover.audit.checks import config_findings
from failover.audit.maintenance import maintenance_findings
from failover.config.types import MaintenanceWindow, ServiceConfig
from tests.unit.config.helpers import base, load
from tests.unit.core.conftest import build_service

TWO = build_service(targets={"aws": ("aws", ("192.0.2.1",)), "ovh": ("ovh", ("192.0.2.2",))})


def windows(**by_target: MaintenanceWindow) -> ServiceConfig:
    targets = tuple(
        replace(t, maintenance=(by_target[t.name],)) if t.name in by_target else t
        for t in TWO.targets
    )
    return replace(TWO, targets=targets)


def test_overlapping_windows_of_the_only_two_targets_are_a_warning() -> None:
    svc = windows(
        aws=MaintenanceWindow(("sun",), (120, 240), "UTC"),
        ovh=MaintenanceWindow(("sun",), (210, 300), "Europe/Paris"),  # 02:30 UTC in winter
    )
    (finding,) = maintenance_findings(svc)
    assert finding.check == "maintenance-overlap" and finding.severity.value == "warning"
    assert "sun 02:30 UTC" in finding.detail


def test_disjoint_windows_or_a_target_without_one_are_fine() -> None:
    assert (
        maintenance_findings(
            windows(
                aws=MaintenanceWindow(("sun",), (120, 240), "UTC"),
                ovh=MaintenanceWindow(("sun",), (240, 300), "UTC"),  # [start, end): touching
            )
        )
        == []
    )
    assert maintenance_findings(windows(aws=MaintenanceWindow(("sun",), (0, 1440)))) == []


def test_summer_time_is_judged_too() -> None:
    # 03:00-04:00 Paris is 02:00 UTC in winter (no overlap with 01:00-02:00 UTC) but 01:00
    # UTC in summer (overlap)
    svc = windows(
        aws=MaintenanceWindow(("sat",), (60, 120), "UTC"),
        ovh=MaintenanceWindow(("sat",), (180, 240), "Europe/Paris"),
    )
    assert [f.check for f in maintenance_findings(svc)] == ["maintenance-overlap"]


def test_reported_by_the_audit_from_the_config() -> None:
    cfg = base()
    for t in cfg["services"]["shop"]["targets"]:
        t["maintenance"] = {"days": ["mon"], "window": "01:00-02:00"}
    assert "maintenance-overlap" in [f.check for f in config_findings(load(cfg))]
