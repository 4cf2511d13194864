"""The `services:` section (records, targets, their values and probes, drills), `defaults:`
and `canaries:`.

Probe timing, health and policy are inherited defaults → service → target key by key, so a
service states only what differs. A record may be managed by one service only: two would fight.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from failover.config.common import LOWER_NAME, NAME, opt_plain, positive, valid_name, zero_ok
from failover.config.drills import parse_drills
from failover.config.maintenance import parse_maintenance
from failover.config.parse import (
    Invalid,
    Section,
    bare,
    choice,
    dns_name,
    integer,
    is_hostname,
    kind,
    plain,
    retaint,
    show,
    string,
)
from failover.config.pools import parse_fallback, parse_pool
from failover.config.probes import Timing, parse_probes, timing_block
from failover.config.types import (
    CanaryConfig,
    HealthConfig,
    PolicyConfig,
    RecordConfig,
    ServiceConfig,
    TargetConfig,
)
from failover.model import RecordType, canonical_value, normalize_name

# --- defaults, health, policy ---------------------------------------------------------------------


@dataclass(frozen=True)
class Defaults:
    timing: Timing
    health: HealthConfig
    policy: PolicyConfig


def _health(parent: Section, base: HealthConfig) -> HealthConfig:
    sec = parent.section("health")
    health = HealthConfig(
        fall=sec.get("fall", integer(1), base.fall), rise=sec.get("rise", integer(1), base.rise)
    )
    sec.done()
    return health


def _all_down(text: str) -> Literal["hold", "fallback"]:
    return "fallback" if text == "fallback" else "hold"


def _policy(parent: Section, base: PolicyConfig) -> PolicyConfig:
    sec = parent.section("policy")
    failback = sec.opt("failback", choice(("manual", "auto"), "failback mode"))
    all_down = sec.opt("all_down", choice(("hold", "fallback"), "all-down policy"))
    policy = PolicyConfig(
        failback=base.failback if failback is None else "auto" if failback == "auto" else "manual",
        failback_after=sec.get("failback_after", zero_ok, base.failback_after),
        cooldown=sec.get("cooldown", zero_ok, base.cooldown),
        max_auto_switches=sec.get("max_auto_switches", integer(1), base.max_auto_switches),
        flap_window=sec.get("flap_window", positive, base.flap_window),
        startup_grace=sec.get("startup_grace", zero_ok, base.startup_grace),
        all_down=base.all_down
        if all_down is None
        else "fallback"
        if all_down == "fallback"
        else "hold",
    )
    sec.done()
    return policy


def parse_defaults(top: Section) -> Defaults:
    """`defaults:`, the first level of the inheritance chain."""
    sec = top.section("defaults")
    out = Defaults(
        timing_block(sec, Timing(5.0, 2.0)),
        _health(sec, HealthConfig()),
        _policy(sec, PolicyConfig()),
    )
    sec.done()
    return out


# --- records and values ---------------------------------------------------------------------------


_RTYPES = tuple(t.value for t in RecordType)


def _record_type(value: object) -> RecordType:
    if string(value).upper() not in _RTYPES:
        raise Invalid(f"unknown record type {show(value)}; expected one of: {', '.join(_RTYPES)}")
    return RecordType(string(value).upper())


def _record(r: Section, providers: set[str]) -> RecordConfig | None:
    provider = r.need("provider", string, "the name of a provider defined under providers")
    if provider is not None and provider not in providers:
        close = difflib.get_close_matches(provider, sorted(providers), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        known = ", ".join(sorted(providers)) or "none"
        r.error("provider", f"unknown provider {show(provider)}; {hint}defined providers: {known}")
    zone = r.need("zone", dns_name(), "the DNS zone holding the record, like example.com")
    name = r.need("name", dns_name(wildcard=True), "the full record name, like www.example.com")
    rtype = r.need("type", _record_type, "A, AAAA or CNAME")
    ttl = r.get("ttl", integer(1, 86400), 60)
    r.done()
    if zone is not None and name is not None and name != zone and not name.endswith("." + zone):
        shown = [bare(name), bare(zone)]
        r.error(
            "name",
            f"{shown[0]} is not inside zone {shown[1]}; the name must be the zone "
            f"or end with .{shown[1]}",
        )
    if rtype == "CNAME" and name is not None and name == zone:
        r.error("type", "a CNAME cannot be at the zone apex; use A/AAAA records for the apex")
    if provider is None or zone is None or name is None or rtype is None:
        return None
    return RecordConfig(plain(provider), plain(zone), plain(name), rtype, ttl)


def _records(
    s: Section, service: str, providers: set[str], claimed: dict[tuple[str, str, RecordType], str]
) -> list[RecordConfig]:
    """Records of one service, refusing duplicates and names two services would fight over."""
    out: list[RecordConfig] = []
    seen: dict[tuple[str, str, str, RecordType], int] = {}
    by_name: dict[tuple[str, str], tuple[RecordType, int]] = {}
    items = s.items("records", "a list of records")
    for i, (path, node) in enumerate(items):
        r = Section.open(s.errors, node, path)
        rec = _record(r, providers) if r is not None else None
        if rec is None or r is None:
            continue
        key = (rec.provider, rec.zone, rec.name, rec.type)
        where = f"{bare(retaint(r.raw('name'), rec.name))}/{rec.type} at provider {rec.provider}"
        if key in seen:
            r.error(None, f"duplicate of records[{seen[key]}]; list each record once")
            continue
        seen[key] = i
        other = by_name.get((rec.provider, rec.name))
        if other is not None and RecordType.CNAME in (other[0], rec.type) and other[0] != rec.type:
            r.error(
                "type",
                f"{where} conflicts with the {other[0]} record records[{other[1]}]; "
                "a name with a CNAME can have no other record",
            )
        by_name.setdefault((rec.provider, rec.name), (rec.type, i))
        owner = claimed.setdefault((rec.provider, rec.name, rec.type), service)
        if owner != service:
            r.error(
                None,
                f"{where} is already managed by service '{owner}'; two services "
                "would fight over it, keep it in one",
            )
        out.append(rec)
    if not items and not s.failed("records"):
        s.error(
            "records",
            "missing; expected at least one record, like "
            "{provider: NAME, zone: example.com, name: www.example.com, type: A}",
        )
    return out


def value_type(value: object) -> RecordType:
    """Which record type a target value serves: A, AAAA, or CNAME for a host name."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected an address or host name, got {kind(value)}")
    try:
        version = ipaddress.ip_address(value.strip()).version
    except ValueError:
        if not is_hostname(normalize_name(value)):
            raise Invalid(
                f"{show(value)} is neither an IP address nor a host name; "
                "expected an IPv4/IPv6 address or a host name"
            ) from None
        return RecordType.CNAME
    return RecordType.A if version == 4 else RecordType.AAAA


def _values(t: Section, rtypes: set[RecordType]) -> tuple[str, ...]:
    """Canonical values in the target's order, checked against the record types used."""
    items = t.items("values", "a list of addresses or host names")
    if not items and not t.broken and not t.failed("values"):
        t.error("values", "missing; expected a non-empty list of addresses or one host name")
    found: dict[RecordType, list[str]] = {rtype: [] for rtype in RecordType}
    out: list[str] = []
    for path, node in items:
        rtype = t.item(path, node, value_type)
        if rtype is None:
            continue
        value = canonical_value(rtype, str(node))
        if value in out:
            t.errors.append(f"{path}: {show(retaint(node, value))} is listed twice; list it once")
            continue
        out.append(value)
        found[rtype].append(value)
    if not out:
        return ()
    family = {RecordType.A: "IPv4 address", RecordType.AAAA: "IPv6 address"}
    for rtype, what in family.items():
        if rtype in rtypes and not found[rtype]:
            t.error(
                "values",
                f"no {what}; the service has {rtype} records, so every "
                f"target needs at least one {what}",
            )
    hosts, ips = found[RecordType.CNAME], found[RecordType.A] + found[RecordType.AAAA]
    if RecordType.CNAME in rtypes and len(hosts) != 1:
        t.error(
            "values",
            f"{len(hosts) or 'no'} host names; the service has a CNAME record, "
            "so every target needs exactly one host name",
        )
    if rtypes == {RecordType.CNAME} and ips:
        t.error("values", "IP addresses in a CNAME-only service; list exactly one host name")
    if rtypes and RecordType.CNAME not in rtypes and hosts:
        published = "/".join(sorted(rtypes))
        t.error(
            "values",
            f"host names in a service without CNAME records; list IP addresses "
            f"(the service publishes only {published})",
        )
    return tuple(out)


def _target(
    t: Section,
    timing: Timing,
    health: HealthConfig,
    rtypes: set[RecordType],
    base_dir: Path | None = None,
) -> TargetConfig | None:
    name = t.need("name", valid_name, f"a target name of {NAME[1]}")
    values = _values(t, rtypes)
    pool, probes = parse_pool(t, values, timing_block(t, timing), base_dir)
    target = TargetConfig(
        name=plain(name or ""),
        location=opt_plain(t.opt("location", valid_name)),
        values=values,
        probes=probes,
        health=_health(t, health),
        pool=pool,
        maintenance=parse_maintenance(t),
    )
    t.done()
    return target if name is not None else None


def _service(
    s: Section,
    name: str,
    defaults: Defaults,
    providers: set[str],
    claimed: dict[tuple[str, str, RecordType], str],
    base_dir: Path | None = None,
) -> ServiceConfig:
    timing = timing_block(s, defaults.timing)
    health = _health(s, defaults.health)
    policy = _policy(s, defaults.policy)
    rto = s.opt("rto", positive)  # optional recovery time objective, checked by the audit
    records = _records(s, name, providers, claimed)
    rtypes = {r.type for r in records}
    targets: list[TargetConfig] = []
    items = s.items("targets", "a list of targets")
    for path, node in items:
        t = Section.open(s.errors, node, path)
        target = _target(t, timing, health, rtypes, base_dir) if t is not None else None
        if target is None or t is None:
            continue
        if any(other.name == target.name for other in targets):
            t.error("name", f"target {show(t.raw('name'))} is defined twice; names must be unique")
        targets.append(target)
    if not items and not s.failed("targets"):
        s.error("targets", "missing; expected at least one target, in priority order")
    drill_schedule = parse_drills(s, {t.name for t in targets})
    fallback = parse_fallback(s, rtypes, targets, policy, timing, health, base_dir)
    s.done()
    return ServiceConfig(
        name,
        tuple(records),
        tuple(targets),
        policy,
        rto=rto,
        drills=drill_schedule,
        fallback=fallback,
    )


def parse_services(
    top: Section, defaults: Defaults, providers: set[str], base_dir: Path | None = None
) -> dict[str, ServiceConfig]:
    sec = top.section("services")
    if not sec.node and not sec.broken:
        top.error("services", "no service defined; define at least one service here")
    claimed: dict[tuple[str, str, RecordType], str] = {}
    out: dict[str, ServiceConfig] = {}
    for name, path, node in sec.entries():
        if not re.fullmatch(LOWER_NAME[0], name):
            sec.error(name, f"invalid service name; expected {LOWER_NAME[1]}")
        s = Section.open(sec.errors, node, path)
        if s is not None:
            out[name] = _service(s, name, defaults, providers, claimed, base_dir)
    return out


def parse_canaries(
    top: Section, defaults: Defaults, base_dir: Path | None
) -> tuple[CanaryConfig, ...]:
    """`canaries:` — probes of things that should always be up, feeding the isolation guard."""
    out: list[CanaryConfig] = []
    for path, node in top.items("canaries", "a list of canaries"):
        c = Section.open(top.errors, node, path)
        if c is None:
            continue
        name = c.need("name", valid_name, "a name like internet")
        location = opt_plain(c.opt("location", valid_name))
        timing = timing_block(c, defaults.timing)
        health = _health(c, defaults.health)
        probes = parse_probes(c, timing, base_dir)
        if not probes and not c.failed("probes"):
            c.error("probes", "missing; expected probes of something that should always be up")
        c.done()
        if name is None:
            continue
        if any(other.name == plain(name) for other in out):
            c.error("name", f"canary {plain(name)!r} is defined twice; names must be unique")
        out.append(CanaryConfig(plain(name), location, probes, health))
    return tuple(out)
