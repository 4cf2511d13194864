"""A service's phase changes only through its transitions, and each lands where it should."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from failover.core.decide import ServiceState
from failover.model import Change, Phase, RecordSet
from failover.runtime import ServiceRuntime
from tests.unit.core.conftest import build_service, records_for

SHOP = build_service()


def read_all(rt: ServiceRuntime, target: str = "aws") -> None:
    served = records_for(SHOP, target)
    for provider in {r.provider for r in SHOP.records}:
        rt.records_read(provider, served)


async def done(result: str = "ok") -> dict[str, Any]:
    return {"result": result}


def begin(rt: ServiceRuntime, target: str, *, retry: bool = False) -> tuple[str | None, str | None]:
    seen: list[tuple[str | None, str | None]] = []

    def start(restore: tuple[str | None, str | None]) -> asyncio.Task[dict[str, Any]]:
        seen.append(restore)
        return asyncio.create_task(done())

    rt.begin_change(target, rt.pending_from if retry else rt.published.target, start)
    return seen[0]


def test_starting_until_every_provider_answered() -> None:
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    assert rt.phase is Phase.STARTING and rt.published.kind == "unknown"
    rt.records_read("ovh", records_for(SHOP, "aws"))
    assert rt.phase is Phase.STARTING and rt.current is None  # route53 not read yet
    rt.records_read("route53", records_for(SHOP, "aws"))
    assert rt.phase is Phase.STEADY and rt.published.target == "aws"


def test_a_failed_first_read_backs_off_and_stays_starting() -> None:
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    rt.read_failed("ovh", "ovh: read failed: timeout", now=100.0)
    assert rt.phase is Phase.STARTING
    assert rt.retry_at == 100.5 and rt.read_error == "ovh: read failed: timeout"
    read_all(rt)
    assert rt.phase is Phase.STEADY and rt.read_error == ""


async def test_switch_accepted_everywhere_confirms_then_settles() -> None:
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    read_all(rt)
    begin(rt, "ovh")
    assert rt.phase is Phase.SWITCHING and rt.busy and rt.pending == "ovh"
    assert rt.pending_from == "aws"
    rt.change_applied(confirming=True)
    assert rt.phase is Phase.CONFIRMING and rt.pending is None
    rt.change_ended()
    assert rt.phase is Phase.CONFIRMING and rt.inflight is None
    rt.verification_ended(None, {}, 0.0)
    assert rt.phase is Phase.STEADY


async def test_partial_switch_retries_with_backoff_then_completes() -> None:
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    read_all(rt)
    begin(rt, "ovh")
    rt.change_failed("route53: throttled", 10.0, fresh_backoff=True)
    rt.change_ended()
    assert rt.phase is Phase.RETRYING and rt.pending == "ovh"
    assert rt.detail == "route53: throttled" and rt.last_error == "route53: throttled"
    assert not rt.retry_due(10.4) and rt.retry_due(10.5)
    rt.nothing_wanted()  # the decision holds: the pending change is still owed
    assert rt.phase is Phase.RETRYING
    assert rt.published.target == "ovh"  # all records still on aws: the change is owed
    begin(rt, "ovh", retry=True)  # as Switcher.retry does
    assert rt.pending_from == "aws"  # a retry keeps where the change came from
    rt.change_failed("route53: throttled", 11.0)
    assert rt.retry_at == 12.0  # second failure in a row: the backoff doubles
    rt.change_applied(confirming=False)
    assert rt.phase is Phase.STEADY and rt.last_error == "" and rt.failures == 0


async def test_a_switch_no_provider_took_restores_what_was_pending() -> None:
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    read_all(rt)
    restore = begin(rt, "ovh")
    assert restore == (None, None)
    rt.change_failed("ovh: down; route53: down", 5.0, restore=restore)
    rt.change_ended()
    assert rt.phase is Phase.RETRYING and rt.pending is None and rt.retry_at == 5.5
    rt.nothing_wanted()  # no longer wanted (e.g. aws came back): steady, backoff kept
    assert rt.phase is Phase.STEADY and rt.retry_at == 5.5


def test_refusals_and_dry_runs_are_reported_once_and_clear() -> None:
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    read_all(rt)
    assert rt.refuse("drift: x") is True
    assert rt.refuse("drift: x") is False  # the same refusal: not journalled again
    assert rt.phase is Phase.REFUSED and rt.detail == "drift: x"
    assert rt.hold_dry_run("a -> b") is True and rt.phase is Phase.DRY_RUN
    assert rt.hold_dry_run("a -> b") is False
    rt.nothing_wanted()
    assert rt.phase is Phase.STEADY
    assert rt.refuse("drift: x") is True  # a new episode after it cleared


async def test_a_drill_holds_between_its_switches() -> None:
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    read_all(rt)
    rt.start_drill("ovh")
    assert rt.phase is Phase.DRILLING
    begin(rt, "ovh")
    assert rt.phase is Phase.SWITCHING
    rt.change_applied(confirming=True)
    rt.verification_ended(None, {}, 0.0)
    assert rt.phase is Phase.DRILLING  # back to holding, not steady
    rt.end_drill()
    assert rt.phase is Phase.STEADY and rt.drill is None


async def test_a_cancelled_change_does_not_stay_switching() -> None:
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    read_all(rt)
    begin(rt, "ovh")
    rt.change_ended()  # cancelled at shutdown before an outcome
    assert rt.phase is Phase.RETRYING and rt.pending == "ovh"


def test_split_records_during_a_change_are_the_change_not_drift() -> None:
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    served = records_for(SHOP, "aws")
    new = records_for(SHOP, "ovh")
    first = next(iter(served))
    rt.records_read("ovh", {**served, first: new[first]})
    rt.records_read("route53", {**served, first: new[first]})
    assert rt.published.kind == "drift"
    rt.pending, rt.pending_from = "ovh", "aws"
    assert rt.classify().kind == "target" and rt.published.target == "ovh"


@pytest.mark.parametrize("records_change", [True, False])
def test_reload_adopts_config_and_rereads_only_when_records_move(records_change: bool) -> None:
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    read_all(rt)
    rt.change_failed("route53: down", 1.0, fresh_backoff=True)
    svc = build_service(ttl=30) if records_change else build_service()
    rt.adopt(svc, dict(rt.probes), dict(rt.targets), rt.state)
    if records_change:
        assert rt.phase is Phase.STARTING and rt.current is None and rt.failures == 0
    else:
        assert rt.phase is Phase.RETRYING and rt.current is not None


def test_assumed_changes_show_at_once_and_owe_a_read_back() -> None:
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    read_all(rt)
    rt.last_read = 50.0
    key = next(r.key for r in SHOP.records if r.provider == "ovh")
    rt.assume_applied([Change(key, 60, None, ("198.51.100.20",))], {"ovh"}, 60.0)
    assert rt.current is not None
    assert rt.current[key] == RecordSet(key.name, key.type, 60, ("198.51.100.20",))
    assert rt.read_back_at == 65.0 and rt.last_read == 50.0 and rt.changed_at == 60.0
