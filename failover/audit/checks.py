"""Findings read from the configuration alone (pure: no I/O, no clock).

Each check looks for one way a failover would not happen, or would not help, when the primary's
cloud fails: the DNS change depending on that cloud, a fallback in the same cloud, a target
failover cannot see, the orchestrator itself in the blast radius, a TTL longer than the outage
the business accepts, one vantage point, credentials kept in clear.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import fields, is_dataclass

from failover.audit.maintenance import maintenance_findings
from failover.audit.model import Finding, Severity
from failover.audit.policies import policy_findings
from failover.config.types import Config, RecordConfig, Secret, ServiceConfig, TargetConfig
from failover.units import format_duration

CRITICAL, WARNING, INFO = Severity.CRITICAL, Severity.WARNING, Severity.INFO


def config_findings(config: Config) -> list[Finding]:
    """Every configuration finding, in config order."""
    out: list[Finding] = []
    for svc in config.services.values():
        out += record_provider_findings(config, svc)
        out += target_location_findings(svc)
        out += probe_findings(svc)
        out += rto_findings(svc)
        out += policy_findings(svc)
        out += maintenance_findings(svc)
    out += instance_findings(config)
    out += location_gaps(config)
    out += vantage_findings(config)
    out += clear_secret_findings(config)
    return out


def record_path(svc: ServiceConfig, record: RecordConfig) -> str:
    return f"services.{svc.name}.records[{svc.records.index(record)}]"


def target_path(svc: ServiceConfig, target: TargetConfig) -> str:
    return f"services.{svc.name}.targets[{svc.targets.index(target)}]"


def record_groups(svc: ServiceConfig) -> dict[tuple[str, str], list[RecordConfig]]:
    """The service's records by (name, type): one published name and the providers holding it."""
    groups: dict[tuple[str, str], list[RecordConfig]] = {}
    for record in svc.records:
        groups.setdefault((record.name, record.type.value), []).append(record)
    return groups


def provider_location(config: Config, provider: str) -> str | None:
    found = config.providers.get(provider)
    return found.location if found is not None else None


def only_in_primary_location(
    config: Config, svc: ServiceConfig, records: list[RecordConfig], why: str
) -> Finding:
    """The critical finding: a published name whose every writable copy sits in the primary's
    failure domain. `why` says how the audit knows (config, or the zone's delegation)."""
    primary = svc.targets[0]
    location = primary.location
    first = records[0]
    providers = ", ".join(sorted({r.provider for r in records}))
    in_zone = {
        r.provider for s in config.services.values() for r in s.records if r.zone == first.zone
    }
    elsewhere = sorted(
        (n for n, p in config.providers.items() if p.location not in (None, location)),
        key=lambda n: (n not in in_zone, n),  # a provider already serving the zone first
    )
    fallbacks = ", ".join(t.name for t in svc.targets[1:]) or "a secondary"
    example = (
        f"for example {{provider: {elsewhere[0]}, zone: {first.zone}, name: {first.name}, "
        f"type: {first.type.value}}}"
        if elsewhere
        else "defining a provider outside it"
    )
    return Finding(
        CRITICAL,
        "dns-provider-in-primary-location",
        record_path(svc, first),
        f"{first.name} {first.type.value} can only be changed through {location}, "
        "the primary's location",
        f"{why} {providers} ({location}), the failure domain of the primary target "
        f"{primary.name}. When {location} fails, switching to {fallbacks} needs {location}'s "
        "DNS control plane to accept the change: the flip depends on the cloud that is failing "
        "(Route 53's control plane, for one, lives in us-east-1).",
        f"Also publish {first.name} at a DNS provider outside {location} ({example}) and "
        f"delegate {first.zone} to both providers' name servers, or move the zone out of "
        f"{location}.",
    )


def record_provider_findings(config: Config, svc: ServiceConfig) -> list[Finding]:
    """Critical: every provider of a published name is in the primary's location."""
    if not svc.targets or svc.targets[0].location is None:
        return []
    location = svc.targets[0].location
    out = []
    for records in record_groups(svc).values():
        if all(provider_location(config, r.provider) == location for r in records):
            how = "Its only DNS provider is" if len(records) == 1 else "All its DNS providers are"
            out.append(only_in_primary_location(config, svc, records, how))
    return out


def target_location_findings(svc: ServiceConfig) -> list[Finding]:
    """Critical: nothing to fail over to, or every fallback shares the primary's failure domain."""
    subject = f"services.{svc.name}.targets"
    if len(svc.targets) == 1:
        only = svc.targets[0]
        return [
            Finding(
                CRITICAL,
                "single-target",
                subject,
                f"{svc.name} has a single target",
                f"{only.name} is the only target: when it fails there is nothing to switch to, "
                "and failover can only hold the answer and raise the alarm.",
                f"Add a secondary target in another location to services.{svc.name}.targets, "
                "after the primary (order is priority).",
            )
        ]
    locations = {t.location for t in svc.targets}
    if len(locations) != 1 or None in locations:
        return []
    (location,) = locations
    return [
        Finding(
            CRITICAL,
            "targets-in-one-location",
            subject,
            f"every target of {svc.name} is in {location}",
            f"{', '.join(t.name for t in svc.targets)} all run in {location}: an outage of "
            f"{location} takes every target down at once, and failover has nowhere to go.",
            f"Run a secondary in another cloud or site and list it under services.{svc.name}"
            ".targets with its location.",
        )
    ]


def probe_findings(svc: ServiceConfig) -> list[Finding]:
    """Critical: a target without probes is never UP nor DOWN, so failover cannot act on it."""
    out = []
    for i, target in enumerate(svc.targets):
        if target.probes:
            continue
        effect = (
            "it is never seen DOWN, so failover never moves away from it"
            if i == 0
            else "it is never seen UP, so failover never switches to it"
        )
        out.append(
            Finding(
                CRITICAL,
                "target-without-probes",
                target_path(svc, target),
                f"{svc.name} target {target.name} has no probes",
                f"Without probes its health stays UNKNOWN: {effect}.",
                f"Add probes to {target_path(svc, target)}, like "
                f"{{type: http, url: https://ADDRESS/healthz, host: NAME}} that checks what "
                "clients use, not only that a port is open.",
            )
        )
    return out


def detection_estimate(target: TargetConfig) -> float | None:
    """Worst-case seconds from the target failing to failover seeing it DOWN: its quickest
    probe needs `fall` failed runs, `interval` apart, the last one timing out."""
    times = [target.health.fall * p.interval + p.timeout for p in target.probes]
    return min(times) if times else None


def rto_findings(svc: ServiceConfig) -> list[Finding]:
    """Warning: clients keep the old answer for TTL seconds, so TTL (plus detection) bounds the
    recovery time; it must fit in the service's recovery objective."""
    if not svc.targets:
        return []
    if svc.rto is None:
        return [
            Finding(
                INFO,
                "rto-unset",
                f"services.{svc.name}",
                f"{svc.name} has no recovery time objective",
                "Without rto the audit cannot tell whether TTLs and detection time are short "
                "enough.",
                f"Set services.{svc.name}.rto to the longest outage the business accepts, like "
                "rto: 5m.",
            )
        ]
    rto = format_duration(svc.rto)
    out = []
    for record in svc.records:
        if record.ttl > svc.rto:
            out.append(
                Finding(
                    WARNING,
                    "ttl-above-rto",
                    record_path(svc, record),
                    f"{record.name} {record.type.value} TTL {record.ttl}s exceeds the rto {rto}",
                    f"Resolvers may keep serving the failed target for up to {record.ttl}s after "
                    f"the switch, longer than the {rto} {svc.name} may be down.",
                    f"Lower the record's ttl to well under the rto (for example ttl: "
                    f"{max(1, min(60, int(svc.rto) // 2))}), or raise the rto if it is wrong.",
                )
            )
    detection = detection_estimate(svc.targets[0])
    fitting = [r.ttl for r in svc.records if r.ttl <= svc.rto]
    if detection is not None and fitting and detection + max(fitting) > svc.rto:
        primary = svc.targets[0]
        out.append(
            Finding(
                WARNING,
                "recovery-above-rto",
                f"services.{svc.name}.rto",
                f"{svc.name} may take longer than its rto {rto} to recover",
                f"Detecting that {primary.name} is down takes up to "
                f"{format_duration(detection)} (fall {primary.health.fall} x interval, plus "
                f"a timeout) and resolvers keep the old answer up to {max(fitting)}s more: "
                f"{format_duration(detection + max(fitting))} before every client moves, without "
                "counting the DNS change itself.",
                "Shorten the primary's probe interval or fall, lower the TTLs, or raise the rto.",
            )
        )
    return out


def instance_findings(config: Config) -> list[Finding]:
    """Warning: the orchestrator shares the primary's failure domain."""
    location = config.instance.location
    if location is None:
        return [
            Finding(
                INFO,
                "location-unknown",
                "instance",
                f"instance {config.instance.name} has no location",
                "The audit cannot tell whether this instance shares a failure domain with a "
                "primary target.",
                "Set instance.location to the cloud or site this instance runs in.",
            )
        ]
    exposed = [
        s.name for s in config.services.values() if s.targets and s.targets[0].location == location
    ]
    if not exposed:
        return []
    return [
        Finding(
            WARNING,
            "instance-in-primary-location",
            "instance",
            f"this instance runs in {location}, the primary's location of {', '.join(exposed)}",
            f"The outage that takes the primary down is likely to take instance "
            f"{config.instance.name} down too, or to cut it off: then nothing switches.",
            "Run failover outside the clouds it protects (and set instance.location to match), "
            "or add instances in other locations with coordination.",
        )
    ]


def location_gaps(config: Config) -> list[Finding]:
    """Info: targets and providers in use without a location cannot be judged."""
    out = []
    for svc in config.services.values():
        for target in svc.targets:
            if target.location is None:
                path = target_path(svc, target)
                out.append(
                    Finding(
                        INFO,
                        "location-unknown",
                        path,
                        f"{svc.name} target {target.name} has no location",
                        "The audit cannot tell which failure domain it shares with the other "
                        "targets and the DNS providers.",
                        f"Set {path}.location to the cloud or site it runs in (aws, ovh, onprem…).",
                    )
                )
    used = {r.provider for svc in config.services.values() for r in svc.records}
    for name in sorted(used):
        provider = config.providers.get(name)
        if provider is not None and provider.location is None:
            out.append(
                Finding(
                    INFO,
                    "location-unknown",
                    f"providers.{name}",
                    f"DNS provider {name} has no location",
                    f"The audit cannot tell whether {name} fails together with a primary target.",
                    f"Set providers.{name}.location to where its API and servers run.",
                )
            )
    return out


def vantage_findings(config: Config) -> list[Finding]:
    """Warning: one instance decides alone (no coordination section)."""
    if getattr(config, "coordination", None) is not None:
        return []
    return [
        Finding(
            WARNING,
            "single-vantage-point",
            "coordination",
            "a single vantage point decides",
            f"Only instance {config.instance.name} probes the targets: a fault on its own network "
            "path can look like a target failing (the isolation guard only catches failures "
            "across two or more locations), and when this instance is down nothing fails over.",
            "Run instances in two or three locations with coordination so that a quorum of "
            "vantage points decides and the loss of one instance changes nothing.",
        )
    ]


def _secrets(node: object, path: str) -> Iterator[tuple[str, Secret]]:
    if isinstance(node, Secret):
        yield path, node
    elif is_dataclass(node) and not isinstance(node, type):
        for f in fields(node):
            yield from _secrets(getattr(node, f.name), f"{path}.{f.name}" if path else f.name)
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _secrets(value, f"{path}.{key}")
    elif isinstance(node, tuple | list):
        for i, value in enumerate(node):
            yield from _secrets(value, f"{path}[{i}]")


def _env_name(path: str) -> str:
    parts = path.split(".")[1:] if path.startswith("providers.") else [path]
    return re.sub(r"[^A-Z0-9]+", "_", "_".join(parts).upper()).strip("_")


def clear_secret_findings(config: Config) -> list[Finding]:
    """Warning: a credential written in the file instead of a `${…}` reference. The value is
    never quoted, only its path."""
    return [
        Finding(
            WARNING,
            "secret-in-clear",
            path,
            "a credential is written in clear in the file",
            "Anyone who can read the file, its backups or the repository it is kept in holds "
            "this credential.",
            f"Replace it with ${{{_env_name(path)}}} or ${{file:/run/secrets/...}} "
            "(readable by the daemon only), and rotate the credential: it has been stored in "
            "clear.",
        )
        for path, secret in _secrets(config, "")
        if secret.clear_text
    ]
