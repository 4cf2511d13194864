"""Renderings of an audit report: compact text for terminals, stable JSON for tools, and
Markdown a team can paste into a continuity review."""

from __future__ import annotations

import json
import textwrap

from failover.audit.model import SEVERITY_ORDER, AuditReport
from failover.timefmt import rfc3339

FORMATS = ("text", "json", "markdown")


def render(report: AuditReport, fmt: str) -> str:
    if fmt == "json":
        return as_json(report)
    if fmt == "markdown":
        return as_markdown(report)
    return as_text(report)


def as_json(report: AuditReport) -> str:
    """`{"findings": [...], "summary": {...}}`, most severe first."""
    body = {"findings": [f.as_json() for f in report.findings], "summary": report.summary()}
    return json.dumps(body, indent=2, sort_keys=True)


def _counts(report: AuditReport) -> str:
    counts = report.counts()
    return ", ".join(f"{counts[s.value]} {s.value}" for s in SEVERITY_ORDER)


def as_text(report: AuditReport, width: int = 100) -> str:
    lines = [
        f"failover audit of {report.config_path}: {_counts(report)}",
        f"  daemon: {report.daemon}; dns: {report.dns}",
    ]
    for f in report.findings:
        lines += ["", f"{f.severity.value.upper():<8} {f.subject}: {f.title}"]
        for text, lead in ((f.detail, "         "), (f.advice, "      -> ")):
            lines += textwrap.wrap(
                text, width, initial_indent=lead, subsequent_indent=" " * 9, break_on_hyphens=False
            )
    if not report.findings:
        lines += ["", "no finding"]
    return "\n".join(lines)


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell or line."""
    return text.replace("|", "\\|").replace("\n", " ")


def as_markdown(report: AuditReport) -> str:
    counts = report.counts()
    lines = [
        f"# Resilience audit: {_md(report.instance)}",
        "",
        f"- Date: {rfc3339(report.generated_at)[:16].replace('T', ' ')} UTC",
        f"- Configuration: `{report.config_path}`",
        f"- Daemon state: {_md(report.daemon)}",
        f"- DNS delegation: {_md(report.dns)}",
        "",
        "## Summary",
        "",
        "| Severity | Findings |",
        "|---|---:|",
        *(f"| {s.value} | {counts[s.value]} |" for s in SEVERITY_ORDER),
        "",
    ]
    if not report.findings:
        return "\n".join([*lines, "No finding."])
    lines += ["| # | Severity | Subject | Finding |", "|---:|---|---|---|"]
    lines += [
        f"| {n} | {f.severity.value} | `{_md(f.subject)}` | {_md(f.title)} |"
        for n, f in enumerate(report.findings, 1)
    ]
    lines += ["", "## Findings"]
    for n, f in enumerate(report.findings, 1):
        lines += [
            "",
            f"### {n}. {f.severity.value.upper()}: {_md(f.title)}",
            "",
            f"Subject: `{_md(f.subject)}` (check `{f.check}`)",
            "",
            f.detail,
            "",
            f"**Advice:** {f.advice}",
        ]
    return "\n".join(lines)
