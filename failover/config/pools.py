"""A target's `pool:` (its values judged one by one) and a service's `fallback:`.

A pool's probes are written once with `{value}` in the host of their `url` (http), `address`
(tcp, tls) or `server` (dns); they are parsed once, with the first value in place of the
placeholder, so an error is reported once at its own path, then expanded into ordinary probes,
one per value, named `PROBE@VALUE`. The probe scheduler sees nothing special: a pool is plain
probes whose results the engine folds per value (core/pool.py).
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

from failover.config.common import opt_plain, valid_name
from failover.config.parse import Section, integer, kind, plain, retaint, show
from failover.config.probes import Timing, parse_probes, timing_block
from failover.config.types import (
    DnsProbeConfig,
    FallbackConfig,
    HealthConfig,
    HostPort,
    HttpProbeConfig,
    PolicyConfig,
    PoolConfig,
    ProbeConfig,
    TargetConfig,
    TcpProbeConfig,
    TlsProbeConfig,
)
from failover.model import RecordType, canonical_value

PLACEHOLDER = "{value}"
# the key of each probe type whose host the placeholder stands for
HOST_KEY = {"http": "url", "tcp": "address", "tls": "address", "dns": "server"}


def _url_host(value: str) -> str:
    return f"[{value}]" if ":" in value else value


def _substitute(text: str, value: str) -> str:
    """`{value}` replaced; an IPv6 address is bracketed in a URL unless the template did it."""
    if "[" + PLACEHOLDER + "]" in text:
        return text.replace(PLACEHOLDER, value)
    return text.replace(PLACEHOLDER, _url_host(value))


def _template_nodes(t: Section, sample: str) -> tuple[list[object], dict[int, str]]:
    """The probe nodes with `{value}` replaced by `sample`, and the raw host text of each."""
    raw = t.raw("probes")
    if not isinstance(raw, list):
        return [], {}
    nodes: list[object] = []
    templates: dict[int, str] = {}
    for i, node in enumerate(raw):
        if not isinstance(node, dict):
            nodes.append(node)
            continue
        key = HOST_KEY.get(str(node.get("type")))
        text = node.get(key) if key else None
        path = f"{t.sub('probes')}[{i}]"
        if key is None or not isinstance(text, str):
            nodes.append(node)  # parse_probes reports what is wrong with it
            continue
        if PLACEHOLDER not in text:
            t.errors.append(
                f"{path}.{key}: {show(text)} has no {PLACEHOLDER}; a pool's probes run once per "
                f"value, so write {PLACEHOLDER} where the host goes "
                f"(like http://{PLACEHOLDER}:8080/healthz or {PLACEHOLDER}:443)"
            )
            nodes.append(node)
            continue
        templates[i] = text
        nodes.append({**node, key: retaint(text, _substitute(text, sample))})
    return nodes, templates


def _pool_values(t: Section, values: tuple[str, ...]) -> bool:
    """A pool publishes a subset of its values: IP addresses of one family, two or more."""
    if len(values) < 2:
        t.error(
            "pool",
            f"a pool needs at least two values (this target has {len(values)}); "
            "remove `pool:` or list more values",
        )
        return False
    families = set()
    for value in values:
        try:
            families.add(ipaddress.ip_address(value).version)
        except ValueError:
            t.error(
                "pool",
                f"{show(value)} is a host name; a pool publishes a subset of IP addresses "
                "(a CNAME holds one value), so list IP addresses only",
            )
            return False
    if len(families) > 1:
        t.error(
            "pool",
            "mixes IPv4 and IPv6 values; a pool's values must be of one family "
            "(split them into two targets)",
        )
        return False
    return True


def _expand(probe: ProbeConfig, template: str, value: str) -> ProbeConfig:
    name = f"{probe.name}@{value}"
    if isinstance(probe, HttpProbeConfig):
        return replace(probe, name=name, url=_substitute(template, value))
    if isinstance(probe, TcpProbeConfig | TlsProbeConfig):
        return replace(probe, name=name, address=HostPort(value, probe.address.port))
    if isinstance(probe, DnsProbeConfig):
        return replace(probe, name=name, server=HostPort(value, probe.server.port))
    raise AssertionError(f"no host key for {type(probe).__name__}")


def parse_pool(
    t: Section, values: tuple[str, ...], timing: Timing, base_dir: Path | None
) -> tuple[PoolConfig | None, tuple[ProbeConfig, ...]]:
    """The target's `pool:` and its probes (expanded per value when it is a pool)."""
    if t.raw("pool") is None:
        probes = parse_probes(t, timing, base_dir)
        for i, p in enumerate(probes):
            if isinstance(p, HttpProbeConfig) and PLACEHOLDER in p.url:
                t.errors.append(
                    f"{t.sub('probes')}[{i}].url: {PLACEHOLDER} is substituted only in a "
                    f"pool's probes; add `pool: {{min_up: N}}` to the target or write the host"
                )
        return None, probes
    sec = t.section("pool")
    min_up = sec.need("min_up", integer(1), "how many values must be UP for the target to be UP")
    sec.done()
    before = len(t.errors)
    good = _pool_values(t, values)
    if good and min_up is not None and min_up > len(values):
        sec.error(
            "min_up",
            f"{min_up} is more than the {len(values)} values of this target; "
            f"expected 1..{len(values)}",
        )
    sample = values[0] if values else "192.0.2.1"
    nodes, templates = _template_nodes(t, sample)
    view = Section(t.errors, {"probes": nodes}, t.path)
    parsed = parse_probes(view, timing, base_dir)
    if not parsed and not t.failed("probes"):
        t.error("probes", f"missing; a pool needs probes with {PLACEHOLDER} in their host")
    if len(t.errors) > before or min_up is None or not good:
        return None, parsed
    expanded: list[ProbeConfig] = []
    members: list[tuple[str, tuple[str, ...]]] = []
    for value in values:
        mine = [_expand(p, templates[i], value) for i, p in enumerate(parsed)]
        expanded += mine
        members.append((value, tuple(p.name for p in mine)))
    return PoolConfig(min_up, tuple(members)), tuple(expanded)


def parse_fallback(
    s: Section,
    rtypes: set[RecordType],
    targets: list[TargetConfig],
    policy: PolicyConfig,
    timing: Timing,
    health: HealthConfig,
    base_dir: Path | None = None,
) -> FallbackConfig | None:
    """`fallback: {values: [...], location: ...}`: what a service serves when all is down."""
    if s.raw("fallback") is None:
        if policy.all_down == "fallback":
            s.error(
                "fallback",
                "missing; policy.all_down is fallback, so the service needs "
                "`fallback: {values: [...]}` (or set policy.all_down: hold)",
            )
        return None
    sec = s.section("fallback")
    location = opt_plain(sec.opt("location", valid_name))
    probes = parse_probes(sec, timing_block(sec, timing), base_dir)
    hsec = sec.section("health")
    fall_rise = HealthConfig(
        fall=hsec.get("fall", integer(1), health.fall),
        rise=hsec.get("rise", integer(1), health.rise),
    )
    hsec.done()
    out: list[str] = []
    items = sec.items("values", "a list of addresses or host names")
    for path, node in items:
        if not isinstance(node, str):
            sec.errors.append(f"{path}: expected an address or host name, got {kind(node)}")
            continue
        rtype = _rtype(node)
        try:
            out.append(canonical_value(rtype, node))
        except ValueError:
            sec.errors.append(f"{path}: {show(node)} is neither an IP address nor a host name")
    if not items and not sec.failed("values"):
        sec.error("values", "missing; expected the addresses to publish when every target is DOWN")
    for rtype in rtypes:
        if out and not [v for v in out if _rtype(v) is rtype]:
            sec.error(
                "values",
                f"no value for the service's {rtype} records; the fallback must answer every "
                "record of the service",
            )
    for target in targets:
        if out and set(out) == set(target.values):
            s.error(
                "fallback",
                f"serves the same values as target {target.name}; the fallback must answer "
                "something else than the targets (a static page elsewhere)",
            )
    sec.done()
    if not out:
        return None
    return FallbackConfig(tuple(plain(v) for v in out), location, probes, fall_rise)


def _rtype(value: str) -> RecordType:
    try:
        version = ipaddress.ip_address(value.strip()).version
    except ValueError:
        return RecordType.CNAME
    return RecordType.A if version == 4 else RecordType.AAAA
