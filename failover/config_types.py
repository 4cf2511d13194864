"""Typed, frozen configuration models (SPEC §3).

Kept apart from the YAML loader in `config.py` so every layer can import the shapes without
pulling in parsing. Durations are float seconds. Provider and probe sections are tagged unions on
`type`: a new provider or probe kind adds one dataclass here and one member to the union.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from failover.model import RecordKey, RecordType


class Secret:
    """A credential read from `${ENV}` or `${file:…}`; it never prints its value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The clear value, for the one call that sends it to a provider."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class InstanceConfig:
    name: str
    location: str | None
    state_dir: Path
    resync_interval: float = 30.0  # how often the engine re-reads published records (drift)


@dataclass(frozen=True)
class AdminConfig:
    socket: Path
    listen: HostPort | None = None
    token_file: Path | None = None


@dataclass(frozen=True)
class MetricsConfig:
    listen: HostPort | None


@dataclass(frozen=True)
class VerifyConfig:
    """After a change, which authoritative servers must serve the new answer."""

    enabled: bool = True
    nameservers: tuple[HostPort, ...] = ()  # empty: the zone's NS set
    timeout: float = 60.0


@dataclass(frozen=True)
class BuiltinProviderConfig:
    """An authoritative DNS server inside the daemon: demo, labs and tests, not production."""

    name: str
    listen: HostPort
    type: Literal["builtin"] = "builtin"
    location: str | None = None
    timeout: float = 10.0
    verify: VerifyConfig = field(default_factory=VerifyConfig)


ProviderConfig = BuiltinProviderConfig


@dataclass(frozen=True)
class HttpProbeConfig:
    name: str
    url: str
    interval: float
    timeout: float
    type: Literal["http"] = "http"
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    host: str | None = None
    expect_status: tuple[int, ...] = (200,)
    body_regex: str | None = None
    verify_tls: bool = True
    tls_server_name: str | None = None


@dataclass(frozen=True)
class TcpProbeConfig:
    name: str
    address: HostPort
    interval: float
    timeout: float
    type: Literal["tcp"] = "tcp"


ProbeConfig = HttpProbeConfig | TcpProbeConfig


@dataclass(frozen=True)
class HealthConfig:
    fall: int = 3
    rise: int = 3


@dataclass(frozen=True)
class PolicyConfig:
    failback: Literal["manual", "auto"] = "manual"
    failback_after: float = 600.0
    cooldown: float = 300.0
    max_auto_switches: int = 3
    flap_window: float = 3600.0
    startup_grace: float = 60.0  # after this, start-up stops waiting for UNKNOWN targets


@dataclass(frozen=True)
class TargetConfig:
    name: str
    location: str | None
    values: tuple[str, ...]
    probes: tuple[ProbeConfig, ...]
    health: HealthConfig


@dataclass(frozen=True)
class RecordConfig:
    provider: str
    zone: str
    name: str
    type: RecordType
    ttl: int

    @property
    def key(self) -> RecordKey:
        return RecordKey(self.provider, self.zone, self.name, self.type)


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    records: tuple[RecordConfig, ...]
    targets: tuple[TargetConfig, ...]  # priority order: the first is the primary
    policy: PolicyConfig

    def target(self, name: str) -> TargetConfig | None:
        return next((t for t in self.targets if t.name == name), None)


@dataclass(frozen=True)
class Config:
    instance: InstanceConfig
    admin: AdminConfig
    metrics: MetricsConfig
    providers: Mapping[str, ProviderConfig]
    services: Mapping[str, ServiceConfig]
    source: Path | None = None
