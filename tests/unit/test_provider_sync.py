"""Per-provider change state: kept until resolved, never a stale verdict (provider_sync.py),
and how the runtime acts on it: an ignored change is owed again after a growing backoff."""

from __future__ import annotations

import asyncio
from typing import Any

from failover.core.decide import ServiceState
from failover.model import Change, Phase, RecordKey, RecordSet
from failover.provider_sync import ProviderSync, SyncState, alarms
from failover.runtime import ServiceRuntime
from failover.submission import Confirmation
from tests.unit.core.conftest import build_service, records_for

SHOP = build_service()
OVH_KEY = next(r.key for r in SHOP.records if r.provider == "ovh")
OLD, NEW = records_for(SHOP, "aws"), records_for(SHOP, "ovh")
OK = Confirmation(True, 0.1, True, "verified on 2 servers in 0.1s", 0.1)
LATE = Confirmation(True, 0.1, False, "ns2 still serves 203.0.113.10 after 60s", 60.0)


def change(key: RecordKey = OVH_KEY) -> Change:
    return Change(key, 60, ("203.0.113.10", "203.0.113.11"), ("198.51.100.20",))


def accepted() -> ProviderSync:
    return ProviderSync("ovh", (change(),), SyncState.ACCEPTED, 10.0)


def accepted_at_ten() -> ServiceRuntime:
    """Both providers read serving the old answer at 1 s; ovh accepted the change at 10 s."""
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    for provider in ("ovh", "route53"):
        rt.records_read(provider, OLD, 1.0)
    rt.last_read = 1.0
    rt.pending = "ovh"
    rt.assume_applied([change()], {"ovh"}, 10.0)
    return rt


def test_a_failed_verification_lags_until_a_recheck_verifies() -> None:
    sync = accepted()
    sync.confirmed(LATE, 70.0)
    assert (sync.state, sync.lagging_since, sync.recheck) == (SyncState.NOT_VERIFIED, 70.0, True)
    assert alarms({"ovh": sync}, {}) == {"not_verified": "ovh: " + LATE.verify_reason}
    sync.verified(OK, 90.0)
    assert (sync.state, sync.lagging_since, sync.unverified) == (SyncState.VERIFIED, None, "")
    assert alarms({"ovh": sync}, {}) == {}


def test_a_newer_change_carries_what_is_still_wrong() -> None:
    sync = accepted()
    sync.confirmed(LATE, 70.0)
    newer = sync.successor("aws", (change(),), SyncState.ACCEPTED, 80.0)
    assert newer.unverified and newer.lagging_since == 70.0 and not newer.recheck
    assert newer.confirmation is None  # its own verdict is still to come


def test_read_back_tells_an_ignored_change_and_the_backoff_grows() -> None:
    sync = accepted()
    assert sync.read_back(OLD, 11.0) is True
    assert sync.state is SyncState.IGNORED and sync.ignored == 1 and sync.backoff() == 0.5
    assert "still serves shop.example.com/A 203.0.113.10, 203.0.113.11 TTL 60" in sync.detail
    for _ in range(9):
        sync = sync.successor("ovh", (change(),), SyncState.ACCEPTED, 12.0)
        sync.read_back(OLD, 12.0)
    assert sync.ignored == 10 and sync.backoff() == 30.0  # capped: ~2 attempts a minute
    assert "change_ignored" in alarms({"ovh": sync}, {})
    sync = sync.successor("ovh", (change(),), SyncState.ACCEPTED, 13.0)
    assert sync.read_back(NEW, 14.0) is False and sync.served and sync.ignored == 0
    assert alarms({"ovh": sync}, {}) == {}


async def _done() -> dict[str, Any]:
    return {"result": "ok"}


def test_the_runtime_owes_an_ignored_change_and_shows_it_in_progress() -> None:
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    for provider in ("ovh", "route53"):
        rt.records_read(provider, OLD, 1.0)
    loop = asyncio.new_event_loop()
    try:
        rt.begin_change("ovh", "aws", lambda _: loop.create_task(_done()))
        changes = [change(r.key) for r in SHOP.records]
        rt.assume_applied(changes, {"ovh", "route53"}, 10.0)
        rt.change_applied(confirming=False)
        rt.change_ended()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    assert rt.phase is Phase.STEADY and rt.pending is None
    rt.records_read("ovh", NEW, 11.0)  # ovh applied it
    rt.records_read("route53", OLD, 11.0)  # route53 said yes and kept the old answer
    assert rt.phase is Phase.RETRYING and (rt.pending, rt.pending_from) == ("ovh", "aws")
    assert rt.retry_at == 11.5 and rt.published.target == "ovh"
    assert rt.sync["route53"].state is SyncState.IGNORED
    assert rt.sync["ovh"].served and "change_ignored" in rt.alarms()


def test_verdicts_on_a_superseded_change_are_history() -> None:
    rt = accepted_at_ten()
    first = rt.sync["ovh"]
    rt.pending = "scw"
    rt.assume_applied([Change(OVH_KEY, 60, None, ("192.0.2.30",))], {"ovh"}, 20.0)
    assert rt.verification_ended(None, {"ovh": (first, LATE)}, 30.0) == []
    assert not rt.unverified and rt.sync["ovh"].state is SyncState.ACCEPTED


def test_a_hand_edit_after_an_accepted_change_is_drift_not_an_ignored_change() -> None:
    """A value no target has was written by someone else: the change is not owed again (that
    would overwrite the hand edit, which drift protection forbids)."""
    rt = ServiceRuntime.fresh(SHOP, ServiceState())
    for provider in ("ovh", "route53"):
        rt.records_read(provider, OLD, 1.0)
    loop = asyncio.new_event_loop()
    try:
        rt.begin_change("ovh", "aws", lambda _: loop.create_task(_done()))
        rt.assume_applied([change(r.key) for r in SHOP.records], {"ovh", "route53"}, 10.0)
        rt.change_applied(confirming=False)
        rt.change_ended()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    hand = {k: RecordSet(k.name, k.type, 60, ("192.0.2.250",)) for k in OLD}
    rt.records_read("ovh", NEW, 11.0)
    rt.records_read("route53", hand, 11.0)  # an operator's edit, no target's value
    assert rt.pending is None and rt.phase is Phase.STEADY
    assert rt.published.kind == "drift" and "change_ignored" not in rt.alarms()


OFF = Confirmation(True, 0.1, None, "in sync at the provider (verification disabled)", None)


def test_a_verified_change_is_not_read_back_and_an_unverified_one_is_at_once() -> None:
    """The read-back asks the provider whether it kept what it accepted: owed 5 s after the
    acceptance, dropped when every server already serves the change, asked at once when the
    verdict could not show it (verification failed, or off)."""
    for verdict, owed in ((OK, float("inf")), (LATE, 12.0), (OFF, 12.0)):
        rt = accepted_at_ten()
        assert (rt.last_read, rt.read_back_at) == (1.0, 15.0)  # not read again at once
        rt.verification_ended(None, {"ovh": (rt.sync["ovh"], verdict)}, 12.0)
        assert rt.read_back_at == owed, verdict
        rt.reading(13.0)
        assert (rt.last_read, rt.read_back_at) == (13.0, float("inf"))


def test_a_late_verdict_does_not_postpone_a_read_back_already_due() -> None:
    rt = accepted_at_ten()
    rt.assume_applied([change()], {"ovh"}, 12.0)  # told twice: the first deadline holds
    assert rt.read_back_at == 15.0
    rt.verification_abandoned()  # a reload: no verdict will come
    assert rt.read_back_at == float("-inf")


def test_a_verdict_on_a_superseded_change_does_not_hasten_the_read_back() -> None:
    """Back-to-back changes: the first change's verdict arrives after the second was accepted;
    it concerns no provider's current change, so the second keeps its own deadline."""
    rt = accepted_at_ten()
    first = rt.sync["ovh"]
    rt.reading(11.0)  # read back (the 5 s were up, say): nothing owed
    rt.pending = "scw"
    rt.assume_applied([Change(OVH_KEY, 60, None, ("192.0.2.30",))], {"ovh"}, 12.0)
    assert rt.read_back_at == 17.0
    assert rt.verification_ended(None, {"ovh": (first, LATE)}, 13.0) == []
    assert rt.read_back_at == 17.0
