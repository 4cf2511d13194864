"""The provider contract: what every DNS provider must do, as checks a third-party provider
package runs against its own provider and a server (real or fake) it supplies.

Each check is an async function `check(provider, zone, prefix)` taking a started provider and a
zone it may write to; it uses names under `prefix` so runs against a shared server do not
collide. With pytest and pytest-asyncio::

    import pytest
    from failover.testkit.providers import CHECKS, Check

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    async def test_contract(my_started_provider, check: Check) -> None:
        await check(my_started_provider, "example.test", "contract")

or, without pytest, `run_contract_sync(make_provider, zone)`. The built-in providers run
exactly these checks (tests/providers/). What they assert is the interface of
docs/providers.md: `read` maps every key asked (None when absent) to canonical values, `apply`
replaces whole RRsets (values and TTL) and is idempotent, `wait_in_sync` returns once live,
invalid changes are refused with `ProviderError(kind="invalid")` before any call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from failover.model import Change, RecordKey, RecordSet, RecordType
from failover.providers.base import Provider, ProviderError

SYNC_TIMEOUT = 30.0

__all__ = [
    "CHECKS",
    "SYNC_TIMEOUT",
    "Check",
    "apply_and_sync",
    "check_create_and_read_back",
    "check_idempotent",
    "check_interface",
    "check_read_absent",
    "check_read_mixed",
    "check_refuses_invalid_values",
    "check_replace",
    "check_ttl_only",
    "key",
    "run_contract",
    "run_contract_sync",
]


def key(provider: Provider, zone: str, label: str, rtype: RecordType) -> RecordKey:
    return RecordKey(provider.name, zone, f"{label}.{zone}", rtype)


async def apply_and_sync(provider: Provider, *changes: Change) -> None:
    receipt = await provider.apply(list(changes))
    assert receipt.provider == provider.name
    await provider.wait_in_sync(receipt, SYNC_TIMEOUT)


async def check_interface(provider: Provider, zone: str, prefix: str = "contract") -> None:
    """The attributes the daemon reads and sets: a name, a location (or None) and an
    `on_error` hook it replaces to count error kinds."""
    assert isinstance(provider.name, str) and provider.name
    assert provider.location is None or isinstance(provider.location, str)
    assert callable(provider.on_error)


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
    """A change replaces the values and the TTL (a planned switchover lowers TTLs this way)."""
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


async def check_refuses_invalid_values(
    provider: Provider, zone: str, prefix: str = "contract"
) -> None:
    """A value that does not fit its type is refused as `invalid` (base.check_values) and
    nothing is written."""
    a = key(provider, zone, f"{prefix}-invalid", RecordType.A)
    try:
        await provider.apply([Change(a, 60, None, ("not-an-address",))])
    except ProviderError as exc:
        assert exc.kind == "invalid", exc.kind
    else:
        raise AssertionError("an A record of 'not-an-address' was accepted")
    assert (await provider.read([a]))[a] is None


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
    check_interface,
    check_read_absent,
    check_create_and_read_back,
    check_replace,
    check_idempotent,
    check_read_mixed,
    check_refuses_invalid_values,
    check_ttl_only,
)


async def run_contract(provider: Provider, zone: str, prefix: str = "contract") -> None:
    """Every check, in order, against one started provider."""
    for check in CHECKS:
        await check(provider, zone, prefix)


def run_contract_sync(
    make_provider: Callable[[], Provider], zone: str, prefix: str = "contract"
) -> None:
    """Build, start, check and close a provider in a fresh event loop (no pytest needed)."""

    async def run() -> None:
        provider = make_provider()
        await provider.start()
        try:
            await run_contract(provider, zone, prefix)
        finally:
            await provider.aclose()

    asyncio.run(run())
