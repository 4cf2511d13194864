"""What an audit produces: findings with a severity, and the report that carries them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from failover.timefmt import rfc3339


class Severity(StrEnum):
    """critical: a failover would not happen or not help; warning: a weakness; info: a gap in
    what the audit could see."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


SEVERITY_ORDER = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)


@dataclass(frozen=True)
class Finding:
    """One observation. `check` is a stable identifier (for suppression lists and dashboards);
    `subject` is the config path or object concerned, like `services.shop.records[1]`."""

    severity: Severity
    check: str
    subject: str
    title: str
    detail: str
    advice: str

    def as_json(self) -> dict[str, str]:
        return {
            "severity": self.severity.value,
            "check": self.check,
            "subject": self.subject,
            "title": self.title,
            "detail": self.detail,
            "advice": self.advice,
        }


@dataclass(frozen=True)
class AuditReport:
    """The findings, most severe first, and where the audit looked."""

    config_path: str
    generated_at: float
    instance: str
    findings: tuple[Finding, ...]
    daemon: str  # what was read from the daemon, or why nothing was
    dns: str  # whether the zones' NS sets were queried

    def counts(self) -> dict[str, int]:
        return {s.value: sum(1 for f in self.findings if f.severity is s) for s in SEVERITY_ORDER}

    @property
    def has_critical(self) -> bool:
        return any(f.severity is Severity.CRITICAL for f in self.findings)

    def summary(self) -> dict[str, Any]:
        return {
            **self.counts(),
            "config": self.config_path,
            "generated_at": rfc3339(self.generated_at),
            "instance": self.instance,
            "daemon": self.daemon,
            "dns": self.dns,
        }


def ordered(findings: list[Finding]) -> tuple[Finding, ...]:
    """Most severe first; within a severity, the order the checks found them (config order)."""
    rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    return tuple(sorted(findings, key=lambda f: rank[f.severity]))
