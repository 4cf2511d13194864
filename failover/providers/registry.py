"""Provider `type` -> constructor. A new provider is one file plus one line here.

Each provider module is imported only when a provider of its type is configured: boto3 and
botocore alone cost ~40 MB of RSS and most of the start-up time, for nothing in a deployment
that does not use Route 53.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

from failover.config.types import ProviderConfig
from failover.providers.base import Provider
from failover.store import Store

Factory = Callable[[ProviderConfig, Iterable[str], Store], Provider]

FACTORIES: dict[str, str] = {
    "builtin": "failover.providers.builtin",
    "scaleway": "failover.providers.scaleway",
    "rfc2136": "failover.providers.rfc2136",
    "ovh": "failover.providers.ovh",
    "route53": "failover.providers.route53",
    "cloudflare": "failover.providers.cloudflare",
}
"""type -> the module whose `create(config, zones, store)` builds it."""


def factory(kind: str) -> Factory:
    module = importlib.import_module(FACTORIES[kind])
    create: Factory = module.create
    return create


def create_provider(config: ProviderConfig, zones: Iterable[str], store: Store) -> Provider:
    return factory(config.type)(config, zones, store)
