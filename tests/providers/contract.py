"""The provider contract: what every DNS provider must do, run against each real or fake peer.

Each check is an async function taking a started provider and a zone it may write to; it uses
names under `prefix` so runs against a shared peer do not collide. Provider test modules call
`run_contract(provider, zone)` (or single checks) after starting their peer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from failover.model import Change, RecordKey, RecordSet, RecordType
from failover.providers.base import Provider

SYNC_TIMEOUT = 30.0


def key(provider: Provider, zone: str, label: str, rtype: RecordType) -> RecordKey:
    return RecordKey(provider.name, zone, f"{label}.{zone}", rtype)


async def apply_and_sync(provider: Provider, *changes: Change) -> None:
    receipt = await provider.apply(list(changes))
    assert receipt.provider == provider.name
    await provider.wait_in_sync(receipt, SYNC_TIMEOUT)


async def check_read_absent(provider: Provider, zone: str, prefix: str = "contract") -> None:
    keys = [key(provider, zone, f"{prefix}-absent", t) for t in RecordType]
    assert await provider.read(keys) == dict.fromkeys(keys)


async def check_create_and_read_back(
    provider: Provider, zone: str, prefix: str = "contract"
) -> None:
    a = key(provider, zone, f"{prefix}-a", RecordType.A)
    aaaa = key(provider, zone, f"{prefix}-aaaa", RecordType.AAAA)
    cname = key(provider, zone, f"{prefix}-cname", RecordType.CNAME)
    await apply_and_sync(
        provider,
        Change(a, 60, None, ("192.0.2.10", "192.0.2.9")),
        Change(aaaa, 120, None, ("2001:db8::1",)),
        Change(cname, 300, None, (f"{prefix}-a.{zone}",)),
    )
    got = await provider.read([a, aaaa, cname])
    assert got == {
        a: RecordSet(a.name, RecordType.A, 60, ("192.0.2.10", "192.0.2.9")),
        aaaa: RecordSet(aaaa.name, RecordType.AAAA, 120, ("2001:db8::1",)),
        cname: RecordSet(cname.name, RecordType.CNAME, 300, (f"{prefix}-a.{zone}",)),
    }


async def check_replace(provider: Provider, zone: str, prefix: str = "contract") -> None:
    a = key(provider, zone, f"{prefix}-replace", RecordType.A)
    await apply_and_sync(provider, Change(a, 60, None, ("192.0.2.1", "192.0.2.2")))
    before = ("192.0.2.1", "192.0.2.2")
    await apply_and_sync(provider, Change(a, 30, before, ("198.51.100.7",)))
    assert (await provider.read([a]))[a] == RecordSet(a.name, RecordType.A, 30, ("198.51.100.7",))
    await apply_and_sync(provider, Change(a, 30, ("198.51.100.7",), ("203.0.113.5",)))
    assert (await provider.read([a]))[a] == RecordSet(a.name, RecordType.A, 30, ("203.0.113.5",))


async def check_idempotent(provider: Provider, zone: str, prefix: str = "contract") -> None:
    a = key(provider, zone, f"{prefix}-same", RecordType.A)
    change = Change(a, 60, None, ("192.0.2.50",))
    await apply_and_sync(provider, change)
    await apply_and_sync(provider, Change(a, 60, ("192.0.2.50",), ("192.0.2.50",)))
    assert (await provider.read([a]))[a] == RecordSet(a.name, RecordType.A, 60, ("192.0.2.50",))


async def check_read_mixed(provider: Provider, zone: str, prefix: str = "contract") -> None:
    """Present and absent keys in one read; absent ones map to None, never missing."""
    present = key(provider, zone, f"{prefix}-mixed", RecordType.A)
    absent = key(provider, zone, f"{prefix}-mixed", RecordType.AAAA)
    await apply_and_sync(provider, Change(present, 60, None, ("192.0.2.77",)))
    got = await provider.read([present, absent])
    assert set(got) == {present, absent}
    assert got[absent] is None
    found = got[present]
    assert found is not None and found.values == ("192.0.2.77",)


async def check_ttl_only(provider: Provider, zone: str, prefix: str = "contract") -> None:
    """Same values, another TTL (a planned switchover lowers then restores it): applied."""
    a = key(provider, zone, f"{prefix}-ttl", RecordType.A)
    values = ("192.0.2.61", "192.0.2.62")
    await apply_and_sync(provider, Change(a, 300, None, values))
    await apply_and_sync(provider, Change(a, 30, values, values))
    assert (await provider.read([a]))[a] == RecordSet(a.name, RecordType.A, 30, values)
    await apply_and_sync(provider, Change(a, 300, values, values))
    assert (await provider.read([a]))[a] == RecordSet(a.name, RecordType.A, 300, values)


Check = Callable[[Provider, str, str], Awaitable[None]]
CHECKS: tuple[Check, ...] = (
    check_read_absent,
    check_create_and_read_back,
    check_replace,
    check_idempotent,
    check_read_mixed,
    check_ttl_only,
)


async def run_contract(provider: Provider, zone: str, prefix: str = "contract") -> None:
    for check in CHECKS:
        await check(provider, zone, prefix)
