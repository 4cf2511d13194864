"""Typed, frozen configuration models (docs/configuration.md).

Kept apart from the YAML loader in `loader.py` so every layer can import the shapes without
pulling in parsing. Durations are float seconds. Provider and probe sections are tagged unions on
`type`: a new probe kind adds one dataclass here and one member to the union, a new provider the
same in `provider_types.py` (re-exported here, with `scalars.py`, so imports stay one place).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from failover.config.provider_types import (
    BuiltinProviderConfig as BuiltinProviderConfig,
)
from failover.config.provider_types import (
    CloudflareProviderConfig as CloudflareProviderConfig,
)
from failover.config.provider_types import (
    HetznerProviderConfig as HetznerProviderConfig,
)
from failover.config.provider_types import (
    OvhProviderConfig as OvhProviderConfig,
)
from failover.config.provider_types import (
    PluginProviderConfig as PluginProviderConfig,
)
from failover.config.provider_types import (
    ProviderConfig as ProviderConfig,
)
from failover.config.provider_types import (
    RetryConfig as RetryConfig,
)
from failover.config.provider_types import (
    Rfc2136ProviderConfig as Rfc2136ProviderConfig,
)
from failover.config.provider_types import (
    Route53ProviderConfig as Route53ProviderConfig,
)
from failover.config.provider_types import (
    ScalewayProviderConfig as ScalewayProviderConfig,
)
from failover.config.provider_types import (
    TsigConfig as TsigConfig,
)
from failover.config.provider_types import (
    VerifyConfig as VerifyConfig,
)
from failover.config.scalars import HostPort as HostPort
from failover.config.scalars import Secret as Secret
from failover.model import RecordKey, RecordType


@dataclass(frozen=True)
class InstanceConfig:
    name: str
    location: str | None
    state_dir: Path
    resync_interval: float = 30.0  # how often the engine re-reads published records (drift)
    shutdown_timeout: float = 30.0  # SIGTERM: wait this long for in-flight changes, then abandon
    # probes in a child process (the loop keeps its core): True, False, or "auto" (when the
    # probes run often enough for it to pay, `probes.sharing.in_a_child`)
    probe_process: bool | Literal["auto"] = "auto"


@dataclass(frozen=True)
class AdminConfig:
    socket: Path
    listen: HostPort | None = None
    token_file: Path | None = None


@dataclass(frozen=True)
class MetricsConfig:
    listen: HostPort | None


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
    # Codes (200) and classes ("2xx"), as written, so messages can quote them.
    expect_status: tuple[int | str, ...] = (200,)
    body_regex: str | None = None
    body_limit: int = 64 * 1024  # bytes of the body read and searched by body_regex
    follow_redirects: bool = False
    max_redirects: int = 5
    verify_tls: bool = True
    tls_server_name: str | None = None
    ca_file: Path | None = None  # trusted instead of the system store
    client_cert: Path | None = None
    client_key: Path | None = None  # None: the key is in client_cert
    tls_min_version: Literal["1.2", "1.3"] | None = None
    fast_interval: float | None = None  # re-probe pace while the verdict changes (None: off)


@dataclass(frozen=True)
class TcpProbeConfig:
    name: str
    address: HostPort
    interval: float
    timeout: float
    type: Literal["tcp"] = "tcp"
    send: bytes | None = None  # escapes already interpreted
    expect: str | None = None  # regular expression, matched on the raw bytes read
    expect_bytes: int = 4 * 1024  # at most this many bytes are read for expect
    tls: bool = False
    tls_server_name: str | None = None
    verify_tls: bool = True
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    tls_min_version: Literal["1.2", "1.3"] | None = None
    fast_interval: float | None = None  # re-probe pace while the verdict changes (None: off)


@dataclass(frozen=True)
class DnsProbeConfig:
    """Ask `server` for `query_name`/`record_type`; expect an rcode and optionally answers.

    `expect_answers` holds canonical texts (see `probes.dns.canonical_answer`), sorted; None
    means any answer passes once the rcode matches.
    """

    name: str
    query_name: str
    server: HostPort
    interval: float
    timeout: float
    type: Literal["dns"] = "dns"
    record_type: str = "A"
    transport: Literal["udp", "tcp"] = "udp"
    recursion_desired: bool = False
    expect_rcode: str = "NOERROR"
    expect_answers: tuple[str, ...] | None = None
    expect_match: Literal["exact", "contains"] = "exact"
    fast_interval: float | None = None  # re-probe pace while the verdict changes (None: off)


@dataclass(frozen=True)
class TlsProbeConfig:
    """TLS handshake at `address`; checks chain (`verify`), host name, validity and days left."""

    name: str
    address: HostPort
    interval: float
    timeout: float
    type: Literal["tls"] = "tls"
    server_name: str | None = None  # SNI and name to match; None: the address host
    verify: bool = True
    ca_file: Path | None = None  # None: the system trust store
    warn_days: int = 14
    fast_interval: float | None = None  # re-probe pace while the verdict changes (None: off)

    @property
    def hostname(self) -> str:
        """The name the certificate must match (and, unless an IP address, the SNI sent)."""
        return self.server_name or self.address.host


ProbeConfig = HttpProbeConfig | TcpProbeConfig | DnsProbeConfig | TlsProbeConfig


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
    # every target DOWN: keep the last answer ("hold") or publish the service's `fallback`
    all_down: Literal["hold", "fallback"] = "hold"


@dataclass(frozen=True)
class PoolConfig:
    """A target whose values are judged one by one: DNS serves the UP ones (config/pools.py).

    `members` maps each value to the names of its probes (the target's probes, expanded once per
    value with `{value}` substituted), in the order of the target's values."""

    min_up: int
    members: tuple[tuple[str, tuple[str, ...]], ...]

    def probes_of(self, value: str) -> tuple[str, ...]:
        return next((names for v, names in self.members if v == value), ())

    def value_of(self, probe: str) -> str | None:
        return next((v for v, names in self.members if probe in names), None)


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # drill and maintenance windows


@dataclass(frozen=True)
class MaintenanceWindow:
    """A recurring window during which the target is drained automatically (core/drain.py)."""

    days: tuple[str, ...]  # mon..sun
    window: tuple[int, int]  # minutes after midnight: [start, end)
    timezone: str = "UTC"
    reason: str = "maintenance window"


@dataclass(frozen=True)
class TargetConfig:
    name: str
    location: str | None
    values: tuple[str, ...]
    probes: tuple[ProbeConfig, ...]
    health: HealthConfig
    pool: PoolConfig | None = None  # None: all-or-nothing, every value published together
    maintenance: tuple[MaintenanceWindow, ...] = ()  # per-target `maintenance:` windows


@dataclass(frozen=True)
class FallbackConfig:
    """What a service publishes when every target is DOWN and `policy.all_down: fallback`."""

    values: tuple[str, ...]
    location: str | None = None
    # optional: with probes, the fallback is published only while they say it is UP
    probes: tuple[ProbeConfig, ...] = ()
    health: HealthConfig = field(default_factory=HealthConfig)


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
class DrillScheduleConfig:
    """When a service may be drilled automatically (off unless `enabled`)."""

    enabled: bool = False
    days: tuple[str, ...] = ()  # mon..sun
    window: tuple[int, int] = (0, 0)  # minutes after midnight: [start, end)
    timezone: str = "UTC"
    hold: float = 300.0
    target: str | None = None


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    records: tuple[RecordConfig, ...]
    targets: tuple[TargetConfig, ...]  # priority order: the first is the primary
    policy: PolicyConfig
    rto: float | None = None  # recovery time objective (seconds); the audit checks TTLs against it
    drills: DrillScheduleConfig | None = None  # scheduled drills (drill.py)
    fallback: FallbackConfig | None = None  # published while every target is DOWN (all_down)

    def target(self, name: str) -> TargetConfig | None:
        return next((t for t in self.targets if t.name == name), None)

    @functools.cached_property
    def providers(self) -> tuple[str, ...]:
        """The providers of its records, sorted: readiness asks for every service still
        unread, and at 10,000 services building them each time took 0.2 s per call."""
        return tuple(sorted({r.provider for r in self.records}))


@dataclass(frozen=True)
class WebhookConfig:
    """An HTTP POST per event: generic JSON or a Slack-compatible message.

    The URL is a `Secret` because webhook URLs usually embed their token (Slack, Teams…);
    logs, metrics and errors name the webhook by `name` and at most the URL's scheme and host.
    """

    name: str  # the metrics label and log name; default `webhook-N` (N: its list index)
    url: Secret
    type: Literal["webhook"] = "webhook"
    format: Literal["json", "slack"] = "json"
    events: frozenset[str] | None = None  # None: every event
    timeout: float = 5.0  # per attempt
    retry: RetryConfig = field(default_factory=RetryConfig)


NotificationConfig = WebhookConfig  # a tagged union on `type`, like providers


@dataclass(frozen=True)
class CanaryConfig:
    """Something that should always be up (a public resolver, a CDN): if it fails together with
    every target, the vantage point is cut off, not the clouds (the isolation guard)."""

    name: str
    location: str | None
    probes: tuple[ProbeConfig, ...]
    health: HealthConfig


@dataclass(frozen=True)
class EtcdTlsConfig:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class EtcdConfig:
    """`coordination.etcd`: where the instances elect their leader and share views/intents."""

    endpoints: tuple[str, ...]  # every member, rotated on failure (http[s]://host:port)
    prefix: str = "/failover"
    lease_ttl: float = 10.0  # seconds; etcd grants at least 2
    timeout: float = 2.0  # per request
    tls: EtcdTlsConfig | None = None
    username: str | None = None
    password: Secret | None = None


@dataclass(frozen=True)
class CoordinationConfig:
    etcd: EtcdConfig
    # votes needed for a DOWN (or UP) verdict; None: a majority of the live instances
    quorum: int | None = None


@dataclass(frozen=True)
class Config:
    instance: InstanceConfig
    admin: AdminConfig
    metrics: MetricsConfig
    providers: Mapping[str, ProviderConfig]
    services: Mapping[str, ServiceConfig]
    source: Path | None = None
    notifications: tuple[NotificationConfig, ...] = ()
    canaries: tuple[CanaryConfig, ...] = ()
    coordination: CoordinationConfig | None = None  # None: this instance runs alone
