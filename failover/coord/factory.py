"""Which coordinator a configuration asks for: etcd with `coordination:`, else standalone."""

from __future__ import annotations

from failover.config.types import Config
from failover.coord.base import Coordinator
from failover.coord.etcd import EtcdCoordinator
from failover.coord.standalone import StandaloneCoordinator
from failover.store import Store


def create_coordinator(config: Config, store: Store) -> Coordinator:
    name = config.instance.name
    if config.coordination is None:
        return StandaloneCoordinator(name, store)
    return EtcdCoordinator(name, store, config.coordination.etcd)
