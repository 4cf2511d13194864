"""Provider `type` -> the factory that builds it, for built-in and third-party providers alike.

Types are registered under the entry-point group `failover.providers` (`failover.plugins`
reads the metadata); a module is imported only when a provider of its type is configured:
boto3 and botocore alone cost ~40 MB of RSS and most of the start-up time, for nothing in a
deployment that does not use Route 53. The factory contract is in docs/providers.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

from failover.config.types import ProviderConfig
from failover.plugins import BUILTIN, ProviderPlugin, lookup
from failover.providers.base import Provider, ProviderError
from failover.store import Store

Factory = Callable[[ProviderConfig, Iterable[str], Store], Provider]

FACTORIES = BUILTIN
"""The built-in table (type -> module), kept under its old name; new entries go to BUILTIN."""


def load(plugin: ProviderPlugin) -> Factory:
    """The factory an entry point names: `module` (its `create`) or `module:attribute`."""
    module_name, _, attribute = plugin.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = (
            f"install its extra: pip install 'failover[{plugin.type}]'"
            if plugin.builtin
            else f"reinstall {plugin.distribution}"
        )
        raise ProviderError(
            f"provider type {plugin.type}: cannot import {module_name} ({exc}); {hint}",
            kind="config",
        ) from None
    found: object = module
    for part in (attribute or "create").split("."):
        found = getattr(found, part, None)
        if found is None:
            raise ProviderError(
                f"provider type {plugin.type}: {plugin.target} has no "
                f"{attribute or 'create'} factory ({plugin.origin})",
                kind="config",
            )
    if not callable(found):
        raise ProviderError(f"provider type {plugin.type}: {plugin.target} is not callable")
    create: Factory = found
    return create


def factory(kind: str) -> Factory:
    plugin = lookup(kind)
    if plugin is None:
        raise ProviderError(
            f"no provider of type {kind!r} is installed (see `failover providers`)", kind="config"
        )
    return load(plugin)


def create_provider(config: ProviderConfig, zones: Iterable[str], store: Store) -> Provider:
    return factory(config.type)(config, zones, store)
