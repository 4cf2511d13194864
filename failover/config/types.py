"""Typed, frozen configuration models (SPEC §3).

Kept apart from the YAML loader in `loader.py` so every layer can import the shapes without
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
    """A credential read from `${ENV}` or `${file:…}`; it never prints its value.

    `clear_text` records that the file held the value itself rather than a `${…}` reference,
    so `failover audit` can flag it; it is not part of equality.
    """

    __slots__ = ("_value", "clear_text")

    def __init__(self, value: str, *, clear_text: bool = False) -> None:
        self._value = value
        self.clear_text = clear_text

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
    shutdown_timeout: float = 30.0  # SIGTERM: wait this long for in-flight changes, then abandon


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
    # "api": read the change back through the provider's API, for records no authoritative
    # query can check (Cloudflare-proxied ones answer with Cloudflare's own addresses)
    method: Literal["dns", "api"] = "dns"


@dataclass(frozen=True)
class RetryConfig:
    """Retry policy of provider calls: exponential backoff with jitter under a deadline."""

    attempts: int = 5
    initial: float = 0.5
    max_delay: float = 10.0
    deadline: float = 60.0


@dataclass(frozen=True)
class BuiltinProviderConfig:
    """An authoritative DNS server inside the daemon: demo, labs and tests, not production."""

    name: str
    listen: HostPort
    type: Literal["builtin"] = "builtin"
    location: str | None = None
    timeout: float = 10.0
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)


@dataclass(frozen=True)
class Route53ProviderConfig:
    """Amazon Route 53 through boto3; credentials from the standard AWS chain by default."""

    name: str
    type: Literal["route53"] = "route53"
    location: str | None = "aws"
    timeout: float = 10.0
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    profile: str | None = None
    region: str | None = None
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    session_token: Secret | None = None
    endpoint_url: str | None = None
    hosted_zone_ids: Mapping[str, str] = field(default_factory=dict)  # zone -> id
    max_concurrency: int = 4
    change_timeout: float = 120.0  # GetChange polling deadline (PENDING -> INSYNC)
    requests_per_second: int = 5  # Route 53's API limit per account: calls are paced to it


@dataclass(frozen=True)
class OvhProviderConfig:
    """OVHcloud through the official `ovh` package: application keys or OAuth2 client.

    With no credential keys, python-ovh's own conventions apply (`OVH_*` environment,
    `ovh.conf`).
    """

    name: str
    type: Literal["ovh"] = "ovh"
    location: str | None = "ovh"
    timeout: float = 10.0
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    endpoint: str = "ovh-eu"  # an endpoint name (ovh-eu, ovh-ca, ovh-us…) or a base URL
    application_key: Secret | None = None
    application_secret: Secret | None = None
    consumer_key: Secret | None = None
    client_id: Secret | None = None
    client_secret: Secret | None = None
    max_concurrency: int = 4
    rate_limit: float = 20.0  # API requests per second
    change_timeout: float = 120.0  # waiting for the zone's deployment status after a refresh


@dataclass(frozen=True)
class ScalewayProviderConfig:
    """Scaleway Domains and DNS v2beta1 over plain HTTP (`X-Auth-Token`)."""

    name: str
    type: Literal["scaleway"] = "scaleway"
    location: str | None = "scaleway"
    timeout: float = 10.0
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    secret_key: Secret | None = None  # None: $SCW_SECRET_KEY when the daemon starts
    api_url: str = "https://api.scaleway.com"
    project_id: str | None = None
    page_size: int = 100
    max_concurrency: int = 4
    change_timeout: float = 300.0  # waiting for the zone to be `active` again after a change


@dataclass(frozen=True)
class HetznerProviderConfig:
    """Hetzner Cloud DNS (zones and RRSets of the Cloud API) through the official `hcloud` SDK."""

    name: str
    type: Literal["hetzner"] = "hetzner"
    location: str | None = "hetzner"
    timeout: float = 10.0
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    token: Secret | None = None  # None: $HCLOUD_TOKEN when the daemon starts
    api_endpoint: str = "https://api.hetzner.cloud/v1"
    max_concurrency: int = 4  # SDK calls in flight (each holds a thread)
    change_timeout: float = 120.0  # waiting for actions to succeed and the zone to be `ok`


@dataclass(frozen=True)
class CloudflareProviderConfig:
    """Cloudflare DNS through the official `cloudflare` SDK's async client (API token)."""

    name: str
    type: Literal["cloudflare"] = "cloudflare"
    location: str | None = "cloudflare"
    timeout: float = 10.0
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    api_token: Secret | None = None  # None: $CLOUDFLARE_API_TOKEN when the daemon starts
    base_url: str = "https://api.cloudflare.com/client/v4"
    batch_size: int = 200  # records per /batch call: 200 on the Free plan, 3,500 on paid ones
    page_size: int = 100  # records per page when listing
    # names whose records are published proxied (orange cloud); True: all of this provider's
    proxied: bool | frozenset[str] = False
    max_concurrency: int = 4  # zones written in parallel


@dataclass(frozen=True)
class PluginProviderConfig:
    """A provider from a third-party package (entry point group `failover.providers`).

    The keys every provider takes are parsed here; the others go to the plugin untouched as
    `options`, except that every `${…}` value arrives as a `Secret` so it never prints."""

    name: str
    type: str
    location: str | None = None
    timeout: float = 10.0
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    options: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class TsigConfig:
    name: str
    secret: Secret
    algorithm: str = "hmac-sha256"


@dataclass(frozen=True)
class Rfc2136ProviderConfig:
    """Any RFC 2136 server (BIND, Knot, PowerDNS) with TSIG-signed UPDATEs."""

    name: str
    server: str
    type: Literal["rfc2136"] = "rfc2136"
    location: str | None = None
    timeout: float = 10.0
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    port: int = 53
    tsig: TsigConfig | None = None
    transport: Literal["tcp", "udp"] = "tcp"  # tcp falls back to udp when tcp is refused
    max_concurrency: int = 4  # zones updated in parallel


ProviderConfig = (
    BuiltinProviderConfig
    | Route53ProviderConfig
    | OvhProviderConfig
    | ScalewayProviderConfig
    | Rfc2136ProviderConfig
    | HetznerProviderConfig
    | CloudflareProviderConfig
    | PluginProviderConfig
)


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
    every target, the vantage point is cut off, not the clouds (SPEC §4 isolation guard)."""

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
