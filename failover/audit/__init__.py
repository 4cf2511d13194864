"""`failover audit`: the single points of failure of a setup, with advice.

checks.py reads the config, state.py the daemon's status and journal, dnscheck.py the zones'
delegation; the checks are pure functions of what was read, run.py gathers it, report.py
renders text, JSON or Markdown.
"""

from failover.audit.dnscheck import NsLookup, resolver_lookup
from failover.audit.model import AuditReport, Finding, Severity
from failover.audit.report import FORMATS, render
from failover.audit.run import run_audit

__all__ = [
    "FORMATS",
    "AuditReport",
    "Finding",
    "NsLookup",
    "Severity",
    "render",
    "resolver_lookup",
    "run_audit",
]
