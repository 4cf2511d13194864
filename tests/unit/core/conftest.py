"""Builders for the pure-core tests: real config dataclasses, no mocks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest

from failover.config.types import (
    HealthConfig,
    HostPort,
    PolicyConfig,
    RecordConfig,
    ServiceConfig,
    TargetConfig,
    TcpProbeConfig,
)
from failover.model import RecordKey, RecordSet, RecordType, values_for_type

# name -> (location, values); priority order
DEFAULT_TARGETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "aws": ("aws", ("203.0.113.10", "203.0.113.11")),
    "ovh": ("ovh", ("198.51.100.20",)),
    "scw": ("scaleway", ("192.0.2.30",)),
}
DEFAULT_RECORDS: tuple[tuple[str, RecordType], ...] = (
    ("ovh", RecordType.A),
    ("route53", RecordType.A),
)


def build_service(
    targets: Mapping[str, tuple[str, Sequence[str]]] | None = None,
    records: Sequence[tuple[str, RecordType]] = DEFAULT_RECORDS,
    policy: PolicyConfig | None = None,
    name: str = "shop",
    ttl: int = 60,
) -> ServiceConfig:
    """A service with one tcp probe per target and `records` named shop.example.com."""
    specs = DEFAULT_TARGETS if targets is None else targets
    return ServiceConfig(
        name=name,
        records=tuple(
            RecordConfig(provider, "example.com", "shop.example.com", rtype, ttl)
            for provider, rtype in records
        ),
        targets=tuple(
            TargetConfig(
                name=tname,
                location=location,
                values=tuple(values),
                probes=(TcpProbeConfig("tcp", HostPort(tname, 443), 5.0, 2.0),),
                health=HealthConfig(),
            )
            for tname, (location, values) in specs.items()
        ),
        policy=policy or PolicyConfig(),
    )


def records_for(
    service: ServiceConfig, target: str, ttl: int | None = None
) -> dict[RecordKey, RecordSet | None]:
    """What the providers would serve with `target` published."""
    t = service.target(target)
    assert t is not None
    return {
        r.key: RecordSet(r.name, r.type, ttl or r.ttl, values_for_type(r.type, t.values))
        for r in service.records
    }


@pytest.fixture(scope="session")
def make_service() -> Callable[..., ServiceConfig]:
    return build_service


@pytest.fixture(scope="session")
def shop() -> ServiceConfig:
    return build_service()


@pytest.fixture(scope="session")
def served_by() -> Callable[..., dict[RecordKey, RecordSet | None]]:
    return records_for
