"""What a configuration asks the daemon to run: its probe jobs and the zones of each provider.

Apart from the daemon so that `check-config`, the direct (daemon-less) commands and the
benchmarks build them without importing the daemon's servers.
"""

from __future__ import annotations

from failover.config.types import Config, HealthConfig
from failover.core.values import FALLBACK
from failover.engine.inputs import CANARY
from failover.probes.scheduler import ProbeJob


def probe_jobs(config: Config) -> list[ProbeJob]:
    """Every target's probes, each fallback's under the reserved target name FALLBACK, and the
    canaries' under the reserved service name CANARY."""
    return (
        [
            ProbeJob(service.name, target.name, spec, settle(target.health))
            for service in config.services.values()
            for target in service.targets
            for spec in target.probes
        ]
        + [
            # the all-down fallback's own probes
            ProbeJob(service.name, FALLBACK, spec, settle(service.fallback.health))
            for service in config.services.values()
            if service.fallback is not None
            for spec in service.fallback.probes
        ]
        + [
            ProbeJob(CANARY, canary.name, spec, settle(canary.health))
            for canary in config.canaries
            for spec in canary.probes
        ]
    )


def settle(health: HealthConfig) -> int:
    """Runs in a row that settle a verdict either way: how long `fast_interval` lasts."""
    return max(health.fall, health.rise)


def provider_zones(config: Config) -> dict[str, set[str]]:
    """The zones each provider holds records in (what it opens and checks at start)."""
    zones: dict[str, set[str]] = {name: set() for name in config.providers}
    for service in config.services.values():
        for record in service.records:
            zones[record.provider].add(record.zone)
    return zones
