"""YAML → typed, frozen `Config` (SPEC §3).

Strict on purpose: unknown keys are refused and every error names its path and the fix, and all
errors of a file are reported at once, so an operator fixes a file in one pass and a SIGHUP with
a broken file is rejected before anything is swapped. Providers and probes are tagged unions on
`type`: a new kind adds one entry to `PROVIDER_PARSERS` or `PROBE_PARSERS`.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from failover.config import drills as config_drills
from failover.config import http_tcp as config_http_tcp
from failover.config import notifications as config_notify
from failover.config import probes as config_probes
from failover.config import providers as config_providers
from failover.config.parse import (
    ConfigError,
    Invalid,
    Section,
    bare,
    choice,
    dns_name,
    duration,
    hostport,
    integer,
    interpolate,
    kind,
    load_yaml,
    matching,
    parse_duration,
    parse_hostport,
    path_in,
    plain,
    retaint,
    show,
    string,
    value_type,
)
from failover.config.types import (
    AdminConfig,
    BuiltinProviderConfig,
    CanaryConfig,
    Config,
    DnsProbeConfig,
    HealthConfig,
    HostPort,
    HttpProbeConfig,
    InstanceConfig,
    MetricsConfig,
    PolicyConfig,
    ProbeConfig,
    ProviderConfig,
    RecordConfig,
    Secret,
    ServiceConfig,
    TargetConfig,
    TlsProbeConfig,
    VerifyConfig,
)
from failover.model import RecordType, canonical_value
from failover.units import format_duration

__all__ = [
    "PROBE_PARSERS",
    "PROVIDER_PARSERS",
    "ConfigError",
    "ProbeCommon",
    "ProviderCommon",
    "Section",
    "describe",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_hostport",
]

_LOWER_NAME = (r"[a-z0-9][a-z0-9_-]*", "lower-case letters, digits, '-' and '_'")
_NAME = (r"[A-Za-z0-9][A-Za-z0-9_.-]*", "letters, digits, '.', '-' and '_'")
_name = matching(_NAME[0], _NAME[1])
_positive = duration()
_zero_ok = duration(allow_zero=True)


def _one_of(registry: Mapping[str, object]) -> str:
    return f"a type, one of: {', '.join(registry)}"


# --- providers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderCommon:
    """The keys every provider takes, parsed in one place."""

    location: str | None
    timeout: float
    verify: VerifyConfig


ProviderParser = Callable[[Section, str, ProviderCommon], ProviderConfig]


def _verify(sec: Section) -> VerifyConfig:
    raw = sec.raw("verify")
    if raw is None or raw is True:
        return VerifyConfig()
    if raw is False:
        return VerifyConfig(enabled=False)
    if not isinstance(raw, dict):
        sec.error("verify", "expected false or a mapping with nameservers and timeout")
        return VerifyConfig()
    v = sec.section("verify")
    nameservers = tuple(
        ns
        for path, node in v.items("nameservers", "a list of host:port")
        if (ns := v.item(path, node, hostport(default_port=53))) is not None
    )
    config = VerifyConfig(nameservers=nameservers, timeout=v.get("timeout", _positive, 60.0))
    v.done()
    return config


def _provider_common(sec: Section) -> ProviderCommon:
    return ProviderCommon(
        location=_opt_plain(sec.opt("location", _name)),
        timeout=sec.get("timeout", _positive, 10.0),
        verify=_verify(sec),
    )


def _builtin(sec: Section, name: str, common: ProviderCommon) -> BuiltinProviderConfig:
    listen = sec.need("listen", hostport(allow_zero=True), "host:port, like 127.0.0.1:5353")
    return BuiltinProviderConfig(
        name=name,
        listen=listen or HostPort("127.0.0.1", 0),
        location=common.location,
        timeout=common.timeout,
        verify=common.verify,
    )


PROVIDER_PARSERS: dict[str, ProviderParser] = {
    "builtin": _builtin,
    "route53": config_providers.route53,
    "ovh": config_providers.ovh,
    "scaleway": config_providers.scaleway,
    "rfc2136": config_providers.rfc2136,
}


def _providers(top: Section) -> tuple[dict[str, ProviderConfig], set[str]]:
    """The parsed providers, and every declared name (records may cite a provider with errors)."""
    sec = top.section("providers")
    if not sec.node and not sec.broken:
        top.error("providers", "no provider defined; define at least one DNS provider here")
    out: dict[str, ProviderConfig] = {}
    for name, path, node in sec.entries():
        if not re.fullmatch(_LOWER_NAME[0], name):
            sec.error(name, f"invalid provider name; expected {_LOWER_NAME[1]}")
        p = Section.open(sec.errors, node, path)
        if p is None:
            continue
        ptype = p.need("type", choice(PROVIDER_PARSERS, "provider type"), _one_of(PROVIDER_PARSERS))
        if ptype is None:
            continue  # its other keys cannot be judged without a known type
        out[name] = PROVIDER_PARSERS[ptype](p, name, _provider_common(p))
        p.done()
    return out, {name for name, _, _ in sec.entries()}


# --- probe settings, health, policy: merged level by level ------------------------------------


@dataclass(frozen=True)
class _Timing:
    interval: float
    timeout: float
    interval_from: str = "the built-in default"
    timeout_from: str = "the built-in default"


@dataclass(frozen=True)
class _Defaults:
    timing: _Timing
    health: HealthConfig
    policy: PolicyConfig


def _timing(sec: Section, base: _Timing) -> _Timing:
    """Override interval/timeout key by key; check the pair where it changes, so a bad default
    is reported once at its own path rather than at every probe that inherits it."""
    interval, timeout = sec.opt("interval", _positive), sec.opt("timeout", _positive)
    merged = _Timing(
        base.interval if interval is None else interval,
        base.timeout if timeout is None else timeout,
        base.interval_from if interval is None else sec.sub("interval"),
        base.timeout_from if timeout is None else sec.sub("timeout"),
    )
    rule = "a probe's timeout must not exceed its interval"
    if sec.failed("interval", "timeout") or merged.timeout <= merged.interval:
        return merged
    if timeout is not None:
        note = f" (the interval comes from {merged.interval_from})" if interval is None else ""
        sec.error(
            "timeout",
            f"{format_duration(merged.timeout)} exceeds the probe interval "
            f"{format_duration(merged.interval)}; {rule}{note}",
        )
    elif interval is not None:
        sec.error(
            "interval",
            f"{format_duration(merged.interval)} is shorter than the probe timeout "
            f"{format_duration(merged.timeout)}; {rule} (the timeout comes from "
            f"{merged.timeout_from})",
        )
    return merged


def _timing_block(parent: Section, base: _Timing) -> _Timing:
    sec = parent.section("probe")
    merged = _timing(sec, base)
    sec.done()
    return merged


def _health(parent: Section, base: HealthConfig) -> HealthConfig:
    sec = parent.section("health")
    health = HealthConfig(
        fall=sec.get("fall", integer(1), base.fall), rise=sec.get("rise", integer(1), base.rise)
    )
    sec.done()
    return health


def _policy(parent: Section, base: PolicyConfig) -> PolicyConfig:
    sec = parent.section("policy")
    failback = sec.opt("failback", choice(("manual", "auto"), "failback mode"))
    policy = PolicyConfig(
        failback=base.failback if failback is None else "auto" if failback == "auto" else "manual",
        failback_after=sec.get("failback_after", _zero_ok, base.failback_after),
        cooldown=sec.get("cooldown", _zero_ok, base.cooldown),
        max_auto_switches=sec.get("max_auto_switches", integer(1), base.max_auto_switches),
        flap_window=sec.get("flap_window", _positive, base.flap_window),
        startup_grace=sec.get("startup_grace", _zero_ok, base.startup_grace),
    )
    sec.done()
    return policy


def _defaults(top: Section) -> _Defaults:
    sec = top.section("defaults")
    defaults = _Defaults(
        _timing_block(sec, _Timing(5.0, 2.0)),
        _health(sec, HealthConfig()),
        _policy(sec, PolicyConfig()),
    )
    sec.done()
    return defaults


# --- probes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeCommon:
    """The keys every probe takes, resolved through the inheritance chain."""

    name: str
    interval: float
    timeout: float
    base_dir: Path | None = None  # relative paths (ca_file…) are read from here


ProbeParser = Callable[[Section, ProbeCommon], ProbeConfig]
PROBE_PARSERS: dict[str, ProbeParser] = {
    "http": config_http_tcp.http,
    "tcp": config_http_tcp.tcp,
    "dns": config_probes.dns,
    "tls": config_probes.tls,
}


def _opt_plain(value: str | None) -> str | None:
    return None if value is None else plain(value)


def _probes(t: Section, base: _Timing, base_dir: Path | None = None) -> tuple[ProbeConfig, ...]:
    """Each probe, named by its type when alone of it, else `type-N`; names unique per target."""
    items = t.items("probes", "a list of probes")
    types = [node.get("type") if isinstance(node, dict) else None for _, node in items]
    out: list[ProbeConfig] = []
    names: set[str] = set()
    for i, (path, node) in enumerate(items):
        p = Section.open(t.errors, node, path)
        if p is None:
            continue
        ptype = p.need("type", choice(PROBE_PARSERS, "probe type"), _one_of(PROBE_PARSERS))
        timing = _timing(p, base)
        if ptype is None:
            continue  # its other keys cannot be judged without a known type
        same = [j for j, other in enumerate(types) if other == ptype]
        name = p.get("name", _name, ptype if len(same) == 1 else f"{ptype}-{same.index(i) + 1}")
        if name in names:
            where = "name" if p.present("name") else None
            p.error(where, f"probe name {show(name)} is used twice in this target; name each probe")
        names.add(name)
        common = ProbeCommon(plain(name), timing.interval, timing.timeout, base_dir)
        out.append(PROBE_PARSERS[ptype](p, common))
        p.done()
    return tuple(out)


# --- services ---------------------------------------------------------------------------------

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
    timing: _Timing,
    health: HealthConfig,
    rtypes: set[RecordType],
    base_dir: Path | None = None,
) -> TargetConfig | None:
    name = t.need("name", _name, f"a target name of {_NAME[1]}")
    target = TargetConfig(
        name=plain(name or ""),
        location=_opt_plain(t.opt("location", _name)),
        values=_values(t, rtypes),
        probes=_probes(t, _timing_block(t, timing), base_dir),
        health=_health(t, health),
    )
    t.done()
    return target if name is not None else None


def _service(
    s: Section,
    name: str,
    defaults: _Defaults,
    providers: set[str],
    claimed: dict[tuple[str, str, RecordType], str],
    base_dir: Path | None = None,
) -> ServiceConfig:
    timing = _timing_block(s, defaults.timing)
    health = _health(s, defaults.health)
    policy = _policy(s, defaults.policy)
    rto = s.opt("rto", _positive)  # optional recovery time objective, checked by the audit
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
    drill_schedule = config_drills.drills(s, {t.name for t in targets})
    s.done()
    return ServiceConfig(
        name, tuple(records), tuple(targets), policy, rto=rto, drills=drill_schedule
    )


def _services(
    top: Section, defaults: _Defaults, providers: set[str], base_dir: Path | None = None
) -> dict[str, ServiceConfig]:
    sec = top.section("services")
    if not sec.node and not sec.broken:
        top.error("services", "no service defined; define at least one service here")
    claimed: dict[tuple[str, str, RecordType], str] = {}
    out: dict[str, ServiceConfig] = {}
    for name, path, node in sec.entries():
        if not re.fullmatch(_LOWER_NAME[0], name):
            sec.error(name, f"invalid service name; expected {_LOWER_NAME[1]}")
        s = Section.open(sec.errors, node, path)
        if s is not None:
            out[name] = _service(s, name, defaults, providers, claimed, base_dir)
    return out


def _canaries(top: Section, defaults: _Defaults, base_dir: Path | None) -> tuple[CanaryConfig, ...]:
    """`canaries:` — probes of things that should always be up, feeding the isolation guard."""
    out: list[CanaryConfig] = []
    for path, node in top.items("canaries", "a list of canaries"):
        c = Section.open(top.errors, node, path)
        if c is None:
            continue
        name = c.need("name", _name, "a name like internet")
        location = _opt_plain(c.opt("location", _name))
        timing = _timing_block(c, defaults.timing)
        health = _health(c, defaults.health)
        probes = _probes(c, timing, base_dir)
        if not probes and not c.failed("probes"):
            c.error("probes", "missing; expected probes of something that should always be up")
        c.done()
        if name is None:
            continue
        if any(other.name == plain(name) for other in out):
            c.error("name", f"canary {plain(name)!r} is defined twice; names must be unique")
        out.append(CanaryConfig(plain(name), location, probes, health))
    return tuple(out)


# --- top level --------------------------------------------------------------------------------


def _instance(top: Section, base_dir: Path | None) -> InstanceConfig:
    sec = top.section("instance")
    name = sec.opt("name", _name)
    instance = InstanceConfig(
        name=plain(name) if name is not None else socket.gethostname(),
        location=_opt_plain(sec.opt("location", _name)),
        state_dir=sec.get("state_dir", path_in(base_dir), Path("/var/lib/failover")),
        resync_interval=sec.get("resync_interval", _positive, 30.0),
        shutdown_timeout=sec.get("shutdown_timeout", _positive, 30.0),
    )
    sec.done()
    return instance


def _admin(top: Section, base_dir: Path | None) -> AdminConfig:
    sec = top.section("admin")
    admin = AdminConfig(
        socket=sec.get("socket", path_in(base_dir), Path("/run/failover/admin.sock")),
        listen=sec.opt("listen", hostport()),
        token_file=sec.opt("token_file", path_in(base_dir)),
    )
    if admin.listen is not None and admin.token_file is None and not sec.failed("token_file"):
        sec.error(
            "token_file",
            "missing; admin.listen (TCP) requires a token_file holding the "
            "bearer token clients must present",
        )
    sec.done()
    return admin


def _metrics(top: Section) -> MetricsConfig:
    sec = top.section("metrics")
    raw = sec.raw("listen")
    listen: HostPort | None = None
    if not sec.present("listen") or (raw is not None and raw is not False):
        listen = sec.get("listen", hostport(allow_zero=True), HostPort("127.0.0.1", 9180))
    sec.done()
    return MetricsConfig(listen)


def parse_config(
    text: str,
    *,
    source: Path | None = None,
    env: Mapping[str, str] | None = None,
    missing_secrets: list[str] | None = None,
) -> Config:
    """Parse and validate a whole file; raise ConfigError listing every problem found."""
    env = os.environ if env is None else env
    label = str(source) if source is not None else "<config>"
    base_dir = source.absolute().parent if source is not None else None
    tree, errors = load_yaml(text, label)
    if tree is None:
        raise ConfigError([f"{label}: the file is empty; expected providers: and services:"])
    if not isinstance(tree, dict):
        raise ConfigError([f"{label}: expected a mapping at the top level, got {kind(tree)}"])
    tree = interpolate(tree, "", env, base_dir, errors, missing_secrets)
    top = Section(errors, tree, "")
    instance, admin, metrics = _instance(top, base_dir), _admin(top, base_dir), _metrics(top)
    providers, declared = _providers(top)
    defaults = _defaults(top)
    services = _services(top, defaults, declared, base_dir)
    canaries = _canaries(top, defaults, base_dir)
    notifications = config_notify.notifications(top)
    top.done()
    if errors:
        raise ConfigError(errors)
    source = source.absolute() if source is not None else None
    return Config(
        instance,
        admin,
        metrics,
        providers,
        services,
        source=source,
        notifications=notifications,
        canaries=canaries,
    )


def load_config(
    path: str | Path,
    env: Mapping[str, str] | None = None,
    *,
    missing_secrets: list[str] | None = None,
) -> Config:
    """Read and parse a config file; an unreadable file is a ConfigError, never a traceback."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [
                f"{source}: cannot read the configuration: {exc.strerror or exc}; check the path "
                "and its permissions"
            ]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{source}: not UTF-8 text; expected a YAML file"]) from None
    return parse_config(text, source=source, env=env, missing_secrets=missing_secrets)


# --- check-config summary ---------------------------------------------------------------------


def _safe_url(url: str) -> str:
    """The URL without credentials or query string: both commonly carry tokens."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, "…" if parts.query else "", "")
    )


def _describe_probe(p: ProbeConfig) -> str:
    every = f"every {format_duration(p.interval)}, timeout {format_duration(p.timeout)}"
    if isinstance(p, HttpProbeConfig):
        extra = f" (Host: {p.host})" if p.host else ""
        extra += "" if p.verify_tls else " (TLS not verified)"
        statuses = ",".join(map(str, p.expect_status))
        more = config_http_tcp.describe_http(p)
        return f"{p.name}: {p.method} {_safe_url(p.url)}{extra} expect {statuses}{more}; {every}"
    if isinstance(p, DnsProbeConfig):
        return f"{p.name}: {config_probes.describe_dns(p)}; {every}"
    if isinstance(p, TlsProbeConfig):
        return f"{p.name}: {config_probes.describe_tls(p)}; {every}"
    return f"{p.name}: {config_http_tcp.describe_tcp(p)}; {every}"


def _describe_provider(p: ProviderConfig) -> str:
    """Generic over provider dataclasses, so a new provider is described without edits here;
    secrets print as `***` because they are `Secret`s."""
    common = {"name", "type", "location", "timeout", "verify", "retry"}
    details = [
        f"{f.name} {'***' if isinstance(value, Secret) else value}"
        for f in fields(p)
        if f.name not in common and (value := getattr(p, f.name)) is not None
    ]
    check = p.verify
    servers = ", ".join(map(str, check.nameservers)) or "the zone's NS set"
    verify = f"{servers} within {format_duration(check.timeout)}" if check.enabled else "off"
    where = f" in {p.location}" if p.location else ""
    head = ", ".join([f"{p.type}{where}", *details, f"timeout {format_duration(p.timeout)}"])
    return f"  {p.name}: {head}; verify: {verify}"


def describe(config: Config) -> str:
    """The summary `failover check-config` prints. It shows no secret and no URL credentials."""
    i, a, m = config.instance, config.admin, config.metrics
    lines = [
        f"instance {i.name}"
        + (f" in {i.location}" if i.location else "")
        + f", state {i.state_dir}",
        f"admin socket {a.socket}" + (f", TCP {a.listen}" if a.listen else ""),
        f"metrics {'on ' + str(m.listen) if m.listen else 'disabled'}",
        f"providers ({len(config.providers)}):",
        *(_describe_provider(p) for _, p in sorted(config.providers.items())),
        f"services ({len(config.services)}):",
    ]
    for svc in config.services.values():
        pol = svc.policy
        lines += [f"  {svc.name}:", "    records:"]
        lines += [
            f"      {r.name} {r.type} ttl {r.ttl} at {r.provider} (zone {r.zone})"
            for r in svc.records
        ]
        lines.append("    targets (priority order):")
        for n, t in enumerate(svc.targets, 1):
            role = " (primary)" if n == 1 else ""
            lines.append(
                f"      {n}. {t.name}{role} [{t.location or 'no location'}] "
                f"{', '.join(t.values)}; fall {t.health.fall}, rise {t.health.rise}"
            )
            lines += [f"         probe {_describe_probe(p)}" for p in t.probes]
            if not t.probes:
                lines.append("         no probes")
        lines.append(
            f"    policy: failback {pol.failback} after {format_duration(pol.failback_after)}, "
            f"cooldown {format_duration(pol.cooldown)}, at most {pol.max_auto_switches} "
            f"automatic switches per {format_duration(pol.flap_window)}, start-up grace "
            f"{format_duration(pol.startup_grace)}"
        )
        if svc.rto is not None:
            lines.append(f"    recovery time objective (rto): {format_duration(svc.rto)}")
    lines += config_notify.describe_notifications(config.notifications)
    return "\n".join(lines)
