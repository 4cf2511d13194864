"""The fallback's health with several instances: part of every view, decided on the quorum of
the views that judge it, the leader's own judgement standing when no other view does."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from failover.coord.base import Health as ViewHealth
from failover.coord.base import View
from failover.core.health import TargetHealth
from failover.core.values import FALLBACK
from failover.engine.vantage import Vantage
from failover.model import Health

UP = TargetHealth(Health.UP, 1.0, None, "probe http up")
DOWN = TargetHealth(Health.DOWN, 1.0, 1.0, "probe http: connection refused")


def vantage(views: dict[str, View], *, coordinated: bool = True, quorum: int | None = None) -> Any:
    coordination = SimpleNamespace(quorum=quorum) if coordinated else None
    ctx = SimpleNamespace(
        config=SimpleNamespace(
            coordination=coordination, instance=SimpleNamespace(name="a", location="x")
        ),
        coord=SimpleNamespace(views=lambda: views),
        services={},
    )
    return Vantage(cast(Any, ctx), cast(Any, SimpleNamespace(isolated=False)))


def view(name: str, fallback: ViewHealth | None, isolated: bool = False) -> View:
    targets = {"shop": {"paris": "down"} | ({FALLBACK: fallback} if fallback else {})}
    return View(name, "y", isolated, 0.0, targets)


def service(fallback: TargetHealth | None) -> Any:
    return SimpleNamespace(name="shop", fallback_health=fallback)


def test_alone_or_without_probes_the_own_judgement_is_the_decision() -> None:
    assert vantage({}, coordinated=False).fallback(service(DOWN)) is DOWN
    assert vantage({"b": view("b", "up")}).fallback(service(None)) is None


def test_the_quorum_outvotes_one_vantage_points_blip() -> None:
    others = {"b": view("b", "up"), "c": view("c", "up")}
    decided = vantage(others).fallback(service(DOWN))  # only this instance sees it DOWN
    assert decided.health is Health.UP
    assert "quorum 2: 2 of 3 vantage points see it UP" in decided.reason
    # ...and one instance alone seeing it UP does not publish it
    alone_up = vantage({"b": view("b", "down"), "c": view("c", "down")}).fallback(service(UP))
    assert alone_up.health is Health.DOWN


def test_views_without_a_fallback_entry_do_not_count() -> None:
    """An older instance (no `(fallback)` in its view) during an upgrade: the leader's own
    judgement stands, as before; a mixed cluster counts only the views that judge it."""
    assert vantage({"b": view("b", None), "c": view("c", None)}).fallback(service(DOWN)) is DOWN
    mixed = vantage({"b": view("b", "up"), "c": view("c", None)}).fallback(service(DOWN))
    assert mixed.health is Health.UNKNOWN  # 1 UP, 1 DOWN of 2 voters: no quorum of 2


def test_the_own_view_carries_the_fallback() -> None:
    v = vantage({})
    v.ctx.services = {
        "shop": SimpleNamespace(
            targets={"paris": DOWN},
            config=SimpleNamespace(targets=()),
            members={},
            fallback_health=UP,
        ),
        "api": SimpleNamespace(
            targets={"paris": UP},
            config=SimpleNamespace(targets=()),
            members={},
            fallback_health=None,
        ),
    }
    targets = v.own_view().targets
    assert targets["shop"] == {"paris": "down", FALLBACK: "up"}
    assert targets["api"] == {"paris": "up"}
