"""Fencing: a plan built under a leadership this instance no longer holds is never sent.

A real builtin provider behind a real ProviderQueue; the fence is the coordinator's
`token_valid`, here a plain function of the current token.
"""

from __future__ import annotations

from pathlib import Path

from failover.apply import STALE_LEADER, ProviderQueue, submit_plan
from failover.config.types import BuiltinProviderConfig, HostPort
from failover.metrics import Metrics
from failover.model import Change, RecordKey, RecordType
from failover.providers.builtin import BuiltinProvider
from failover.store import Store

ZONE = "example.test"
KEY = RecordKey("lab", ZONE, f"shop.{ZONE}", RecordType.A)


async def test_a_stale_plan_is_refused_and_a_current_one_applied(tmp_path: Path) -> None:
    config = BuiltinProviderConfig("lab", HostPort("127.0.0.1", 0))
    provider = BuiltinProvider(config, (ZONE,), Store(tmp_path / "state"))
    await provider.start()
    current = {"token": 7}
    queue = ProviderQueue(
        "lab", provider, config, Metrics(), fence=lambda token: token == current["token"]
    )
    try:
        stale = Change(KEY, 30, None, ("192.0.2.1",))
        (sub,) = submit_plan({"lab": queue}, [stale], token=6)  # built under an older leadership
        outcome = await sub.accepted
        assert not outcome.ok and outcome.kind == STALE_LEADER
        assert "stale-leader" in outcome.error
        assert queue.calls == 0  # the provider was never called
        assert (await provider.read([KEY]))[KEY] is None

        fresh = Change(KEY, 30, None, ("192.0.2.2",))
        (sub,) = submit_plan({"lab": queue}, [fresh], token=7)
        assert (await sub.accepted).ok
        served = (await provider.read([KEY]))[KEY]
        assert served is not None and served.values == ("192.0.2.2",)
    finally:
        await queue.aclose()
        await provider.aclose()
