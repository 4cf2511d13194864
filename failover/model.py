"""Value types shared by every layer: health, modes, records, probe results, changes.

They are plain frozen dataclasses and enums with stable string values, because the same names
appear in the admin API, the journal and the metrics, and users' scripts depend on them.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Health(StrEnum):
    """Health of one probe or one target."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


class Mode(StrEnum):
    """How a service is driven: by the state machine, by an operator's pin, or not at all."""

    AUTO = "auto"
    PINNED = "pinned"
    PAUSED = "paused"


class Phase(StrEnum):
    """Where a service is in its change cycle (stable names: `status --json` shows them)."""

    STARTING = "starting"  # its published records are not read yet: nothing is decided on them
    STEADY = "steady"  # nothing in flight, nothing refused
    SWITCHING = "switching"  # a change is being submitted to its providers
    CONFIRMING = "confirming"  # every provider accepted; waiting for the servers to serve it
    RETRYING = "retrying"  # a change failed at some or all providers; next attempt at retry_at
    REFUSED = "refused"  # the decision asks for a change that a safety rule refuses
    DRY_RUN = "dry_run"  # the decision asks for a change that dry-run mode does not make
    DRILLING = "drilling"  # a drill holds the service (drill.py) between its two switches


class Trigger(StrEnum):
    """Who caused a change: the state machine, an operator, or a drill."""

    AUTO = "auto"
    MANUAL = "manual"
    DRILL = "drill"


class RecordType(StrEnum):
    A = "A"
    AAAA = "AAAA"
    CNAME = "CNAME"


def normalize_name(name: str) -> str:
    """Lower-case DNS name without the trailing dot: the one spelling used internally."""
    return name.strip().rstrip(".").lower()


@functools.lru_cache(maxsize=1 << 16)
def canonical_value(rtype: RecordType, value: str) -> str:
    """Canonical text of one record value, so values compare equal whatever their spelling.

    Raises ValueError when the value does not fit the type.
    """
    if rtype is RecordType.A:
        return str(ipaddress.IPv4Address(value.strip()))
    if rtype is RecordType.AAAA:
        return str(ipaddress.IPv6Address(value.strip()))
    host = normalize_name(value)
    if not host or any(not label or len(label) > 63 for label in host.split(".")):
        raise ValueError(f"{value!r} is not a host name")
    return host


def canonical_values(rtype: RecordType, values: Iterable[str]) -> tuple[str, ...]:
    """Sorted, de-duplicated canonical values: the comparable form of an RRset."""
    return _canonical_tuple(rtype, values if isinstance(values, tuple) else tuple(values))


@functools.lru_cache(maxsize=1 << 15)
def _canonical_tuple(rtype: RecordType, values: tuple[str, ...]) -> tuple[str, ...]:
    # cached: every decision compares the RRsets read and every target's values, and parsing
    # an address costs more than the rest of a decision (a few thousand distinct RRsets)
    return tuple(sorted({canonical_value(rtype, v) for v in values}))


def values_for_type(rtype: RecordType, values: Iterable[str]) -> tuple[str, ...]:
    """The subset of a target's values that a record of `rtype` publishes.

    A target lists its addresses once; an A record takes the IPv4 ones, an AAAA record the IPv6
    ones, a CNAME the single host name.
    """
    return _for_type_tuple(rtype, values if isinstance(values, tuple) else tuple(values))


@functools.lru_cache(maxsize=1 << 15)
def _for_type_tuple(rtype: RecordType, values: tuple[str, ...]) -> tuple[str, ...]:
    # cached as `_canonical_tuple` is: classifying what a provider serves asks this of every
    # target, several times per change, and parsing the addresses was 2% of a mass failover
    picked: list[str] = []
    for value in values:
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            if rtype is RecordType.CNAME:
                picked.append(value)
            continue
        if (rtype is RecordType.A and address.version == 4) or (
            rtype is RecordType.AAAA and address.version == 6
        ):
            picked.append(value)
    return canonical_values(rtype, picked)


@dataclass(frozen=True, order=True)
class RecordKey:
    """Identity of one managed RRset at one provider."""

    provider: str
    zone: str
    name: str
    type: RecordType

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}/{self.type}"


@dataclass(frozen=True)
class RecordSet:
    """What a provider currently serves for one RRset."""

    name: str
    type: RecordType
    ttl: int
    values: tuple[str, ...]


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of one probe run. The reason is kept: a bool alone cannot explain a failover."""

    ok: bool
    reason: str
    duration: float
    timings: Mapping[str, float] = field(default_factory=dict)
    detail: Mapping[str, str | int | float] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One RRset to rewrite at one provider: the values seen before and the values wanted."""

    key: RecordKey
    ttl: int
    before: tuple[str, ...] | None
    after: tuple[str, ...]

    def describe(self) -> str:
        before = ", ".join(self.before) if self.before else "(absent)"
        return f"{self.key}: {before} -> {', '.join(self.after)}"
