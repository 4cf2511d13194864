"""The rules every provider shares, written once in `failover.providers.base`, and proof that
each provider applies them (a key is refused before any network call)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from failover.config.types import (
    BuiltinProviderConfig,
    HostPort,
    OvhProviderConfig,
    ProviderConfig,
    Rfc2136ProviderConfig,
    Route53ProviderConfig,
    ScalewayProviderConfig,
)
from failover.model import Change, RecordKey, RecordType
from failover.providers.base import (
    MAX_TTL,
    ProviderError,
    check_key,
    check_values,
    combined_error,
    gather_all,
    per_zone,
    relative_name,
    zone_of,
)
from failover.providers.registry import create_provider
from failover.providers.retry import kind_of_status
from failover.providers.scaleway import classify
from failover.store import Store

ZONES = ("example.com", "sub.example.com", "example.net")


@pytest.mark.parametrize(
    ("name", "zone"),
    [
        ("www.example.com", "example.com"),
        ("example.com", "example.com"),  # the apex is in its zone
        ("WWW.Example.COM.", "example.com"),  # case and a trailing dot do not matter
        ("a.b.c.example.com", "example.com"),
        ("xexample.com", None),  # a suffix that is not a whole label
        ("www.xexample.com", None),
        ("com", None),  # the parent is not in the zone
        ("www.example.org", None),
        ("a.sub.example.com", "sub.example.com"),  # nested zones: the longest wins
        ("sub.example.com", "sub.example.com"),  # the inner apex is the inner zone's
        ("a.xsub.example.com", "example.com"),
        ("", None),
    ],
)
def test_zone_of(name: str, zone: str | None) -> None:
    assert zone_of(name, ZONES) == zone
    assert zone_of(name, reversed(ZONES)) == zone  # order of the zones does not matter


def test_zone_of_normalizes_the_zones_and_never_matches_the_root() -> None:
    assert zone_of("www.example.com", ["Example.COM."]) == "example.com"
    # Before: route53, ovh and scaleway took "" as a zone whose apex "" was in it.
    assert zone_of("", [""]) is None
    assert zone_of("www.example.com", ["", "."]) is None
    assert zone_of("www.example.com", []) is None


def test_check_key() -> None:
    key = RecordKey("p", "Example.com.", "WWW.example.com", RecordType.A)
    assert check_key("p", key) == ("example.com", "www.example.com")
    with pytest.raises(ProviderError, match="belongs to provider 'p'") as info:
        check_key("q", key)
    assert info.value.kind == "invalid"
    outside = RecordKey("p", "example.com", "www.xexample.com", RecordType.A)
    with pytest.raises(ProviderError, match=r"www\.xexample\.com is not in zone example\.com$"):
        check_key("p", outside)
    nested = RecordKey("p", "example.com", "a.sub.example.com", RecordType.A)
    assert check_key("p", nested) == ("example.com", "a.sub.example.com")  # no inner zone known
    with pytest.raises(ProviderError, match=r"example\.com but in zone sub\.example\.com$"):
        check_key("p", nested, ZONES)
    root = RecordKey("p", "", "", RecordType.A)
    with pytest.raises(ProviderError, match="is not in zone"):
        check_key("p", root)
    other = RecordKey("p", "example.org", "www.example.org", RecordType.A)
    assert check_key("p", other) == ("example.org", "www.example.org")  # zones not known
    for zones in (ZONES, ()):
        with pytest.raises(ProviderError, match=r"zone example\.org is not one of the zones"):
            check_key("p", other, zones)


def test_relative_name() -> None:
    assert relative_name("example.com", "example.com") == ""
    assert relative_name("a.b.example.com", "example.com") == "a.b"


def _configs() -> list[ProviderConfig]:
    return [
        BuiltinProviderConfig(name="p", listen=HostPort("127.0.0.1", 0)),
        Rfc2136ProviderConfig(name="p", server="127.0.0.1", port=9),
        Route53ProviderConfig(name="p"),
        OvhProviderConfig(name="p", endpoint="http://127.0.0.1:9"),
        ScalewayProviderConfig(name="p", api_url="http://127.0.0.1:9"),
    ]


@pytest.mark.parametrize("config", _configs(), ids=lambda c: c.type)
@pytest.mark.parametrize(
    ("zone", "name"),
    [
        ("example.com", "www.xexample.com"),  # every old copy refused this one
        ("example.com", "a.sub.example.com"),  # before: only builtin refused it
        ("", ""),  # before: route53, ovh and scaleway accepted it
        ("example.org", "www.example.org"),  # before: only builtin and ovh refused it
    ],
)
async def test_every_provider_refuses_a_key_outside_its_zones(
    config: ProviderConfig, zone: str, name: str, tmp_path: Path
) -> None:
    provider = create_provider(config, ZONES, Store(tmp_path))
    key = RecordKey("p", zone, name, RecordType.A)
    try:
        with pytest.raises(ProviderError) as info:
            await provider.read([key])
        assert info.value.kind == "invalid"
    finally:
        await provider.aclose()


def _change(name: str, rtype: RecordType, ttl: int, *after: str) -> Change:
    return Change(RecordKey("p", "example.com", name, rtype), ttl, None, after)


def test_check_values() -> None:
    a = _change("www.example.com", RecordType.A, 60, "192.0.2.2", "192.0.2.01")
    with pytest.raises(ProviderError, match=r"192\.0\.2\.01"):  # leading zeros: refused
        check_values(a, "example.com")
    a = _change("www.example.com", RecordType.A, 60, "192.0.2.2", "192.0.2.1")
    assert check_values(a, "example.com") == ("192.0.2.1", "192.0.2.2")
    cname = _change("www.example.com", RecordType.CNAME, MAX_TTL, "Target.Example.NET.")
    assert check_values(cname, "example.com") == ("target.example.net",)
    empty = _change("www.example.com", RecordType.A, 60)
    assert check_values(empty, "example.com", allow_empty=True) == ()
    refused = [
        (empty, "empty record set"),
        (_change("www.example.com", RecordType.A, -1, "192.0.2.1"), "TTL -1 out of range"),
        (_change("www.example.com", RecordType.A, MAX_TTL + 1, "192.0.2.1"), "out of range"),
        (_change("www.example.com", RecordType.A, 60, "not-an-ip"), "not-an-ip"),
        (_change("www.example.com", RecordType.CNAME, 60, "a.test", "b.test"), "one value"),
        (_change("Example.COM.", RecordType.CNAME, 60, "a.test"), "zone apex"),
    ]
    for change, why in refused:
        with pytest.raises(ProviderError, match=why) as info:
            check_values(change, "example.com")
        assert info.value.kind == "invalid"


@pytest.mark.parametrize("config", _configs(), ids=lambda c: c.type)
async def test_every_provider_refuses_an_apex_cname_before_any_call(
    config: ProviderConfig, tmp_path: Path
) -> None:
    """Before, Scaleway alone left this to its API."""
    provider = create_provider(config, ZONES, Store(tmp_path))
    try:
        with pytest.raises(ProviderError) as info:
            await provider.apply([_change("example.com", RecordType.CNAME, 60, "a.example.net")])
        assert info.value.kind == "invalid"
    finally:
        await provider.aclose()


# -- HTTP status -> (kind, retryable) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, ("throttling", True)),
        (500, ("server", True)),
        (502, ("server", True)),
        (503, ("server", True)),
        (599, ("server", True)),
        (401, ("auth", False)),
        (403, ("auth", False)),
        (404, ("not_found", False)),
        (400, ("client", False)),
        (408, ("client", False)),
        (409, ("client", False)),
        (0, ("client", False)),  # no status at all
    ],
)
def test_kind_of_status(status: int, expected: tuple[str, bool]) -> None:
    assert kind_of_status(status) == expected


def test_kind_of_status_provider_bits() -> None:
    assert kind_of_status(400, "api") == ("api", False)  # OVH
    assert kind_of_status(0, "auth") == ("auth", False)  # OVH OAuth2, status not in the text
    # OVH: its callers read `not_found` as "already gone", which a 404 token URL is not.
    assert kind_of_status(404, "auth", not_found="auth") == ("auth", False)
    assert kind_of_status(503, "auth", not_found="auth") == ("server", True)
    assert kind_of_status(422, "invalid") == ("invalid", False)  # Scaleway


@pytest.mark.parametrize(
    ("status", "etype", "expected"),
    [
        (429, "quotas_exceeded", ("throttling", True)),
        (503, None, ("server", True)),
        (409, "transient_state", ("server", True)),  # the zone is busy: retried
        (401, "transient_state", ("server", True)),
        (400, "permissions_denied", ("auth", False)),
        (404, "permissions_denied", ("auth", False)),
        (403, None, ("auth", False)),
        (400, "not_found", ("not_found", False)),
        (404, None, ("not_found", False)),
        (400, "invalid_arguments", ("invalid", False)),
        (409, None, ("invalid", False)),
    ],
)
def test_scaleway_error_type_refines_the_status(
    status: int, etype: str | None, expected: tuple[str, bool]
) -> None:
    assert classify(status, etype) == expected


# -- several calls, one outcome -------------------------------------------------------------------


def test_combined_error() -> None:
    slow = ProviderError("a", kind="timeout", retryable=True)
    slow.counted = True
    denied = ProviderError("b", kind="auth")
    merged = combined_error("two zones failed", [slow, denied])
    assert (str(merged), merged.kind, merged.retryable, merged.counted) == (
        "two zones failed",
        "timeout",
        False,
        False,
    )
    denied.counted = True
    again = combined_error("x", [slow, ProviderError("c", kind="server", retryable=True)])
    assert again.retryable and not again.counted
    assert combined_error("x", [slow]).counted


async def test_gather_all_lets_every_call_finish_before_raising() -> None:
    finished: list[str] = []

    async def call(name: str, delay: float, fail: bool = False) -> str:
        await asyncio.sleep(delay)
        finished.append(name)
        if fail:
            raise ProviderError(name)
        return name

    assert await gather_all([call("a", 0), call("b", 0)]) == ["a", "b"]
    finished.clear()
    with pytest.raises(ProviderError, match="first"):
        await gather_all([call("first", 0, fail=True), call("slow", 0.05), call("x", 0, True)])
    assert sorted(finished) == ["first", "slow", "x"]


async def test_per_zone_names_the_failed_zones_and_those_done() -> None:
    async def work(zone: str, n: int) -> int:
        if zone.startswith("bad"):
            raise ProviderError(f"{zone} broke", kind="server", retryable=True)
        return n * 2

    assert await per_zone(work, {"a.test": 1, "b.test": 2}) == {"a.test": 2, "b.test": 4}
    with pytest.raises(ProviderError) as one:
        await per_zone(work, {"bad.test": 1})
    assert str(one.value) == "bad.test broke"  # a lone zone's own error
    with pytest.raises(ProviderError) as several:
        await per_zone(work, {"a.test": 1, "bad1.test": 2, "bad2.test": 3})
    assert str(several.value) == (
        "bad1.test: bad1.test broke; bad2.test: bad2.test broke (done: a.test)"
    )
    assert several.value.kind == "server" and several.value.retryable
