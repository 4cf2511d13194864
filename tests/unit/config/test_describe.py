"""The check-config summary: priority order, every kind described, no secret shown."""

from __future__ import annotations

from failover.config.describe import describe
from failover.config.loader import load_config
from tests.unit.config.helpers import EXAMPLE, base, load, probe


def test_describe_lists_targets_in_priority_order_without_secrets() -> None:
    cfg = base()
    probe(cfg)["url"] = "http://user:pw-secret@192.0.2.1/health?token=${TOKEN}"
    probe(cfg)["headers"] = {"Authorization": "Bearer ${TOKEN}"}
    text = describe(load(cfg, {"TOKEN": "tok-secret"}))
    assert "1. primary (primary) [aws] 192.0.2.1" in text
    assert "2. backup [ovh] 192.0.2.2" in text
    assert text.index("primary") < text.index("backup")
    assert "shop.example.com A ttl 60 at local" in text
    assert "local: builtin (built-in)" in text  # where the provider type comes from
    assert "http://192.0.2.1/health?…" in text
    assert "connect 192.0.2.2:443" in text
    assert "secret" not in text


def test_describe_example() -> None:
    text = describe(load_config(EXAMPLE, env={}))
    for name in ("shop", "api", "aws-eu-west-3", "ovh-gra", "scw-par", "local: builtin"):
        assert name in text
