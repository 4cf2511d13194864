"""Findings read from the DNS itself: who really serves each zone (its NS set).

Writing a record at two providers helps only if the zone is delegated to both, and a zone
whose name servers all belong to one operator goes dark with it whatever failover decides.
The NS lookup is injectable (`NsLookup`): the CLI asks the system resolver or `--resolver`,
tests a local server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

from failover.audit.checks import (
    only_in_primary_location,
    record_groups,
    record_path,
)
from failover.audit.model import Finding, Severity
from failover.config.types import Config, HostPort, RecordConfig, ServiceConfig
from failover.units import format_duration

NsLookup = Callable[[str], Awaitable[Sequence[str]]]

# Name server host suffixes of well-known DNS operators. Route 53 hosts look like
# ns-123.awsdns-45.com (also .net, .org, .co.uk): matched on the `awsdns-` label.
_SUFFIXES = (
    ("ovh.net", "ovh"),
    ("anycast.me", "ovh"),
    ("scw.cloud", "scaleway"),
    ("ns.hetzner.com", "hetzner"),  # Hetzner Cloud DNS: hydrogen/oxygen.ns.hetzner.com
    ("ns.hetzner.de", "hetzner"),  # ... and helium.ns.hetzner.de
    ("your-server.de", "hetzner"),  # Robot/konsoleH: ns1.your-server.de
    ("second-ns.com", "hetzner"),
    ("second-ns.de", "hetzner"),
    ("ns.cloudflare.com", "cloudflare"),
    ("googledomains.com", "google"),
    ("azure-dns.com", "azure"),
    ("azure-dns.net", "azure"),
    ("azure-dns.org", "azure"),
    ("azure-dns.info", "azure"),
    ("gandi.net", "gandi"),
    ("nsone.net", "ns1"),
)
# The operator whose name servers serve what a provider type writes.
PROVIDER_OPERATOR = {
    "route53": "aws",
    "ovh": "ovh",
    "scaleway": "scaleway",
    "hetzner": "hetzner",
    "cloudflare": "cloudflare",
}
_SECOND_LEVEL = {"co", "com", "net", "org", "ac", "gov", "edu"}


def ns_operator(host: str) -> str:
    """Who runs a name server: a well-known operator, else the host's registered domain (so
    ns1.example.com and ns2.example.com count as one operator)."""
    host = host.rstrip(".").lower()
    labels = host.split(".")
    if any(label.startswith("awsdns-") for label in labels):
        return "aws"
    for suffix, operator in _SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return operator
    keep = 3 if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2 else 2
    return ".".join(labels[-keep:])


@dataclass(frozen=True)
class NsResult:
    """A zone's NS host names, or why they could not be read."""

    hosts: tuple[str, ...] = ()
    error: str | None = None


def resolver_lookup(nameservers: Sequence[HostPort] = ()) -> NsLookup:
    """NS lookups through `nameservers` (IP addresses), or the system's resolvers when empty.
    The caller owns the deadline."""

    async def lookup(zone: str) -> Sequence[str]:
        resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(s.host, s.port) for s in nameservers
            ]
        resolver.lifetime = 3600.0  # asyncio.timeout in lookup_zones is the deadline
        answer = await resolver.resolve(zone + ".", "NS")
        return sorted(str(rr.target).rstrip(".").lower() for rr in answer)

    return lookup


async def lookup_zones(
    zones: Iterable[str], lookup: NsLookup, timeout: float
) -> dict[str, NsResult]:
    """Every zone's NS set, in parallel, each within `timeout`; failures become reasons."""

    async def one(zone: str) -> NsResult:
        try:
            async with asyncio.timeout(timeout):
                hosts = await lookup(zone)
        except TimeoutError:
            return NsResult(error=f"no answer within {format_duration(timeout)}")
        except dns.resolver.NXDOMAIN:
            return NsResult(error="the zone does not exist (NXDOMAIN)")
        except dns.resolver.NoAnswer:
            return NsResult(error="the zone has no NS records")
        except dns.resolver.NoNameservers:
            return NsResult(error="no name server answered (SERVFAIL or REFUSED)")
        except dns.exception.Timeout:
            return NsResult(error=f"no answer within {format_duration(timeout)}")
        except (dns.exception.DNSException, OSError) as exc:
            return NsResult(error=f"{type(exc).__name__}: {exc}")
        if not hosts:
            return NsResult(error="the zone has no NS records")
        return NsResult(hosts=tuple(hosts))

    names = sorted(set(zones))
    results = await asyncio.gather(*(one(zone) for zone in names))
    return dict(zip(names, results, strict=True))


def zones_of(config: Config) -> list[str]:
    return sorted({r.zone for svc in config.services.values() for r in svc.records})


def ns_findings(config: Config, results: Mapping[str, NsResult]) -> list[Finding]:
    """One operator serving a whole zone (warning); records written at a provider the zone is
    not delegated to (warning, critical when only the primary's location remains)."""
    out: list[Finding] = []
    operators: dict[str, set[str]] = {}
    for zone in zones_of(config):
        result = results.get(zone)
        if result is None:
            continue
        if result.error is not None:
            out.append(
                Finding(
                    Severity.INFO,
                    "ns-unchecked",
                    f"zone {zone}",
                    f"could not read the name servers of {zone}",
                    f"The NS lookup failed: {result.error}.",
                    "Run the audit where public DNS answers, or name a resolver with --resolver.",
                )
            )
            continue
        found = {ns_operator(host) for host in result.hosts}
        operators[zone] = found
        if len(found) == 1:
            (operator,) = found
            out.append(
                Finding(
                    Severity.WARNING,
                    "ns-single-provider",
                    f"zone {zone}",
                    f"every name server of {zone} is run by {operator}",
                    f"{zone} is served only by {', '.join(result.hosts)}: if {operator}'s DNS "
                    "stops answering, every name of the zone goes dark, whichever target "
                    "failover publishes.",
                    f"Delegate {zone} to a second DNS operator too (add its name servers to the "
                    "NS set at the registrar) and publish the failover records at both.",
                )
            )
    for svc in config.services.values():
        out += _delegation_findings(config, svc, operators)
    return out


def _served(config: Config, record: RecordConfig, operators: Mapping[str, set[str]]) -> bool | None:
    """Whether the zone's delegation includes the record's provider; None when unknown."""
    provider = config.providers.get(record.provider)
    operator = PROVIDER_OPERATOR.get(provider.type) if provider is not None else None
    if operator is None or record.zone not in operators:
        return None
    return operator in operators[record.zone]


def _delegation_findings(
    config: Config, svc: ServiceConfig, operators: Mapping[str, set[str]]
) -> list[Finding]:
    out: list[Finding] = []
    primary = svc.targets[0].location if svc.targets else None
    for records in record_groups(svc).values():
        unserved = [r for r in records if _served(config, r, operators) is False]
        if not unserved:
            continue
        served = [r for r in records if r not in unserved]
        if (
            primary is not None
            and served
            and all(config.providers[r.provider].location == primary for r in served)
            and any(config.providers[r.provider].location != primary for r in records)
        ):
            why = (
                f"The zone {records[0].zone} is not delegated to "
                f"{', '.join(r.provider for r in unserved)}, so the copy written there is never "
                "served; what clients see comes only from"
            )
            out.append(only_in_primary_location(config, svc, served, why))
            continue
        for record in unserved:
            provider = config.providers[record.provider]
            out.append(
                Finding(
                    Severity.WARNING,
                    "ns-provider-not-delegated",
                    record_path(svc, record),
                    f"{record.zone} is not delegated to {record.provider}",
                    f"{record.name} {record.type.value} is written at {record.provider} "
                    f"({provider.type}), but no name server of {record.zone} belongs to "
                    f"{PROVIDER_OPERATOR[provider.type]}: the changes made there are never "
                    "served.",
                    f"Add {record.provider}'s name servers for {record.zone} to the zone's NS set "
                    "at the registrar, or drop this record.",
                )
            )
    return out
