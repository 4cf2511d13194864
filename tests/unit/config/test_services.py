"""Services, records, targets and their values, the inheritance chain, and `canaries:`."""

from __future__ import annotations

import pytest

from failover.config.loader import ConfigError, parse_config
from failover.config.types import HealthConfig, PolicyConfig
from failover.model import RecordType
from tests.unit.config.helpers import base, errors_of, load, probe, record, shop, target

# --- defaults and inheritance -------------------------------------------------------------------


def test_inheritance_chain_merges_key_by_key() -> None:
    cfg = base()
    cfg["defaults"] = {
        "probe": {"interval": "10s", "timeout": "3s"},
        "health": {"fall": 4},
        "policy": {"cooldown": "1m", "failback_after": "0s"},
    }
    shop(cfg)["probe"] = {"timeout": "4s"}
    shop(cfg)["health"] = {"rise": 5}
    shop(cfg)["policy"] = {"failback": "auto"}
    target(cfg)["probe"] = {"interval": "20s"}
    target(cfg)["health"] = {"fall": 1}
    target(cfg)["probes"].append({"type": "tcp", "address": "192.0.2.1:80", "timeout": "6s"})
    svc = load(cfg).services["shop"]
    first, second = svc.targets
    assert [(p.interval, p.timeout) for p in first.probes] == [(20, 4), (20, 6)]
    assert [(p.interval, p.timeout) for p in second.probes] == [(10, 4)]
    assert first.health == HealthConfig(fall=1, rise=5)
    assert second.health == HealthConfig(fall=4, rise=5)
    assert svc.policy == PolicyConfig(failback="auto", failback_after=0, cooldown=60)


def test_probe_own_settings_can_fix_an_inherited_pair() -> None:
    cfg = base()
    shop(cfg)["probe"] = {"interval": "1s", "timeout": "1s"}
    probe(cfg).update(interval="30s", timeout="10s")
    http = load(cfg).services["shop"].targets[0].probes[0]
    assert (http.interval, http.timeout) == (30, 10)


def test_fast_interval_is_inherited_and_off_by_default() -> None:
    cfg = base()
    assert all(
        p.fast_interval is None for t in load(cfg).services["shop"].targets for p in t.probes
    )
    cfg["defaults"] = {"probe": {"interval": "2s", "timeout": "1s", "fast_interval": "200ms"}}
    target(cfg, 1)["probe"] = {"fast_interval": "100ms"}
    first, second = load(cfg).services["shop"].targets
    assert [p.fast_interval for p in first.probes] == [0.2]
    assert [p.fast_interval for p in second.probes] == [0.1]


def test_fast_interval_must_be_shorter_than_the_interval() -> None:
    cfg = base()
    probe(cfg).update(interval="1s", timeout="500ms", fast_interval="1s")
    [error] = errors_of(cfg)
    assert "services.shop.targets[0].probes[0].fast_interval: fast_interval 1s" in error
    assert "is not shorter than the interval 1s" in error and "make it shorter" in error
    cfg = base()
    cfg["defaults"] = {"probe": {"fast_interval": "2s"}}  # the default interval is 5s: fine
    probe(cfg).update(interval="2s", timeout="1s")  # ...but not for this probe
    [error] = errors_of(cfg)
    assert "probes[0].interval: fast_interval 2s (from defaults.probe.fast_interval)" in error


# --- records and values ------------------------------------------------------------------


def test_records_are_normalized() -> None:
    cfg = base()
    record(cfg).update(zone="Example.COM.", name="Shop.Example.com.", type="a", ttl=300)
    rec = load(cfg).services["shop"].records[0]
    assert (rec.zone, rec.name, rec.type, rec.ttl) == ("example.com", "shop.example.com", "A", 300)
    assert rec.type is RecordType.A
    assert rec.key.provider == "local"


def test_values_are_canonical_in_target_order() -> None:
    cfg = base()
    shop(cfg)["records"].append(dict(record(cfg), type="AAAA"))
    target(cfg)["values"] = ["2001:DB8:0::0001", "192.0.2.9", "192.0.2.1"]
    target(cfg, 1)["values"] = ["192.0.2.2", "2001:db8::2"]
    values = load(cfg).services["shop"].targets[0].values
    assert values == ("2001:db8::1", "192.0.2.9", "192.0.2.1")


def test_cname_service() -> None:
    cfg = base()
    record(cfg)["type"] = "CNAME"
    target(cfg)["values"] = ["Shop.AWS.example.net."]
    target(cfg, 1)["values"] = ["shop.ovh.example.net"]
    targets = load(cfg).services["shop"].targets
    assert [t.values for t in targets] == [("shop.aws.example.net",), ("shop.ovh.example.net",)]


def test_cname_only_service_refuses_ips() -> None:
    cfg = base()
    record(cfg)["type"] = "CNAME"
    target(cfg)["values"] = ["shop.aws.example.net", "192.0.2.1"]
    target(cfg, 1)["values"] = ["shop.ovh.example.net"]
    assert "IP addresses in a CNAME-only service" in errors_of(cfg)[0]


# --- canaries ------------------------------------------------------------------------------------

BASE = """
instance: {name: t, state_dir: /tmp/x}
providers: {lab: {type: builtin, listen: "127.0.0.1:0"}}
defaults: {probe: {interval: 3s, timeout: 1s}}
services:
  shop:
    records: [{provider: lab, zone: example.test, name: shop.example.test, type: A}]
    targets:
      - {name: a, values: [192.0.2.1], probes: [{type: tcp, address: "192.0.2.1:443"}]}
"""


def test_canaries_parse_with_inherited_timing() -> None:
    config = parse_config(
        BASE
        + "canaries:\n  - name: internet\n    location: internet\n"
        + '    probes: [{type: tcp, address: "192.0.2.53:53"}]\n'
    )
    (canary,) = config.canaries
    assert canary.name == "internet" and canary.location == "internet"
    assert canary.probes[0].interval == 3.0 and canary.probes[0].timeout == 1.0


@pytest.mark.parametrize(
    ("canaries", "expected"),
    [
        ("[{location: x, probes: [{type: tcp, address: 'h:1'}]}]", "canaries[0].name: missing"),
        ("[{name: c, location: x}]", "canaries[0].probes: missing"),
        ("[{name: c, probes: [{type: tcp, address: 'h:1'}], colour: red}]", "canaries[0].colour"),
        (
            "[{name: c, probes: [{type: tcp, address: 'h:1'}]},"
            " {name: c, probes: [{type: tcp, address: 'h:2'}]}]",
            "canaries[1].name: canary 'c' is defined twice",
        ),
        ("{name: c}", "canaries: expected a list of canaries"),
    ],
)
def test_canary_errors_name_the_path(canaries: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + f"canaries: {canaries}\n")
    assert expected in str(info.value)
