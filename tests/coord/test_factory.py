"""The daemon's choice of coordinator: standalone unless the file has `coordination:`."""

from __future__ import annotations

from pathlib import Path

import yaml

from failover.coord.etcd import EtcdCoordinator
from failover.coord.factory import create_coordinator
from failover.coord.standalone import StandaloneCoordinator
from failover.store import Store
from tests.unit.config.helpers import base, load


def test_standalone_without_coordination(tmp_path: Path) -> None:
    coord = create_coordinator(load(base()), Store(tmp_path))
    assert isinstance(coord, StandaloneCoordinator) and coord.instance == "test-1"


def test_etcd_with_coordination(tmp_path: Path) -> None:
    cfg = base()
    cfg["coordination"] = {"etcd": {"endpoints": ["http://127.0.0.1:2379"], "lease_ttl": "5s"}}
    config = load(yaml.safe_load(yaml.safe_dump(cfg)))
    coord = create_coordinator(config, Store(tmp_path))
    assert isinstance(coord, EtcdCoordinator) and coord.instance == "test-1"
    assert coord.config.lease_ttl == 5.0 and coord.margin == 1.0
    assert not coord.is_leader() and coord.fencing_token() == 0
