"""`pool:` on a target (probes expanded per value) and a service's `fallback:`."""

from __future__ import annotations

from failover.config.describe import describe
from failover.config.types import HostPort, HttpProbeConfig, TcpProbeConfig
from tests.unit.config.helpers import base, errors_of, load, shop, target

POOL = ["192.0.2.11", "192.0.2.12", "192.0.2.13"]


def pooled(min_up: int = 2) -> dict:  # type: ignore[type-arg]
    cfg = base()
    target(cfg).update(
        values=list(POOL),
        pool={"min_up": min_up},
        probes=[
            {"type": "http", "url": "http://{value}:8080/healthz"},
            {"type": "tcp", "address": "{value}:443"},
        ],
    )
    return cfg


def test_pool_probes_are_expanded_once_per_value() -> None:
    t = load(pooled()).services["shop"].targets[0]
    assert t.pool is not None and t.pool.min_up == 2
    names = [p.name for p in t.probes]
    assert names == [f"{kind}@{v}" for v in POOL for kind in ("http", "tcp")]
    http = [p for p in t.probes if isinstance(p, HttpProbeConfig)]
    assert [p.url for p in http] == [f"http://{v}:8080/healthz" for v in POOL]
    tcp = [p for p in t.probes if isinstance(p, TcpProbeConfig)]
    assert [p.address for p in tcp] == [HostPort(v, 443) for v in POOL]
    assert t.pool.probes_of("192.0.2.12") == ("http@192.0.2.12", "tcp@192.0.2.12")
    assert t.pool.value_of("tcp@192.0.2.13") == "192.0.2.13"


def test_ipv6_values_are_bracketed_in_urls() -> None:
    cfg = pooled()
    shop(cfg)["records"][0]["type"] = "AAAA"
    target(cfg)["values"] = ["2001:db8::1", "2001:db8::2"]
    target(cfg, 1)["values"] = ["2001:db8::9"]
    t = load(cfg).services["shop"].targets[0]
    assert [p.url for p in t.probes if isinstance(p, HttpProbeConfig)] == [
        "http://[2001:db8::1]:8080/healthz",
        "http://[2001:db8::2]:8080/healthz",
    ]


def test_without_pool_nothing_changes() -> None:
    t = load(base()).services["shop"].targets[0]
    assert t.pool is None and [p.name for p in t.probes] == ["http"]


def test_pool_errors_name_their_path() -> None:
    cfg = pooled(min_up=4)
    errors = errors_of(cfg)
    assert any(
        e.startswith("services.shop.targets[0].pool.min_up: 4 is more than the 3 values")
        for e in errors
    ), errors

    cfg = pooled()
    target(cfg)["probes"][0]["url"] = "http://192.0.2.11:8080/healthz"
    (error,) = errors_of(cfg)
    assert error.startswith("services.shop.targets[0].probes[0].url: ")
    assert "has no {value}" in error

    cfg = pooled(min_up=1)
    target(cfg)["values"] = ["192.0.2.11"]
    (error,) = errors_of(cfg)
    assert error.startswith("services.shop.targets[0].pool: a pool needs at least two values")

    cfg = pooled()
    target(cfg)["pool"] = {"min_up": 0}
    assert any("pool.min_up" in e for e in errors_of(cfg))

    cfg = pooled()
    target(cfg)["pool"] = {"min_up": 1, "minup": 2}
    assert any("pool" in e and "minup" in e for e in errors_of(cfg))


def test_value_placeholder_outside_a_pool_is_refused() -> None:
    cfg = base()
    target(cfg)["probes"][0]["url"] = "http://{value}/health"
    (error,) = errors_of(cfg)
    assert error.startswith("services.shop.targets[0].probes[0].url: {value} is substituted")


def test_fallback_and_all_down_policy() -> None:
    cfg = base()
    shop(cfg)["policy"] = {"all_down": "fallback"}
    shop(cfg)["fallback"] = {"values": ["198.51.100.7"], "location": "cdn"}
    svc = load(cfg).services["shop"]
    assert svc.policy.all_down == "fallback"
    assert svc.fallback is not None and svc.fallback.values == ("198.51.100.7",)
    text = describe(load(cfg))
    assert "all targets down: fallback; fallback 198.51.100.7" in text
    assert load(base()).services["shop"].policy.all_down == "hold"


def test_fallback_errors() -> None:
    cfg = base()
    shop(cfg)["policy"] = {"all_down": "fallback"}
    (error,) = errors_of(cfg)
    assert error.startswith("services.shop.fallback: missing; policy.all_down is fallback")

    cfg = base()
    shop(cfg)["policy"] = {"all_down": "panic"}
    assert any(e.startswith("services.shop.policy.all_down: ") for e in errors_of(cfg))

    cfg = base()
    shop(cfg)["fallback"] = {"values": ["2001:db8::7"]}
    (error,) = errors_of(cfg)
    assert error.startswith("services.shop.fallback.values: no value for the service's A")

    cfg = base()
    shop(cfg)["fallback"] = {"values": ["192.0.2.2"]}
    (error,) = errors_of(cfg)
    assert "same values as target backup" in error


def test_check_config_describes_a_pool() -> None:
    text = describe(load(pooled()))
    assert "pool: publishes the UP values; UP while at least 2 of 3 are UP" in text
    assert "http@192.0.2.12" in text


def test_fallback_probes_inherit_timing_and_health() -> None:
    cfg = base()
    shop(cfg)["policy"] = {"all_down": "fallback"}
    shop(cfg)["health"] = {"rise": 4}
    shop(cfg)["fallback"] = {
        "values": ["198.51.100.7"],
        "probes": [{"type": "http", "url": "http://198.51.100.7/"}],
        "health": {"fall": 1},
    }
    fb = load(cfg).services["shop"].fallback
    assert fb is not None and [p.name for p in fb.probes] == ["http"]
    assert (fb.health.fall, fb.health.rise) == (1, 4)
