"""Which provider types exist: the entry-point group `failover.providers`, read from package
metadata only (no plugin is imported to be listed or to parse a config).

Built-in and third-party providers register the same way, in their `pyproject.toml`:

    [project.entry-points."failover.providers"]
    mydns = "mydns_failover.provider"              # a module with `create(config, zones, store)`
    other = "mydns_failover.other:make_provider"   # or the factory itself

`BUILTIN` is the same table for failover's own providers, used when the installed metadata
does not carry them (a source checkout run with PYTHONPATH, an older editable install). A
third-party package cannot take a built-in type over: its entry is listed as shadowed and not
used. Kept free of any other failover import, so both the config parser and the provider
registry can use it.
"""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass

GROUP = "failover.providers"
DIST = "failover"

BUILTIN: dict[str, str] = {
    "builtin": "failover.providers.builtin",
    "hetzner": "failover.providers.hetzner",
    "cloudflare": "failover.providers.cloudflare",
    "scaleway": "failover.providers.scaleway",
    "rfc2136": "failover.providers.rfc2136",
    "ovh": "failover.providers.ovh",
    "route53": "failover.providers.route53",
}
"""type -> the module of failover whose `create(config, zones, store)` builds it."""


@dataclass(frozen=True)
class ProviderPlugin:
    """One registered provider type and where it comes from."""

    type: str
    target: str  # "module" or "module:attribute", as the entry point says
    distribution: str  # the package that registered it ("failover" for built-ins)
    version: str
    builtin: bool
    shadowed_by: str | None = None  # a third-party entry refused because the type is built-in

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def origin(self) -> str:
        """How `check-config` names it: "built-in" or "plugin NAME VERSION"."""
        return "built-in" if self.builtin else f"plugin {self.distribution} {self.version}"


def _version() -> str:
    try:
        return md.version(DIST)
    except md.PackageNotFoundError:
        return "source"


def discover() -> tuple[dict[str, ProviderPlugin], list[ProviderPlugin]]:
    """(usable providers by type, refused entries). Built-ins first: metadata of failover
    itself, then `BUILTIN` for what it lacks; a third-party entry for a built-in type, or a
    second one for a type already taken, is refused."""
    found: dict[str, ProviderPlugin] = {}
    refused: list[ProviderPlugin] = []
    version = _version()
    for kind, module in BUILTIN.items():
        found[kind] = ProviderPlugin(kind, module, DIST, version, builtin=True)
    for entry in sorted(md.entry_points(group=GROUP), key=lambda e: (e.name, e.value)):
        dist = entry.dist
        dist_name = (dist.metadata["Name"] if dist is not None else None) or "unknown"
        dist_version = (dist.version if dist is not None else None) or "unknown"
        if dist_name == DIST:
            if entry.name in found:
                continue  # our own registration: the same as BUILTIN, from metadata
            found[entry.name] = ProviderPlugin(entry.name, entry.value, DIST, version, True)
            continue
        plugin = ProviderPlugin(entry.name, entry.value, dist_name, dist_version, builtin=False)
        taken = found.get(entry.name)
        if taken is not None:
            refused.append(_shadowed(plugin, taken))
        else:
            found[entry.name] = plugin
    return found, refused


def _shadowed(plugin: ProviderPlugin, by: ProviderPlugin) -> ProviderPlugin:
    return ProviderPlugin(
        plugin.type,
        plugin.target,
        plugin.distribution,
        plugin.version,
        builtin=False,
        shadowed_by=f"{by.distribution} {by.version}",
    )


def lookup(kind: str) -> ProviderPlugin | None:
    return discover()[0].get(kind)
