"""A provider that answers one query per key is read in parts: each part's services can be
decided while the next part is read, and no service's records are split between parts."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, cast

from failover.core.decide import ServiceState
from failover.engine.reader import RecordReader, _parts
from failover.model import RecordKey, RecordSet, RecordType
from failover.runtime import Phase, ServiceRuntime
from tests.support.locks import CountingLock
from tests.unit.core.conftest import build_service


def runtime(index: int, records: int = 1) -> ServiceRuntime:
    kinds = (RecordType.A, RecordType.AAAA)[:records]
    service = build_service(name=f"svc{index}", records=[("dns", kind) for kind in kinds])
    named = tuple(dataclasses.replace(r, name=f"svc{index}.example.com") for r in service.records)
    return ServiceRuntime.fresh(dataclasses.replace(service, records=named), ServiceState())


class CountingProvider:
    read_chunk = 3

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordSet | None]:
        self.calls.append(len(keys))
        await asyncio.sleep(0)
        return dict.fromkeys(keys)


def test_parts_keep_each_service_whole() -> None:
    a, b, c = runtime(1, records=2), runtime(2, records=2), runtime(3)
    wanted = [(rt, r.key, 0) for rt in (a, b, c) for r in rt.config.records]
    parts = _parts(wanted, 3)
    assert [[item[0] for item in part] for part in parts] == [[a, a, b, b], [c]]
    assert _parts(wanted, len(wanted)) == [wanted]
    assert _parts([], 3) == []


def reader_for(
    provider: CountingProvider,
    runtimes: dict[str, ServiceRuntime],
    lock: asyncio.Lock,
    wake: Callable[[str], None],
) -> RecordReader:
    """A reader over just what reading needs: the provider "dns", its settings, the lock."""
    settings = SimpleNamespace(timeout=5.0, retry=SimpleNamespace(deadline=5.0))
    instance = SimpleNamespace(resync_interval=30.0)
    ctx = SimpleNamespace(
        providers={"dns": provider},
        config=SimpleNamespace(providers={"dns": settings}, instance=instance),
        lock=lock,
        clock=lambda: 100.0,
        services=runtimes,
        wake_service=wake,
    )
    return RecordReader(cast(Any, ctx))


async def test_services_are_read_part_by_part() -> None:
    provider = CountingProvider()
    runtimes = {rt.name: rt for rt in (runtime(i) for i in range(8))}
    woken: list[str] = []
    reader = reader_for(provider, runtimes, asyncio.Lock(), woken.append)
    await asyncio.gather(*reader.start(runtimes.values(), 50.0))
    assert provider.calls == [3, 3, 2]
    assert all(rt.current is not None for rt in runtimes.values())
    assert sorted(woken) == sorted(runtimes)
    woken.clear()  # a re-read that finds the same records tells nothing new: nobody is woken
    await asyncio.gather(*reader.start(runtimes.values(), 60.0))
    assert provider.calls == [3, 3, 2, 3, 3, 2] and woken == []


async def test_a_whole_read_is_folded_a_piece_at_a_time(monkeypatch: Any) -> None:
    """A zone transfer answers every key at once: the services are folded in pieces, the
    engine lock let go between them, so decisions and the loop never wait for all of them."""
    monkeypatch.setattr("failover.engine.reader.FOLD_PART", 3)
    provider = CountingProvider()
    provider.read_chunk = 0  # one call for every key
    runtimes = {rt.name: rt for rt in (runtime(i) for i in range(8))}
    lock = CountingLock()
    reader = reader_for(provider, runtimes, lock, lambda _name: None)
    await asyncio.gather(*reader.start(runtimes.values(), 50.0))
    assert provider.calls == [8]
    assert lock.turns == 3  # 3 + 3 + 2 services
    assert all(rt.current is not None for rt in runtimes.values())


async def test_a_due_re_read_takes_along_the_services_read_over_half_a_resync_ago() -> None:
    """Services read apart (each after its own change) join the next group re-read once
    half a resync old, so a zone is transferred once per resync, not once per group."""
    provider = CountingProvider()
    ages = {"fresh": 5.0, "half": 16.0, "due": 31.0, "busy": 40.0}
    named = {name: runtime(i) for i, name in enumerate(ages)}
    runtimes = {rt.name: rt for rt in named.values()}
    reader = reader_for(provider, runtimes, asyncio.Lock(), lambda _name: None)
    await asyncio.gather(*reader.start(runtimes.values(), 1.0))  # every one read once
    assert all(rt.current is not None for rt in runtimes.values())
    now = 100.0
    for name, age in ages.items():
        named[name].last_read = now - age
    named["busy"].phase = Phase.SWITCHING  # a change in flight: read once it ends
    unread = runtime(9)  # never read: due whatever the others' ages
    everyone = [*runtimes.values(), unread]
    due = reader.due(everyone, now)
    assert {rt.name for rt in due} == {unread.name, named["half"].name, named["due"].name}
    named["due"].last_read = now - 29.0  # none due for a re-read: nobody comes along
    assert reader.due(everyone, now) == [unread]
    named["due"].read_back_at = now + 1.0  # a change's read-back, owed in a second
    assert reader.due(everyone, now) == [unread]
    named["due"].read_back_at = now  # now owed: it alone, it takes nobody along either
    assert reader.due(everyone, now) == [unread, named["due"]]
