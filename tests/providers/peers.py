"""The real DNS peers of the daemon tests as `tests.support.Peer`s: a BIND `named` (rfc2136),
moto's Route 53, the OVH fake, the Scaleway fake, the Hetzner fake and the Cloudflare fake.
Each gives the provider settings the daemon needs and a way to read what it published there,
without the daemon's own code."""

from __future__ import annotations

import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import dns.asyncquery
import pytest
from moto.server import ThreadedMotoServer

from tests.faults.dnsserver import UpdateServer
from tests.faults.dnsserver import Zone as DnsZone
from tests.providers.bind import KEY_NAME, BindServer
from tests.providers.fake_cloudflare import FakeCloudflare
from tests.providers.fake_cloudflare import ThreadedFake as ThreadedCloudflare
from tests.providers.fake_hetzner import FakeHetzner
from tests.providers.fake_hetzner import ThreadedFake as ThreadedHetzner
from tests.providers.fake_ovh import APP_SECRET, CONSUMER_KEY, FakeOvhThread, daemon_fake
from tests.providers.fake_scaleway import FakeScaleway, ThreadedFake
from tests.providers.route53_stub import isolate_aws_env
from tests.support import Peer, free_port

ZONE = "example.test"  # BIND's zone too (tests.providers.bind.ZONE)
SCW_TOKEN = "5d6e7f80-1a2b-4c3d-9e8f-a0b1c2d3e4f5"
HCLOUD_TOKEN = "hz-peer-0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c"
CF_TOKEN = "cf-lab-7e6d5c4b3a291807f6e5d4c3b2a19080"


def bind_peer(bind: BindServer, workdir: Path, *, verify: bool = False) -> Peer:
    """BIND through rfc2136 with its TSIG key read from a file; `verify=True` checks every
    change on BIND itself."""
    secret = workdir / "tsig.secret"
    secret.write_text(bind.secret + "\n")
    check = f'{{nameservers: ["127.0.0.1:{bind.port}"], timeout: 10s}}' if verify else "false"
    serial = bind.serial()

    def changed() -> None:
        assert bind.serial() > serial  # UPDATEs, not a zone file rewritten behind BIND's back

    return Peer(
        "bind",
        f"{{type: rfc2136, server: 127.0.0.1, port: {bind.port},"
        f' tsig: {{name: {KEY_NAME}, algorithm: hmac-sha256, secret: "${{file:{secret}}}"}},'
        f" verify: {check}, timeout: 5s,"
        " retry: {attempts: 3, initial: 50ms, max_delay: 200ms, deadline: 5s}}",
        bind.values,
        secrets=(bind.secret,),
        check=changed,
    )


@contextmanager
def ovh_peer(
    monkeypatch: pytest.MonkeyPatch, home: Path, *, settings: str = "", **fake: Any
) -> Iterator[tuple[Peer, FakeOvhThread]]:
    """The OVH fake in its own thread, application-key credentials from the environment.
    `settings` adds provider keys (", timeout: 2s"), `fake` goes to `FakeOvh`."""
    with daemon_fake(monkeypatch, home, ZONE, **fake) as server:

        def read(name: str) -> list[str]:
            return server.live(ZONE).get((name.removesuffix(f".{ZONE}"), "A")) or []

        def refreshed() -> None:  # staged records reach OVH's servers only on a refresh
            assert server.fake.count("POST", f"/domain/zone/{ZONE}/refresh$") >= 2

        peer = Peer(
            "ovh",
            f"{{type: ovh, endpoint: {server.fake.url},"
            ' application_key: "${FAILOVER_TEST_OVH_AK}",'
            ' application_secret: "${FAILOVER_TEST_OVH_AS}",'
            f' consumer_key: "${{FAILOVER_TEST_OVH_CK}}", verify: false{settings}}}',
            read,
            secrets=(APP_SECRET, CONSUMER_KEY),
            check=refreshed,
        )
        yield peer, server


@contextmanager
def scaleway_peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Peer, FakeScaleway]]:
    """The Scaleway fake in its own thread; every change stays pending for one poll."""
    monkeypatch.setenv("SCW_TEST_SECRET", SCW_TOKEN)
    fake = FakeScaleway({SCW_TOKEN: "write"}, pending_polls=1)
    fake.add_zone(ZONE)
    api = ThreadedFake(fake).start()

    def read(name: str) -> list[str]:
        found = api.rrset(ZONE, name.removesuffix(f".{ZONE}"), "A")
        return found[1] if found else []

    def authenticated() -> None:
        assert fake.seen and all(seen.authenticated for seen in fake.seen)
        found = api.rrset(ZONE, "shop", "A")
        assert found is not None and found[0] == 30  # the TTL asked for, not the API's default

    try:
        yield (
            Peer(
                "scw",
                f'{{type: scaleway, api_url: {fake.url}, secret_key: "${{SCW_TEST_SECRET}}",'
                " verify: false, timeout: 5s,"
                " retry: {attempts: 4, initial: 50ms, max_delay: 200ms, deadline: 5s}}",
                read,
                secrets=(SCW_TOKEN,),
                check=authenticated,
            ),
            fake,
        )
    finally:
        api.close()


@contextmanager
def moto_route53(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any, str]]:
    """moto's server with one empty hosted zone: (its URL, a boto3 client, the zone's id). The
    daemon finds dummy keys through the standard AWS credential chain (its inherited
    environment), never real AWS."""
    isolate_aws_env(monkeypatch)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        # moto's state is per process, shared with other test modules: start from an empty account
        reset = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=5).close()
        client = boto3.client("route53", endpoint_url=url, region_name="us-east-1")
        zone = client.create_hosted_zone(Name=f"{ZONE}.", CallerReference="e2e")["HostedZone"]
        yield url, client, zone["Id"]
    finally:
        server.stop()


@contextmanager
def route53_peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Peer, Any]]:
    """`moto_route53` as the daemon's `r53` provider."""
    with moto_route53(monkeypatch) as (url, client, zone_id):

        def read(name: str) -> list[str]:
            found = client.list_resource_record_sets(
                HostedZoneId=zone_id, StartRecordName=f"{name}.", StartRecordType="A", MaxItems="1"
            )["ResourceRecordSets"]
            if not found or found[0]["Name"] != f"{name}." or found[0]["Type"] != "A":
                return []
            return sorted(r["Value"] for r in found[0]["ResourceRecords"])

        def ttl_kept() -> None:  # an UPSERT of the whole set, not only of its values
            sets = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
            assert [s["TTL"] for s in sets if s["Type"] == "A"] == [30]

        yield (
            Peer(
                "r53",
                f'{{type: route53, endpoint_url: "{url}", verify: false, timeout: 5s,'
                " retry: {attempts: 3, initial: 100ms, max_delay: 500ms, deadline: 5s}}",
                read,
                check=ttl_kept,
            ),
            client,
        )


@contextmanager
def hetzner_peer(
    monkeypatch: pytest.MonkeyPatch, *, settings: str = "", **fake: Any
) -> Iterator[tuple[Peer, ThreadedHetzner]]:
    """The Hetzner fake in its own thread, its token from HCLOUD_TOKEN (the SDK's convention),
    every applied change mirrored to an authoritative DNS server the daemon verifies on.
    `settings` adds provider keys (", timeout: 2s"), `fake` goes to `FakeHetzner`."""
    monkeypatch.setenv("HCLOUD_TOKEN", HCLOUD_TOKEN)
    served = DnsZone(ZONE)
    dns = UpdateServer(served).start()
    options: dict[str, Any] = {"running_polls": 1, "updating_polls": 1, **fake}
    api = FakeHetzner(
        HCLOUD_TOKEN, mirror=lambda z, n, t, ttl, v: served.set(n, t, ttl, v), **options
    )
    api.add_zone(ZONE)
    server = ThreadedHetzner(api).start()

    def changed_through_the_api() -> None:  # actions awaited, the API and its DNS in step
        assert api.seen and all(seen.authenticated for seen in api.seen)
        assert server.run(lambda: api.rrset(ZONE, "shop", "A")) == (
            30,
            served.values(f"shop.{ZONE}"),
        )
        assert server.run(lambda: {a.status for a in api.actions.values()}) == {"success"}

    try:
        yield (
            Peer(
                "hz",
                f"{{type: hetzner, api_endpoint: {api.url},"
                f' verify: {{nameservers: ["{dns.address}"], timeout: 10s}}, timeout: 5s,'
                " retry: {attempts: 4, initial: 50ms, max_delay: 200ms, deadline: 5s}"
                f"{settings}}}",
                lambda name: served.values(name),
                secrets=(HCLOUD_TOKEN,),
                check=changed_through_the_api,
            ),
            server,
        )
    finally:
        server.close()
        dns.close()


def bind_mirror(
    bind: BindServer,
) -> Callable[[str, dict[tuple[str, str], tuple[int, list[str]]]], Awaitable[None]]:
    """What the Cloudflare fake committed, sent to BIND as one signed UPDATE: BIND plays
    Cloudflare's name servers, so verification asks a real authoritative server."""

    async def mirror(zone: str, rrsets: dict[tuple[str, str], tuple[int, list[str]]]) -> None:
        update = bind.update(zone)
        for (name, rtype), (ttl, values) in rrsets.items():
            if values:
                update.replace(f"{name}.", ttl, rtype, *values)
            else:
                update.delete(f"{name}.", rtype)
        await dns.asyncquery.tcp(update, "127.0.0.1", timeout=5, port=bind.port)

    return mirror


@contextmanager
def cloudflare_peer(
    monkeypatch: pytest.MonkeyPatch, bind: BindServer, *, settings: str = ""
) -> Iterator[tuple[Peer, FakeCloudflare]]:
    """The Cloudflare fake in its own thread, BIND kept in step as its name server; the daemon
    verifies every change on BIND. `settings` adds provider keys (", timeout: 2s")."""
    monkeypatch.setenv("CF_TEST_TOKEN", CF_TOKEN)
    fake = FakeCloudflare(CF_TOKEN, mirror=bind_mirror(bind))
    fake.add_zone(ZONE)
    api = ThreadedCloudflare(fake).start()

    def through_batches() -> None:
        assert fake.seen and all(seen.authenticated for seen in fake.seen)
        writes = {s.path.rsplit("/", 1)[-1] for s in fake.seen if s.method != "GET"}
        assert writes == {"batch"}
        assert api.rrset(ZONE, f"shop.{ZONE}") is not None
        assert api.rrset(ZONE, f"shop.{ZONE}")[0] == 30  # type: ignore[index]

    try:
        yield (
            Peer(
                "cf",
                f'{{type: cloudflare, base_url: "{fake.url}", api_token: "${{CF_TEST_TOKEN}}",'
                f' verify: {{nameservers: ["127.0.0.1:{bind.port}"], timeout: 10s}}, timeout: 5s,'
                " retry: {attempts: 3, initial: 50ms, max_delay: 200ms, deadline: 5s}"
                f"{settings}}}",
                bind.values,
                secrets=(CF_TOKEN,),
                check=through_batches,
            ),
            fake,
        )
    finally:
        api.close()
