"""The apply queue with a provider that paces its writes (`PacedWrites`): what it does when
the provider's turn or its count misbehave. A real builtin provider, with the two optional
methods added by a subclass (the Route 53 implementation is tested against moto)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from failover.apply import ProviderQueue, submit_plan
from failover.config.types import BuiltinProviderConfig, HostPort, RetryConfig
from failover.metrics import Metrics
from failover.model import Change, RecordKey, RecordType
from failover.providers.base import PacedWrites
from failover.providers.builtin import BuiltinProvider
from failover.store import Store

ZONE = "example.test"


class Paced(BuiltinProvider):
    turn_never_comes = False
    count_fails = False

    @contextlib.asynccontextmanager
    async def write_turn(self, zone: str) -> AsyncIterator[None]:
        if self.turn_never_comes:
            await asyncio.Event().wait()
        yield

    def one_request(self, changes: Sequence[Change]) -> int:
        if self.count_fails:
            raise RuntimeError("a plugin bug")
        return 1


@pytest.fixture
async def paced(tmp_path: Path) -> AsyncIterator[tuple[Paced, ProviderQueue]]:
    config = BuiltinProviderConfig("lab", HostPort("127.0.0.1", 0))
    config = replace(config, timeout=0.2, retry=RetryConfig(attempts=1, deadline=0.1))
    provider = Paced(config, (ZONE,), Store(tmp_path / "state"))
    assert isinstance(provider, PacedWrites)
    await provider.start()
    queue = ProviderQueue("lab", provider, config, Metrics())
    yield provider, queue
    await queue.aclose()
    await provider.aclose()


def changes(count: int) -> list[Change]:
    return [
        Change(RecordKey("lab", ZONE, f"s{i}.{ZONE}", RecordType.A), 30, None, ("192.0.2.1",))
        for i in range(count)
    ]


async def test_each_service_goes_in_what_one_request_holds(
    paced: tuple[Paced, ProviderQueue],
) -> None:
    _, queue = paced
    subs = [queue.submit([c]) for c in changes(3)]
    assert [(await s.accepted).batch_size for s in subs] == [1, 1, 1]
    assert queue.calls == 3


async def test_a_failing_count_sends_the_batch_whole(
    paced: tuple[Paced, ProviderQueue], caplog: pytest.LogCaptureFixture
) -> None:
    provider, queue = paced
    provider.count_fails = True
    subs = [queue.submit([c]) for c in changes(3)]
    outcomes = [await asyncio.wait_for(s.accepted, 5) for s in subs]
    assert all(o.ok and o.batch_size == 3 for o in outcomes)
    assert "one_request failed" in caplog.text


async def test_a_turn_that_never_comes_is_not_waited_for(
    paced: tuple[Paced, ProviderQueue], caplog: pytest.LogCaptureFixture
) -> None:
    provider, queue = paced
    provider.turn_never_comes = True
    caplog.set_level(logging.WARNING, "failover.apply")
    (sub,) = submit_plan({"lab": queue}, changes(1))
    assert (await asyncio.wait_for(sub.accepted, 5)).ok  # after the call budget, unpaced
    assert "no write turn" in caplog.text
