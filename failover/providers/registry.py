"""Provider `type` -> constructor. A new provider is one file plus one line here."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from failover.config.types import BuiltinProviderConfig, ProviderConfig
from failover.providers import ovh, rfc2136, route53, scaleway
from failover.providers.base import Provider
from failover.providers.builtin import BuiltinProvider
from failover.store import Store

Factory = Callable[[ProviderConfig, Iterable[str], Store], Provider]


def _builtin(config: ProviderConfig, zones: Iterable[str], store: Store) -> Provider:
    assert isinstance(config, BuiltinProviderConfig)
    return BuiltinProvider(config, zones, store)


FACTORIES: dict[str, Factory] = {"builtin": _builtin}
FACTORIES["scaleway"] = scaleway.create
FACTORIES["rfc2136"] = rfc2136.create
FACTORIES["ovh"] = ovh.create
FACTORIES["route53"] = route53.create


def create_provider(config: ProviderConfig, zones: Iterable[str], store: Store) -> Provider:
    return FACTORIES[config.type](config, zones, store)
