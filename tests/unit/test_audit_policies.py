"""`failover audit` findings about pools and the all-down fallback (audit/policies.py)."""

from __future__ import annotations

from failover.audit import Severity
from failover.audit.checks import config_findings
from tests.unit.test_audit import base, found, load, shop


def pooled(min_up: int) -> dict:  # type: ignore[type-arg]
    cfg = base()
    shop(cfg)["targets"][0].update(
        values=["192.0.2.11", "192.0.2.12"],
        pool={"min_up": min_up},
        probes=[{"type": "http", "url": "http://{value}/healthz"}],
    )
    return cfg


def test_a_pool_whose_min_up_is_its_size_is_flagged() -> None:
    subject = "services.shop.targets[0].pool.min_up"
    assert ("pool-min-up-is-size", subject, Severity.WARNING) in found(
        config_findings(load(pooled(2)))
    )
    near_miss = found(config_findings(load(pooled(1))))
    assert not any(check == "pool-min-up-is-size" for check, _, _ in near_miss)


def test_a_fallback_in_the_primarys_location_is_flagged() -> None:
    cfg = base()
    shop(cfg)["policy"] = {"all_down": "fallback"}
    shop(cfg)["fallback"] = {"values": ["198.51.100.7"], "location": "aws"}
    got = found(config_findings(load(cfg)))
    assert ("fallback-in-primary-location", "services.shop.fallback", Severity.WARNING) in got
    shop(cfg)["fallback"]["location"] = "cdn"
    got = found(config_findings(load(cfg)))
    assert not any(c.startswith("fallback-") for c, _, _ in got)


def test_a_fallback_pointing_at_a_target_or_never_used() -> None:
    cfg = base()
    shop(cfg)["fallback"] = {"values": ["192.0.2.1", "198.51.100.7"]}
    got = found(config_findings(load(cfg)))
    assert ("fallback-shares-target-values", "services.shop.fallback", Severity.WARNING) in got
    assert ("fallback-unused", "services.shop.fallback", Severity.INFO) in got
