"""Hetzner Cloud DNS (`type: hetzner`): the provider in `provider.py`, the pure API rules
(names, values, error kinds) in `wire.py`."""

from failover.providers.hetzner.provider import ENV_TOKEN, HetznerProvider, create

__all__ = ["ENV_TOKEN", "HetznerProvider", "create"]
