"""Opening and closing the daemon's DNS providers, at start-up, on a reload and at shutdown.

What a provider's configuration cannot do (a plugin's bad option, a missing SDK or credential)
is a configuration error naming it, not a crash; a provider stuck on a hung API holds up
neither a shutdown nor a reload for more than `CLOSE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

from failover.config.loader import ConfigError
from failover.config.types import Config
from failover.logs import fields
from failover.metrics import Metrics
from failover.providers.base import Provider, ProviderError
from failover.providers.registry import create_provider
from failover.store import Store

log = logging.getLogger("failover.daemon")

CLOSE_TIMEOUT = 10.0  # each provider's aclose at shutdown and reload


class ProviderLife:
    """Builds, starts and closes providers for one daemon (its state dir and metrics)."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics

    async def open(self, name: str, config: Config, zones: Mapping[str, set[str]]) -> Provider:
        """Build and start one provider; ConfigError when its configuration cannot work."""
        try:
            provider = create_provider(config.providers[name], zones[name], self.store)
            provider.on_error = self._error_counter(name)
            await provider.start()
        except ProviderError as exc:
            if exc.kind in ("config", "auth"):
                raise ConfigError([f"providers.{name}: {exc}"]) from None
            raise
        return provider

    async def close(self, name: str, provider: Provider) -> None:
        """Close within CLOSE_TIMEOUT (its worker threads end by their own request timeouts)."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await provider.aclose()
        except TimeoutError:
            log.warning(
                "provider %s did not close within %gs; abandoning it",
                name,
                CLOSE_TIMEOUT,
                extra=fields(provider=name),
            )
        except Exception as exc:
            log.warning(
                "provider %s: error while closing: %s", name, exc, extra=fields(provider=name)
            )

    async def reopen_builtin(
        self,
        names: Iterable[str],
        freed: list[str],
        config: Config,
        zones: Mapping[str, set[str]],
        opened: dict[str, Provider],
        running: Mapping[str, Provider],
    ) -> None:
        """Builtin servers: close the ones being replaced (`freed`, from `running`), then open
        the new ones into `opened`; on failure the old ones listen again (same objects, so the
        engine never notices)."""
        for name in freed:
            await self.close(name, running[name])
        try:
            for name in names:
                opened[name] = await self.open(name, config, zones)
        except Exception:
            for name in freed:
                try:
                    await running[name].start()
                except Exception as exc:
                    log.error("builtin provider %s cannot listen again: %s", name, exc)
            raise

    def _error_counter(self, provider: str) -> Callable[[str], None]:
        def count(kind: str) -> None:
            self.metrics.provider_errors.labels(provider, kind).inc()

        return count
