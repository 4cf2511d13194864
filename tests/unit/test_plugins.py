"""Provider types from entry points (`failover.plugins`), their factories (registry) and the
config of a plugin provider: options passed through, `${…}` values as Secrets."""

from __future__ import annotations

import dataclasses
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.config.loader import ConfigError
from failover.config.parse import Section
from failover.config.providers import parse_providers
from failover.config.types import PluginProviderConfig, Secret
from failover.plugins import BUILTIN, discover
from failover.providers.base import ProviderError
from failover.providers.registry import factory, load
from tests.support import REPO


def install(tmp: Path, name: str, version: str, entries: dict[str, str]) -> None:
    """A distribution's metadata, as pip leaves it, on sys.path."""
    info = tmp / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    points = "".join(f"{k} = {v}\n" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[failover.providers]\n{points}")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("acme_dns", None)


def test_builtins_are_registered_in_pyproject_as_in_the_fallback_table() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["failover.providers"] == BUILTIN


def test_a_plugin_is_found_and_cannot_take_a_builtin_type_over(site: Path) -> None:
    install(site, "acme-dns", "1.2.0", {"acme": "acme_dns:make", "route53": "acme_dns"})
    found, refused = discover()
    assert found["acme"].distribution == "acme-dns" and found["acme"].version == "1.2.0"
    assert found["acme"].module == "acme_dns" and found["acme"].origin == "plugin acme-dns 1.2.0"
    assert found["route53"].builtin and found["route53"].target == BUILTIN["route53"]
    assert [(r.type, r.distribution, r.shadowed_by is not None) for r in refused] == [
        ("route53", "acme-dns", True)
    ]


def test_factories_load_a_module_or_an_attribute_with_clear_errors(site: Path) -> None:
    install(site, "acme-dns", "1.2.0", {"acme": "acme_dns:make", "gone": "acme_gone"})
    (site / "acme_dns.py").write_text("def make(config, zones, store):\n    return 'made'\n")
    assert factory("acme")(None, [], None) == "made"  # type: ignore[arg-type]
    with pytest.raises(ProviderError) as raised:
        factory("gone")
    assert raised.value.kind == "config" and "reinstall acme-dns" in str(raised.value)
    with pytest.raises(ProviderError) as raised:
        factory("nope")
    assert "failover providers" in str(raised.value)
    broken = dataclasses.replace(discover()[0]["acme"], target="acme_dns:missing")
    with pytest.raises(ProviderError, match="no missing factory"):
        load(broken)


def parse(node: dict[str, object]) -> tuple[dict[str, object], list[str]]:
    errors: list[str] = []
    top = Section(errors, {"providers": node}, "")
    providers, _ = parse_providers(top)
    return dict(providers), errors


def test_a_plugin_providers_keys_pass_through_as_options(site: Path) -> None:
    from failover.config.parse import Interpolated

    install(site, "acme-dns", "1.2.0", {"acme": "acme_dns"})
    providers, errors = parse(
        {
            "a": {
                "type": "acme",
                "location": "acme-cloud",
                "timeout": "3s",
                "endpoint": "https://api.acme.test",
                "token": Interpolated("s3cr3t", "${ACME_TOKEN}"),
                "zones": {"example.test": 42},
            }
        }
    )
    assert errors == []
    config = providers["a"]
    assert isinstance(config, PluginProviderConfig)
    assert (config.type, config.location, config.timeout) == ("acme", "acme-cloud", 3.0)
    assert config.options == {
        "endpoint": "https://api.acme.test",
        "token": Secret("s3cr3t"),
        "zones": {"example.test": 42},
    }
    assert "s3cr3t" not in repr(config)


def test_an_unknown_type_names_the_installed_ones(site: Path) -> None:
    install(site, "acme-dns", "1.2.0", {"acme": "acme_dns"})
    _, errors = parse({"a": {"type": "acmee"}})
    assert len(errors) == 1 and "acme" in errors[0] and "hetzner" in errors[0]
    assert ConfigError(errors)  # the loader reports them all together
