"""Typed, frozen models of the `providers:` section: a tagged union on `type`, one dataclass
per built-in provider plus the plugin one, and the verify and retry policies they share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from failover.config.scalars import HostPort, Secret


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
    zone_transfer: bool = True  # read many names of a zone in one AXFR when the server allows it


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


def call_budget(config: ProviderConfig) -> float:
    """The longest one provider call may take with its retries: the per-attempt timeout plus
    the retry deadline. Reads, applies and a command's read all bound a call by it, and the
    watchdog counts the decision loop as stuck only beyond it."""
    return config.timeout + config.retry.deadline
