"""A small valid config and the accessors the config tests mutate it through."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover.config.loader import ConfigError, parse_config
from failover.config.types import Config

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "lab.yaml"
FULL_EXAMPLE = EXAMPLE.with_name("failover.example.yaml")

Cfg = dict[str, Any]


def base() -> Cfg:
    """A small valid config; each test mutates a fresh copy."""
    return copy.deepcopy(
        {
            "instance": {"name": "test-1", "location": "ovh", "state_dir": "/tmp/fo/state"},
            "admin": {"socket": "/tmp/fo/admin.sock"},
            "providers": {"local": {"type": "builtin", "listen": "127.0.0.1:0"}},
            "services": {
                "shop": {
                    "records": [
                        {
                            "provider": "local",
                            "zone": "example.com",
                            "name": "shop.example.com",
                            "type": "A",
                        }
                    ],
                    "targets": [
                        {
                            "name": "primary",
                            "location": "aws",
                            "values": ["192.0.2.1"],
                            "probes": [{"type": "http", "url": "http://192.0.2.1/health"}],
                        },
                        {
                            "name": "backup",
                            "location": "ovh",
                            "values": ["192.0.2.2"],
                            "probes": [{"type": "tcp", "address": "192.0.2.2:443"}],
                        },
                    ],
                }
            },
        }
    )


def load(cfg: Cfg, env: dict[str, str] | None = None) -> Config:
    return parse_config(yaml.safe_dump(cfg, sort_keys=False), env=env or {})


def errors_of(cfg: Cfg, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(cfg, env)
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def shop(cfg: Cfg) -> Cfg:
    return cfg["services"]["shop"]  # type: ignore[no-any-return]


def target(cfg: Cfg, i: int = 0) -> Cfg:
    return shop(cfg)["targets"][i]  # type: ignore[no-any-return]


def record(cfg: Cfg, i: int = 0) -> Cfg:
    return shop(cfg)["records"][i]  # type: ignore[no-any-return]


def probe(cfg: Cfg, t: int = 0, p: int = 0) -> Cfg:
    return target(cfg, t)["probes"][p]  # type: ignore[no-any-return]


def second_service(cfg: Cfg) -> Cfg:
    """A copy of shop named api, publishing api.example.com."""
    api: Cfg = copy.deepcopy(shop(cfg))
    api["records"][0]["name"] = "api.example.com"
    cfg["services"]["api"] = api
    return api
