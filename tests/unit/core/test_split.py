"""split_answers: a record set whose providers disagree, one of them on a DOWN target."""

from __future__ import annotations

from failover.core.health import TargetHealth
from failover.core.split import split_answers
from failover.model import Health
from tests.unit.core.conftest import build_service, records_for

SHOP = build_service()  # shop.example.com A at ovh and at route53


def health(**states: Health) -> dict[str, TargetHealth]:
    return {name: TargetHealth(h, 0.0, None, "") for name, h in states.items()}


def half_switched() -> dict:  # type: ignore[type-arg]
    old, new = records_for(SHOP, "aws"), records_for(SHOP, "ovh")
    return {k: (new[k] if k.provider == "ovh" else old[k]) for k in old}


def test_the_provider_left_on_a_down_target_is_named() -> None:
    split = split_answers(SHOP, half_switched(), health(aws=Health.DOWN, ovh=Health.UP))
    assert list(split) == ["route53"]
    assert split["route53"].startswith("route53 serves aws (DOWN) for shop.example.com/A")
    assert "ovh serves ovh" in split["route53"]


def test_no_split_when_the_old_target_is_up_or_unknown() -> None:
    assert split_answers(SHOP, half_switched(), health(aws=Health.UP, ovh=Health.UP)) == {}
    assert split_answers(SHOP, half_switched(), health(ovh=Health.UP)) == {}


def test_no_split_when_the_providers_agree_or_nothing_is_read() -> None:
    down = health(aws=Health.DOWN, ovh=Health.UP)
    assert split_answers(SHOP, records_for(SHOP, "aws"), down) == {}
    assert split_answers(SHOP, None, down) == {}
    one = {k: v for k, v in half_switched().items() if k.provider == "ovh"}
    assert split_answers(SHOP, one, down) == {}  # route53 not read yet


def test_an_absent_record_at_one_provider_names_the_one_on_the_down_target() -> None:
    current = {k: (None if k.provider == "ovh" else v) for k, v in half_switched().items()}
    split = split_answers(SHOP, current, health(aws=Health.DOWN))
    assert list(split) == ["route53"] and "ovh serves nothing" in split["route53"]
