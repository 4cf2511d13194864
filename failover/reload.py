"""Live reload: what changed between two validated configurations, and how runtimes carry over.

A reload (SIGHUP, `POST /v1/reload`) parses the whole new file first, like blackbox exporter,
so a bad file changes nothing. Then only what changed is rebuilt: a reload in the middle of an
incident must not reset a target's fall/rise counters (a target two failures from DOWN would
need `fall` fresh ones), a service's flap counters, or a pin. Keys that the running process
cannot change (its identity, its state dir and listeners) are refused with their name, and
the operator restarts to apply them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from failover import intents as intents_codec
from failover.config.types import Config, ServiceConfig, TargetConfig
from failover.core.decide import ServiceState
from failover.core.health import ProbeState, TargetHealth, target_health
from failover.core.pool import fold_members, pool_health
from failover.core.values import FALLBACK
from failover.model import Health
from failover.runtime import ServiceRuntime

log = logging.getLogger("failover.reload")

RESTART_ONLY: tuple[tuple[str, Callable[[Config], object]], ...] = (
    ("instance.name", lambda c: c.instance.name),
    ("instance.state_dir", lambda c: c.instance.state_dir),
    ("instance.probe_process", lambda c: c.instance.probe_process),  # the probes' process
    ("admin.socket", lambda c: c.admin.socket),
    ("admin.listen", lambda c: c.admin.listen),
    ("admin.token_file", lambda c: c.admin.token_file),
    ("metrics.listen", lambda c: c.metrics.listen),
    ("coordination", lambda c: c.coordination),  # the etcd client and lease live for the run
)
"""Keys a running daemon cannot change: its identity (journal, votes), its locked state dir
and its listeners. A reload that changes one is refused; restart to apply it."""

T = TypeVar("T")


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """One message per restart-only key that differs, naming the key and both values."""
    return [
        f"{key}: changed from {_show(get(old))} to {_show(get(new))}; this key cannot change "
        "while the daemon runs: restart it to apply (systemctl restart failover)"
        for key, get in RESTART_ONLY
        if get(old) != get(new)
    ]


def _show(value: object) -> str:
    """A value as the YAML file spells it (`true`, not Python's `True`)."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Delta:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def text(self, limit: int = 20) -> str:
        """`+added ~changed -removed`, the first `limit` names and how many more: a reload
        that touched 10,000 services wrote a 90 KB log line and journal reason. The journal
        entry's `changes` keeps every name."""
        marks = [
            *(f"+{n}" for n in self.added),
            *(f"~{n}" for n in self.changed),
            *(f"-{n}" for n in self.removed),
        ]
        if len(marks) <= limit:
            return " ".join(marks)
        counts = ", ".join(
            f"{len(names):,} {word}"
            for names, word in (
                (self.added, "added"),
                (self.changed, "changed"),
                (self.removed, "removed"),
            )
            if names
        )
        return f"{' '.join(marks[:limit])} and {len(marks) - limit:,} more ({counts})"

    def as_json(self) -> dict[str, list[str]]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
        }


def delta(old: Mapping[str, T], new: Mapping[str, T], same: Callable[[str], bool]) -> Delta:
    return Delta(
        added=tuple(sorted(set(new) - set(old))),
        removed=tuple(sorted(set(old) - set(new))),
        changed=tuple(sorted(n for n in set(old) & set(new) if not same(n))),
    )


@dataclass(frozen=True)
class ConfigDiff:
    services: Delta
    providers: Delta
    settings: tuple[str, ...]  # other sections that changed (applied live)

    def summary(self) -> str:
        parts = [
            f"{kind} {d.text()}"
            for kind, d in (("services", self.services), ("providers", self.providers))
            if d.text()
        ]
        parts += [f"{name} changed" for name in self.settings]
        return "; ".join(parts) or "no change"

    def as_json(self) -> dict[str, Any]:
        return {
            "services": self.services.as_json(),
            "providers": self.providers.as_json(),
            "settings": list(self.settings),
        }


def diff(
    old: Config,
    new: Config,
    old_zones: Mapping[str, set[str]],
    new_zones: Mapping[str, set[str]],
) -> ConfigDiff:
    """A provider counts as changed when its settings or the zones it serves changed: providers
    take their zones when they are created (the builtin server serves exactly those)."""
    services = delta(old.services, new.services, lambda n: old.services[n] == new.services[n])
    providers = delta(
        old.providers,
        new.providers,
        lambda n: old.providers[n] == new.providers[n] and old_zones[n] == new_zones[n],
    )
    settings = [
        name
        for name, before, after in (
            ("instance", old.instance, new.instance),
            ("notifications", old.notifications, new.notifications),
        )
        if before != after
    ]
    return ConfigDiff(services, providers, tuple(settings))


# ------------------------------------------------------------------ runtimes


def merge_services(
    services: Mapping[str, ServiceRuntime], config: Config, closing: Collection[str], now: float
) -> dict[str, ServiceRuntime]:
    """The engine's runtimes for `config`: unchanged services as they are, changed ones updated
    in place (tasks in flight hold a reference to them), new ones fresh with their own start-up
    grace. Removed services simply drop out."""
    merged: dict[str, ServiceRuntime] = {}
    for name, svc in config.services.items():
        rt = services.get(name)
        if rt is None:
            rt = ServiceRuntime.fresh(svc, ServiceState())
            rt.restart_grace(now)
            log.info("reload: service %s added", name, extra={"service": name})
        elif rt.config != svc:
            _merge_service(rt, svc, now)
        if any(r.provider in closing for r in svc.records):
            rt.reread_soon()  # a new provider instance: read it back at once
        merged[name] = rt
    return merged


def _merge_service(rt: ServiceRuntime, svc: ServiceConfig, now: float) -> None:
    old = rt.config
    before = {t.name: t for t in old.targets}
    probes: dict[tuple[str, str], ProbeState] = {}
    targets: dict[str, TargetHealth] = {}
    members: dict[str, dict[str, TargetHealth]] = {}
    reset = False
    for target in svc.targets:
        kept = _kept_probes(rt, before.get(target.name), target)
        probes.update({(target.name, name): state for name, state in kept.items()})
        if before.get(target.name) == target:
            targets[target.name] = rt.targets[target.name]
            if target.name in rt.members:
                members[target.name] = rt.members[target.name]
            continue
        if target.pool is not None:
            members[target.name] = fold_members(target, kept, rt.members.get(target.name, {}), now)
            health = pool_health(target, members[target.name], rt.targets.get(target.name), now)
        elif not target.probes:
            health = TargetHealth(Health.UNKNOWN, None, None, "no probes configured")
        else:
            health = target_health(kept, rt.targets.get(target.name), now)
        targets[target.name] = health
        reset = reset or health.health is Health.UNKNOWN
    state = intents_codec.decode_state(intents_codec.encode_state(rt.state), svc)
    if svc.fallback is not None and old.fallback == svc.fallback:
        probes.update({k: v for k, v in rt.probes.items() if k[0] == FALLBACK})
    elif svc.fallback is not None and svc.fallback.probes:
        rt.fallback_health = TargetHealth(Health.UNKNOWN, None, None, "no probe result yet")
    else:
        rt.fallback_health = None
    rt.adopt(svc, probes, targets, state)
    rt.members = members
    if reset:  # a new or re-probed target starts UNKNOWN: give it the start-up grace
        rt.restart_grace(now)
    log.info("reload: service %s updated", svc.name, extra={"service": svc.name})


def _kept_probes(
    rt: ServiceRuntime, before: TargetConfig | None, target: TargetConfig
) -> dict[str, ProbeState]:
    """Probe states that carry over: same probe settings and same fall/rise thresholds."""
    old_specs = {p.name: p for p in before.probes} if before is not None else {}
    same_health = before is not None and before.health == target.health
    kept: dict[str, ProbeState] = {}
    for probe in target.probes:
        state = rt.probes.get((target.name, probe.name))
        if same_health and old_specs.get(probe.name) == probe and state is not None:
            kept[probe.name] = state
        else:
            kept[probe.name] = ProbeState()
    return kept
