"""A local fault (probes failing for a reason on this host) holds automatic decisions like the
isolation guard: the core only reads it from the snapshot, time stays a parameter."""

from __future__ import annotations

from failover.config.types import ServiceConfig
from failover.core.decide import (
    ALARM_LOCAL_FAULT,
    Action,
    ServiceState,
    Snapshot,
    decide,
)
from failover.core.health import TargetHealth, local_fault_holds
from failover.core.published import Published
from failover.model import Health

NOW = 100_000.0


def health(**states: Health) -> dict[str, TargetHealth]:
    return {name: TargetHealth(h, NOW - 3600, None, "probe tcp") for name, h in states.items()}


def on(target: str) -> Published:
    return Published("target", target=target, matches=(target,))


def test_a_local_fault_holds_a_switch_the_targets_would_justify(shop: ServiceConfig) -> None:
    down = health(aws=Health.DOWN, ovh=Health.UP, scw=Health.UP)
    fault = "shop/aws/tcp: local fault (emfile): too many open files"
    held = decide(shop, ServiceState(), Snapshot(NOW, 0.0, down, on("aws"), local_fault=fault))
    assert held.action is Action.NONE
    assert held.alarms == {ALARM_LOCAL_FAULT}
    assert held.reason.startswith("local fault: shop/aws/tcp: local fault (emfile)")
    free = decide(shop, ServiceState(), Snapshot(NOW, 0.0, down, on("aws")))
    assert (free.action, free.target) == (Action.SWITCH, "ovh")


def test_the_hold_lasts_its_span_after_the_last_fault() -> None:
    assert not local_fault_holds(None, NOW, 2.0)
    assert local_fault_holds(NOW - 1.9, NOW, 2.0)
    assert not local_fault_holds(NOW - 2.0, NOW, 2.0)
