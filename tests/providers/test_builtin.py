"""The builtin provider: the contract, and real DNS queries over UDP and TCP on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.update
import pytest

from failover.config.types import BuiltinProviderConfig, HostPort
from failover.model import Change, RecordKey, RecordSet, RecordType
from failover.providers.base import ProviderError
from failover.providers.builtin import BuiltinProvider
from failover.store import Store, StoreCorruptError
from tests.providers.contract import CHECKS, Check, key

ZONE = "example.test"
OTHER = "other.test"


def make(
    store: Store, zones: tuple[str, ...] = (ZONE, "Other.Test."), host: str = "127.0.0.1"
) -> BuiltinProvider:
    return BuiltinProvider(BuiltinProviderConfig("lab", HostPort(host, 0)), zones, store)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state")


@pytest.fixture
async def provider(store: Store) -> AsyncIterator[BuiltinProvider]:
    p = make(store)
    await p.start()
    try:
        yield p
    finally:
        await p.aclose()


async def ask(
    p: BuiltinProvider,
    name: str,
    rdtype: str = "A",
    *,
    tcp: bool = False,
    **kwargs: object,
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
    host = p.bound.host
    if tcp:
        return await dns.asyncquery.tcp(q, host, timeout=3, port=p.port)
    return await dns.asyncquery.udp(q, host, timeout=3, port=p.port)


def rrset_values(
    msg: dns.message.Message, section: str = "answer"
) -> dict[tuple[str, str], set[str]]:
    return {
        (str(rr.name).lower(), dns.rdatatype.to_text(rr.rdtype)): {r.to_text() for r in rr}
        for rr in getattr(msg, section)
    }


def serial(msg: dns.message.Message) -> int:
    (soa,) = [rr for rr in msg.answer + msg.authority if rr.rdtype == dns.rdatatype.SOA]
    return int(soa[0].serial)


async def publish(
    p: BuiltinProvider, label: str, rtype: RecordType, *values: str, ttl: int = 60
) -> None:
    await p.apply([Change(key(p, ZONE, label, rtype), ttl, None, values)])


# -- contract and read/apply ----------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_contract(provider: BuiltinProvider, check: Check) -> None:
    await check(provider, ZONE, "contract")


async def test_read_absent_and_invalid_keys(provider: BuiltinProvider) -> None:
    www = key(provider, ZONE, "www", RecordType.A)
    assert await provider.read([www]) == {www: None}
    bad = [
        RecordKey("someone-else", ZONE, f"www.{ZONE}", RecordType.A),  # other provider
        key(provider, "unserved.test", "www", RecordType.A),  # zone not served
        RecordKey("lab", ZONE, "www.example.net", RecordType.A),  # name outside its zone
    ]
    for k in bad:
        with pytest.raises(ProviderError) as info:
            await provider.read([k])
        assert info.value.kind == "invalid"
        with pytest.raises(ProviderError):
            await provider.apply([Change(k, 60, None, ("192.0.2.1",))])


async def test_batch_is_all_or_nothing(provider: BuiltinProvider) -> None:
    first = key(provider, ZONE, "first", RecordType.A)
    before = serial(await ask(provider, ZONE, "SOA"))
    invalid_batches = [
        [Change(key(provider, ZONE, "first", RecordType.CNAME), 60, None, ("x.example.net",))],
        [Change(key(provider, ZONE, "two", RecordType.CNAME), 60, None, ("a.test", "b.test"))],
        [Change(key(provider, ZONE, "x", RecordType.A), 60, None, ("not-an-ip",))],
        [Change(key(provider, ZONE, "x", RecordType.A), -1, None, ("192.0.2.1",))],
        [Change(RecordKey("lab", ZONE, ZONE, RecordType.CNAME), 60, None, ("x.example.net",))],
    ]
    for batch in invalid_batches:
        with pytest.raises(ProviderError) as info:
            await provider.apply([Change(first, 60, None, ("192.0.2.1",)), *batch])
        assert info.value.kind == "invalid"
        assert (await provider.read([first]))[first] is None
    assert serial(await ask(provider, ZONE, "SOA")) == before
    assert provider._store.read_json("builtin-lab.json") is None  # nothing was written


async def test_empty_after_deletes(provider: BuiltinProvider) -> None:
    gone = key(provider, ZONE, "gone", RecordType.A)
    await publish(provider, "gone", RecordType.A, "192.0.2.1")
    await provider.apply([Change(gone, 60, ("192.0.2.1",), ())])
    assert (await provider.read([gone]))[gone] is None
    assert (await ask(provider, gone.name)).rcode() == dns.rcode.NXDOMAIN


# -- answers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_answers_are_authoritative_with_ttls(provider: BuiltinProvider, tcp: bool) -> None:
    await publish(provider, "www", RecordType.A, "192.0.2.10", "192.0.2.11", ttl=42)
    await publish(provider, "www", RecordType.AAAA, "2001:db8::10", ttl=43)
    await publish(provider, "alias", RecordType.CNAME, f"www.{ZONE}", ttl=44)
    await publish(provider, "away", RecordType.CNAME, "cdn.example.net", ttl=45)

    r = await ask(provider, "WWW.Example.Test.", "A", tcp=tcp)  # case-insensitive
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert not r.flags & dns.flags.TC
    assert rrset_values(r) == {("www.example.test.", "A"): {"192.0.2.10", "192.0.2.11"}}
    assert r.answer[0].ttl == 42

    r = await ask(provider, f"www.{ZONE}", "AAAA", tcp=tcp)
    assert rrset_values(r) == {("www.example.test.", "AAAA"): {"2001:db8::10"}}
    assert r.answer[0].ttl == 43

    r = await ask(provider, f"alias.{ZONE}", "A", tcp=tcp)  # CNAME followed inside the zone
    assert r.flags & dns.flags.AA and r.rcode() == dns.rcode.NOERROR
    assert rrset_values(r) == {
        ("alias.example.test.", "CNAME"): {"www.example.test."},
        ("www.example.test.", "A"): {"192.0.2.10", "192.0.2.11"},
    }
    assert [rr.ttl for rr in r.answer] == [44, 42]

    r = await ask(provider, f"alias.{ZONE}", "CNAME", tcp=tcp)
    assert rrset_values(r) == {("alias.example.test.", "CNAME"): {"www.example.test."}}

    r = await ask(provider, f"away.{ZONE}", "AAAA", tcp=tcp)  # target outside: resolver goes on
    assert r.rcode() == dns.rcode.NOERROR
    assert rrset_values(r) == {("away.example.test.", "CNAME"): {"cdn.example.net."}}


async def test_cname_chain_across_zones_and_loops(provider: BuiltinProvider) -> None:
    await publish(provider, "to-other", RecordType.CNAME, f"host.{OTHER}")
    host = key(provider, OTHER, "host", RecordType.A)
    await provider.apply([Change(host, 30, None, ("192.0.2.99",))])
    r = await ask(provider, f"to-other.{ZONE}")
    assert rrset_values(r)[("host.other.test.", "A")] == {"192.0.2.99"}

    await publish(provider, "dangling", RecordType.CNAME, f"nothing.{ZONE}")
    r = await ask(provider, f"dangling.{ZONE}")  # RFC 6604: rcode of the last name
    assert r.rcode() == dns.rcode.NXDOMAIN and len(r.answer) == 1 and r.authority

    await publish(provider, "loop1", RecordType.CNAME, f"loop2.{ZONE}")
    await publish(provider, "loop2", RecordType.CNAME, f"loop1.{ZONE}")
    r = await ask(provider, f"loop1.{ZONE}")
    assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 2


async def test_soa_ns_and_glue(provider: BuiltinProvider) -> None:
    r = await ask(provider, ZONE, "SOA")
    assert r.flags & dns.flags.AA
    soa = r.answer[0][0]
    assert str(soa.mname) == "ns1.example.test." and str(soa.rname) == "hostmaster.example.test."
    assert soa.minimum == 60 and soa.refresh > soa.retry > 0 and soa.expire > soa.refresh

    r = await ask(provider, ZONE, "NS")
    assert rrset_values(r) == {("example.test.", "NS"): {"ns1.example.test."}}
    assert rrset_values(r, "additional") == {("ns1.example.test.", "A"): {"127.0.0.1"}}
    r = await ask(provider, f"ns1.{ZONE}", "A")
    assert rrset_values(r) == {("ns1.example.test.", "A"): {"127.0.0.1"}}


async def test_serial_bumps_once_per_changed_zone(provider: BuiltinProvider) -> None:
    async def serials() -> tuple[int, int]:
        return serial(await ask(provider, ZONE, "SOA")), serial(await ask(provider, OTHER, "SOA"))

    start = await serials()
    a, b = key(provider, ZONE, "a", RecordType.A), key(provider, ZONE, "b", RecordType.A)
    await provider.apply([Change(a, 60, None, ("192.0.2.1",)), Change(b, 60, None, ("192.0.2.2",))])
    assert await serials() == (start[0] + 1, start[1])
    await provider.apply([Change(a, 60, None, ("192.0.2.1",))])  # no change: same serial
    assert await serials() == (start[0] + 1, start[1])
    await provider.apply([Change(a, 61, None, ("192.0.2.1",))])  # a TTL change is a change
    assert await serials() == (start[0] + 2, start[1])
    c = key(provider, OTHER, "c", RecordType.A)
    await provider.apply([Change(a, 60, None, ("192.0.2.3",)), Change(c, 60, None, ("192.0.2.4",))])
    assert await serials() == (start[0] + 3, start[1] + 1)


async def test_negative_answers(provider: BuiltinProvider) -> None:
    await publish(provider, "v4only", RecordType.A, "192.0.2.1")
    await publish(provider, "deep.ent", RecordType.A, "192.0.2.2")

    for name, rcode in [
        (f"v4only.{ZONE}", dns.rcode.NOERROR),  # NODATA: the name exists, not this type
        (f"ent.{ZONE}", dns.rcode.NOERROR),  # empty non-terminal (RFC 8020)
        (f"missing.{ZONE}", dns.rcode.NXDOMAIN),
        (f"below.v4only.{ZONE}", dns.rcode.NXDOMAIN),
    ]:
        r = await ask(provider, name, "AAAA")
        assert (r.rcode(), r.answer) == (rcode, []), name
        assert r.flags & dns.flags.AA
        assert [rr.rdtype for rr in r.authority] == [dns.rdatatype.SOA]
        assert r.authority[0].ttl <= 60

    for name in ["www.example.net", "example.test.evil", "test", "."]:
        r = await ask(provider, name, "A")
        assert r.rcode() == dns.rcode.REFUSED and not r.flags & dns.flags.AA, name
    r = await ask(provider, ZONE, "A", rdclass=dns.rdataclass.CH)
    assert r.rcode() == dns.rcode.REFUSED


async def test_update_is_notimp_and_any_lists_rrsets(provider: BuiltinProvider) -> None:
    update = dns.update.UpdateMessage(ZONE)
    update.add("www", 60, "A", "192.0.2.66")
    r = await dns.asyncquery.udp(update, "127.0.0.1", timeout=3, port=provider.port)
    assert r.rcode() == dns.rcode.NOTIMP
    assert (await provider.read([key(provider, ZONE, "www", RecordType.A)])) == {
        key(provider, ZONE, "www", RecordType.A): None
    }

    await publish(provider, "both", RecordType.A, "192.0.2.1")
    await publish(provider, "both", RecordType.AAAA, "2001:db8::1")
    r = await ask(provider, f"both.{ZONE}", "ANY")
    assert set(rrset_values(r)) == {("both.example.test.", "A"), ("both.example.test.", "AAAA")}

    r = await ask(provider, ZONE, "AXFR", tcp=True)
    assert r.rcode() == dns.rcode.REFUSED


async def test_large_udp_answers_are_truncated(provider: BuiltinProvider) -> None:
    many = [f"2001:db8::{i:x}" for i in range(1, 31)]  # ~1 KB of answer
    await publish(provider, "big", RecordType.AAAA, *many)
    r = await ask(provider, f"big.{ZONE}", "AAAA")  # no EDNS: 512 bytes
    assert r.flags & dns.flags.TC
    r = await ask(provider, f"big.{ZONE}", "AAAA", use_edns=0, payload=1232)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 30
    r = await ask(provider, f"big.{ZONE}", "AAAA", tcp=True)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 30

    r = await ask(provider, f"big.{ZONE}", "AAAA", use_edns=1)
    assert r.rcode() == dns.rcode.BADVERS


# -- robustness -----------------------------------------------------------------------------------


async def test_malformed_packets_do_not_kill_the_server(provider: BuiltinProvider) -> None:
    await publish(provider, "www", RecordType.A, "192.0.2.10")
    good = dns.message.make_query(f"www.{ZONE}", "A").to_wire()
    response = bytearray(good)
    response[2] |= 0x80  # QR: a response sent to a server must not be answered (reflection)
    junk = [b"", b"\x00", b"\xff" * 11, b"garbage" * 40, good[:-3], bytes(response)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        for packet in junk:
            s.sendto(packet, ("127.0.0.1", provider.port))
        await asyncio.sleep(0.05)
        with pytest.raises(BlockingIOError):
            s.recv(4096)  # none of them got an answer

    reader, writer = await asyncio.open_connection("127.0.0.1", provider.port)
    writer.write(b"\x00\x05hello")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 3) == b""  # closed on garbage
    writer.close()
    await writer.wait_closed()

    for tcp in (False, True):
        r = await ask(provider, f"www.{ZONE}", tcp=tcp)
        assert rrset_values(r) == {("www.example.test.", "A"): {"192.0.2.10"}}


async def test_tcp_pipelining_and_idle_timeout(provider: BuiltinProvider) -> None:
    await publish(provider, "www", RecordType.A, "192.0.2.10")
    provider.tcp_idle_timeout = 0.3
    reader, writer = await asyncio.open_connection("127.0.0.1", provider.port)
    queries = [dns.message.make_query(f"www.{ZONE}", t) for t in ("A", "AAAA", "SOA")]
    writer.write(b"".join(q.to_wire(prepend_length=True) for q in queries))
    await writer.drain()
    for q in queries:
        size = int.from_bytes(await reader.readexactly(2), "big")
        r = dns.message.from_wire(await reader.readexactly(size))
        assert r.id == q.id and r.question == q.question
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert 0.2 < loop.time() - started < 3
    writer.close()
    await writer.wait_closed()


async def test_aclose_closes_open_connections(store: Store) -> None:
    p = make(store)
    await p.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
    await p.aclose()
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
    await writer.wait_closed()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        assert s.connect_ex(("127.0.0.1", p.port)) != 0


async def test_fixed_port_in_use_is_a_clear_error(provider: BuiltinProvider, store: Store) -> None:
    config = BuiltinProviderConfig("lab2", HostPort("127.0.0.1", provider.port))
    other = BuiltinProvider(config, [ZONE], store)
    with pytest.raises(ProviderError) as info:
        await other.start()
    assert info.value.kind == "bind" and str(provider.port) in str(info.value)
    await other.aclose()


async def test_ipv6_loopback(store: Store) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    p = make(store, host="::1")
    await p.start()
    try:
        assert p.bound.host == "::1" and p.port > 0
        await publish(p, "www", RecordType.AAAA, "2001:db8::1")
        for tcp in (False, True):
            r = await ask(p, f"www.{ZONE}", "AAAA", tcp=tcp)
            assert rrset_values(r) == {("www.example.test.", "AAAA"): {"2001:db8::1"}}
        r = await ask(p, ZONE, "NS")
        assert rrset_values(r, "additional") == {("ns1.example.test.", "AAAA"): {"::1"}}
    finally:
        await p.aclose()


# -- persistence ----------------------------------------------------------------------------------


async def test_records_and_serials_survive_a_restart(store: Store) -> None:
    first = make(store)
    await first.start()
    await publish(first, "www", RecordType.A, "192.0.2.10", ttl=42)
    await publish(first, "alias", RecordType.CNAME, f"www.{ZONE}")
    saved = store.read_json("builtin-lab.json")  # on disk as soon as apply returned
    assert saved is not None
    assert saved["zones"][ZONE]["records"][f"www.{ZONE}"]["A"] == {
        "ttl": 42,
        "values": ["192.0.2.10"],
    }
    before = await ask(first, f"alias.{ZONE}")
    before_serial = serial(await ask(first, ZONE, "SOA"))
    await first.aclose()

    second = make(Store(store.state_dir))
    await second.start()
    try:
        after = await ask(second, f"alias.{ZONE}")
        assert rrset_values(after) == rrset_values(before)
        assert serial(await ask(second, ZONE, "SOA")) == before_serial
        www = key(second, ZONE, "www", RecordType.A)
        assert (await second.read([www]))[www] == RecordSet(
            f"www.{ZONE}", RecordType.A, 42, ("192.0.2.10",)
        )
    finally:
        await second.aclose()


async def test_unserved_zone_is_kept_but_not_served(store: Store) -> None:
    both = make(store)
    await both.start()
    await both.apply([Change(key(both, OTHER, "kept", RecordType.A), 60, None, ("192.0.2.5",))])
    await both.aclose()

    only_main = make(store, zones=(ZONE,))
    await only_main.start()
    try:
        assert (await ask(only_main, f"kept.{OTHER}")).rcode() == dns.rcode.REFUSED
        await publish(only_main, "www", RecordType.A, "192.0.2.10")  # rewrites the file
    finally:
        await only_main.aclose()

    again = make(store)
    await again.start()
    try:
        r = await ask(again, f"kept.{OTHER}")
        assert rrset_values(r) == {("kept.other.test.", "A"): {"192.0.2.5"}}
        assert rrset_values(await ask(again, f"www.{ZONE}")) == {
            ("www.example.test.", "A"): {"192.0.2.10"}
        }
    finally:
        await again.aclose()


@pytest.mark.parametrize(
    "content",
    [
        "{",
        json.dumps({"version": 99, "zones": {}}),
        json.dumps({"version": 1, "zones": {ZONE: {"serial": 1, "records": {"x": {"MX": {}}}}}}),
        json.dumps(
            {
                "version": 1,
                "zones": {
                    ZONE: {"serial": 1, "records": {"x": {"A": {"ttl": 1, "values": ["nope"]}}}}
                },
            }
        ),
    ],
)
def test_corrupt_zone_file_is_refused(store: Store, content: str) -> None:
    (store.state_dir / "builtin-lab.json").write_text(content)
    with pytest.raises(StoreCorruptError) as info:
        make(store)
    assert "builtin-lab.json" in str(info.value)
