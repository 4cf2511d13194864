"""Split answers: the providers of one record set serve different answers, one a DOWN target.

Why it is its own alarm: a record hosted at two providers (two NS sets) is served by both, so a
provider that kept the old answer sends part of the users to the dead target while the other
provider's answer says the service switched. The decision core sees a change in progress there
(not drift), and rightly waits for the retries; this check says what users get meanwhile. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from failover.config.types import ServiceConfig
from failover.core.health import TargetHealth
from failover.core.values import serves
from failover.model import Health, RecordKey, RecordSet, RecordType, canonical_values


def split_answers(
    service: ServiceConfig,
    current: Mapping[RecordKey, RecordSet | None] | None,
    health: Mapping[str, TargetHealth],
) -> dict[str, str]:
    """provider -> one line, for each provider that serves a DOWN target for a record set
    whose other providers serve something else."""
    if current is None:
        return {}
    groups: dict[tuple[str, RecordType], list[tuple[str, tuple[str, ...] | None]]] = {}
    for record in service.records:
        if record.key not in current:
            continue  # not read yet
        rs = current[record.key]
        groups.setdefault((record.name, record.type), []).append(
            (record.provider, _canonical(record.type, rs))
        )
    split: dict[str, str] = {}
    for (name, rtype), served in groups.items():
        if len({values for _, values in served}) < 2:
            continue
        names = {p: _target_of(service, rtype, values) for p, values in served}
        for provider, values in served:
            target = names[provider]
            if target is None or not _down(health, service, rtype, values):
                continue
            others = ", ".join(
                f"{p} serves {names[p] or ', '.join(v or ('nothing',))}"
                for p, v in served
                if p != provider
            )
            split[provider] = (
                f"{provider} serves {target} (DOWN) for {name}/{rtype.value} while {others}"
            )
    return split


def _canonical(rtype: RecordType, rs: RecordSet | None) -> tuple[str, ...] | None:
    if rs is None:
        return None
    try:
        return canonical_values(rtype, rs.values)
    except ValueError:
        return tuple(rs.values)


def _matching(
    service: ServiceConfig, rtype: RecordType, values: tuple[str, ...] | None
) -> list[str]:
    if not values:
        return []
    return [t.name for t in service.targets if serves(t, rtype, values)]


def _target_of(
    service: ServiceConfig, rtype: RecordType, values: tuple[str, ...] | None
) -> str | None:
    matching = _matching(service, rtype, values)
    return matching[0] if matching else None


def _down(
    health: Mapping[str, TargetHealth],
    service: ServiceConfig,
    rtype: RecordType,
    values: tuple[str, ...] | None,
) -> bool:
    """Every target these values reach is DOWN (targets may share values)."""
    states = [health.get(t) for t in _matching(service, rtype, values)]
    return bool(states) and all(s is not None and s.health is Health.DOWN for s in states)
