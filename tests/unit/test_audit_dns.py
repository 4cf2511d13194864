"""`failover audit`'s DNS delegation checks: real NS queries to a small server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest

from failover.audit import AuditReport, Severity, resolver_lookup, run_audit
from failover.audit.dnscheck import ns_operator
from failover.config.types import BuiltinProviderConfig, HostPort
from failover.providers.builtin import BuiltinProvider
from failover.store import Store
from tests.unit.test_audit import CRIT, INFO, NOW, R0, R1, WARN, Cfg, base, found, load, shop


class _NsProtocol(asyncio.DatagramProtocol):
    def __init__(self, table: Mapping[str, list[str]]) -> None:
        self.table = table
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        zone = question.name.to_text().rstrip(".").lower()
        if zone.startswith("silent."):
            return  # a server that never answers: the lookup must time out, not hang
        response = dns.message.make_response(query)
        if zone in self.table:
            hosts = [f"{host}." for host in self.table[zone]]
            response.answer.append(dns.rrset.from_text_list(question.name, 300, "IN", "NS", hosts))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@asynccontextmanager
async def ns_server(table: Mapping[str, list[str]]) -> AsyncIterator[HostPort]:
    """A tiny DNS server on 127.0.0.1 answering NS queries from `table` (zones named silent.*
    get no answer, others NXDOMAIN)."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _NsProtocol(table), local_addr=("127.0.0.1", 0)
    )
    try:
        yield HostPort("127.0.0.1", transport.get_extra_info("sockname")[1])
    finally:
        transport.close()


@pytest.mark.parametrize(
    ("host", "operator"),
    [
        ("ns-1536.awsdns-00.co.uk.", "aws"),
        ("ns-12.awsdns-01.com", "aws"),
        ("dns10.ovh.net", "ovh"),
        ("ns10.ovh.net", "ovh"),
        ("dns200.anycast.me", "ovh"),
        ("ns0.dom.scw.cloud", "scaleway"),
        ("ns1.scw.cloud", "scaleway"),
        ("hydrogen.ns.hetzner.com.", "hetzner"),
        ("helium.ns.hetzner.de", "hetzner"),
        ("ns1.your-server.de", "hetzner"),
        ("ada.ns.cloudflare.com.", "cloudflare"),
        ("NS1.Example.COM.", "example.com"),
        ("ns2.example.co.uk", "example.co.uk"),
    ],
)
def test_ns_operator(host: str, operator: str) -> None:
    assert ns_operator(host) == operator


AWS_NS = ["ns-1.awsdns-01.com", "ns-2.awsdns-02.net"]
OVH_NS = ["dns10.ovh.net", "ns10.ovh.net"]


async def dns_audit(cfg: Cfg, table: Mapping[str, list[str]], timeout: float = 5.0) -> AuditReport:
    async with ns_server(table) as server:
        return await run_audit(
            load(cfg),
            config_path="f.yaml",
            client=None,
            ns_lookup=resolver_lookup([server]),
            dns_timeout=timeout,
            now=NOW,
        )


def dns_found(report: AuditReport) -> set[tuple[str, str, Severity]]:
    dns_checks = {"ns-single-provider", "ns-provider-not-delegated", "ns-unchecked"}
    dns_checks.add("dns-provider-in-primary-location")
    return {item for item in found(report.findings) if item[0] in dns_checks}


@pytest.mark.parametrize(
    ("ns", "expected"),
    [
        # delegated to both providers' servers: the second copy is really served
        ([*AWS_NS, *OVH_NS], set()),
        # only Route 53 serves the zone: the OVH copy is dead weight, the flip depends on aws
        (
            AWS_NS,
            {
                ("ns-single-provider", "zone example.com", WARN),
                ("dns-provider-in-primary-location", R0, CRIT),
            },
        ),
        # only OVH serves it: the Route 53 copy is never served, but the flip avoids aws
        (
            OVH_NS,
            {
                ("ns-single-provider", "zone example.com", WARN),
                ("ns-provider-not-delegated", R0, WARN),
            },
        ),
        # a self-hosted pair plus another operator: neither provider is delegated
        (
            ["ns1.example.com", "ns.other.org"],
            {("ns-provider-not-delegated", R0, WARN), ("ns-provider-not-delegated", R1, WARN)},
        ),
    ],
)
async def test_ns_findings(ns: list[str], expected: set[tuple[str, str, Severity]]) -> None:
    report = await dns_audit(base(), {"example.com": ns})
    assert dns_found(report) == expected
    assert report.dns == "NS of 1 zone(s) queried"


CF_NS = ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"]


@pytest.mark.parametrize(
    ("ns", "expected"),
    [
        ([*AWS_NS, *CF_NS], set()),  # Cloudflare's name servers serve its copy
        # the Cloudflare copy is never served: the flip depends on aws alone
        (
            AWS_NS,
            {
                ("ns-single-provider", "zone example.com", WARN),
                ("dns-provider-in-primary-location", R0, CRIT),
            },
        ),
        # only Cloudflare serves it: the Route 53 copy is dead weight
        (
            CF_NS,
            {
                ("ns-single-provider", "zone example.com", WARN),
                ("ns-provider-not-delegated", R0, WARN),
            },
        ),
    ],
)
async def test_ns_findings_for_a_cloudflare_copy(
    ns: list[str], expected: set[tuple[str, str, Severity]]
) -> None:
    cfg = base()
    cfg["providers"] = {"r53": {"type": "route53"}, "cf": {"type": "cloudflare"}}
    shop(cfg)["records"][1] = {"provider": "cf", "zone": "example.com", "name": "shop.example.com"}
    assert dns_found(await dns_audit(cfg, {"example.com": ns})) == expected


async def test_ns_lookup_failures_degrade_to_info() -> None:
    cfg = base()
    shop(cfg)["records"][1]["zone"] = "silent.example"
    shop(cfg)["records"][1]["name"] = "shop.silent.example"
    report = await dns_audit(cfg, {}, timeout=0.3)
    unchecked = {f.subject: f.detail for f in report.findings if f.check == "ns-unchecked"}
    assert set(unchecked) == {"zone example.com", "zone silent.example"}
    assert "NXDOMAIN" in unchecked["zone example.com"]
    assert "no answer within 300ms" in unchecked["zone silent.example"]
    assert all(f.severity is INFO for f in report.findings if f.check == "ns-unchecked")
    assert report.dns == "NS of 2 zone(s) queried, 2 failed"


async def test_ns_of_the_builtin_server(tmp_path: Path) -> None:
    """The builtin provider serves NS ns1.<zone> for its zones: one operator."""
    listen = BuiltinProviderConfig("lab", HostPort("127.0.0.1", 0))
    provider = BuiltinProvider(listen, ["example.com"], Store(tmp_path))
    await provider.start()
    try:
        lookup = resolver_lookup([provider.bound])
        report = await run_audit(
            load(base()), config_path="f.yaml", client=None, ns_lookup=lookup, now=NOW
        )
    finally:
        await provider.aclose()
    single = [f for f in report.findings if f.check == "ns-single-provider"]
    assert [(f.subject, f.title) for f in single] == [
        ("zone example.com", "every name server of example.com is run by example.com")
    ]
    assert "ns1.example.com" in single[0].detail
