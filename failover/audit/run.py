"""Run an audit: the config checks, then what the daemon and the DNS can add, in parallel.

Every source is optional: an audit on a CI machine without the daemon, the secrets or
internet access still reports what the file alone shows, and says what it could not check.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from failover.audit.checks import config_findings
from failover.audit.dnscheck import NsLookup, lookup_zones, ns_findings, zones_of
from failover.audit.model import AuditReport, Finding, ordered
from failover.audit.state import daemon_unknown, drill_findings, status_findings
from failover.client import AdminClient, DaemonUnreachable
from failover.config.types import Config

HISTORY_LIMIT = 10_000  # journal entries read per service to find its drills


async def run_audit(
    config: Config,
    *,
    config_path: str,
    client: AdminClient | None,
    ns_lookup: NsLookup | None,
    dns_timeout: float = 5.0,
    now: float | None = None,
) -> AuditReport:
    """All findings about `config`. `client` None: the daemon is not asked; `ns_lookup` None:
    the DNS is not queried (each is said in the report)."""
    now = time.time() if now is None else now
    (daemon_note, from_daemon), (dns_note, from_dns) = await asyncio.gather(
        _from_daemon(config, client, now), _from_dns(config, ns_lookup, dns_timeout)
    )
    findings = config_findings(config) + from_daemon + from_dns
    return AuditReport(
        config_path=config_path,
        generated_at=now,
        instance=config.instance.name,
        findings=ordered(findings),
        daemon=daemon_note,
        dns=dns_note,
    )


async def _from_daemon(
    config: Config, client: AdminClient | None, now: float
) -> tuple[str, list[Finding]]:
    if client is None:
        return "not asked", [daemon_unknown("The daemon was not asked")]
    try:
        code, status = await client.call("GET", "/v1/status")
        if code != 200 or not isinstance(status, Mapping):
            return _refused(client, code, status)
        services = status.get("services")
        known = [s for s in config.services if isinstance(services, Mapping) and s in services]
        histories: dict[str, Sequence[Mapping[str, Any]]] = {}
        for name in known:
            query = urllib.parse.urlencode({"service": name, "limit": HISTORY_LIMIT})
            code, entries = await client.call("GET", f"/v1/history?{query}")
            if code != 200 or not isinstance(entries, list):
                return _refused(client, code, entries)
            histories[name] = [e for e in entries if isinstance(e, Mapping)]
    except DaemonUnreachable as exc:
        os_error = getattr(exc.__cause__, "os_error", None)
        why = (
            f" ({os_error.strerror})" if isinstance(os_error, OSError) and os_error.strerror else ""
        )
        reason = f"No daemon answers at {client.where}{why}"
        if isinstance(exc.__cause__, TimeoutError):
            reason = str(exc)
        return f"not reachable at {client.where}", [daemon_unknown(reason)]
    findings = status_findings(config, status) + drill_findings(config, histories, now)
    return f"status and journal read from {client.where}", findings


def _refused(client: AdminClient, code: int, body: object) -> tuple[str, list[Finding]]:
    message = body.get("message", body) if isinstance(body, Mapping) else body
    reason = f"the daemon at {client.where} answered {code}: {message}"
    return f"not readable ({reason})", [daemon_unknown(reason)]


async def _from_dns(
    config: Config, lookup: NsLookup | None, timeout: float
) -> tuple[str, list[Finding]]:
    zones = zones_of(config)
    if lookup is None:
        return "not queried", []
    results = await lookup_zones(zones, lookup, timeout)
    failed = sum(1 for r in results.values() if r.error is not None)
    note = f"NS of {len(zones)} zone(s) queried" + (f", {failed} failed" if failed else "")
    return note, ns_findings(config, results)
