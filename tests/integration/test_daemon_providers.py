"""The real daemon fails a service over through every real DNS peer: the builtin server, BIND
(rfc2136), moto (route53), the OVH fake, the Scaleway fake, the Hetzner fake and the Cloudflare
fake (with BIND as its name server). One scenario for all of them, then what is particular to a
peer: BIND's existing records and hand edits, Scaleway's throttling, Hetzner's and Cloudflare's
retries, Cloudflare's proxied records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.providers.bind import BindServer
from tests.providers.fake_cloudflare import EDGE, FakeCloudflare
from tests.providers.peers import (
    CF_TOKEN,
    HCLOUD_TOKEN,
    ZONE,
    bind_peer,
    cloudflare_peer,
    hetzner_peer,
    ovh_peer,
    route53_peer,
    scaleway_peer,
)
from tests.support import Lab, Peer, builtin_peer, cli, metric_value, wait_until

PRIMARY, SECONDARY = "127.0.0.21", "127.0.0.22"
HAND = "192.0.2.77"  # a value no target has


@pytest.fixture(scope="module")
def bind_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    server = BindServer(tmp_path_factory.mktemp("bind")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bind(bind_server: BindServer) -> BindServer:
    """The module's BIND with none of the names the tests publish (a test starts from scratch)."""
    wipe = bind_server.update()
    for name in ("shop", "api"):
        wipe.delete(name, "A")
    bind_server.send(wipe)
    return bind_server


@pytest.fixture(
    params=["builtin", "rfc2136", "route53", "ovh", "scaleway", "hetzner", "cloudflare"]
)
def peer(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Peer]:
    if request.param == "builtin":
        yield builtin_peer(verify=True)
    elif request.param == "rfc2136":
        yield bind_peer(request.getfixturevalue("bind"), tmp_path, verify=True)
    elif request.param == "route53":
        with route53_peer(monkeypatch) as (found, _):
            yield found
    elif request.param == "ovh":
        with ovh_peer(monkeypatch, tmp_path, deploy_delay=0.2) as (found, _):
            yield found
    elif request.param == "hetzner":
        with hetzner_peer(monkeypatch) as (found, _):
            yield found
    elif request.param == "cloudflare":
        with cloudflare_peer(monkeypatch, request.getfixturevalue("bind")) as (found, _):
            yield found
    else:
        with scaleway_peer(monkeypatch) as (found, _):
            yield found


def test_daemon_fails_over_through_the_peer(peer: Peer, tmp_path: Path) -> None:
    """Publish the primary at the peer; the primary dies; the secondary is published, confirmed
    (and verified on the authoritative server where the peer has one) and reported everywhere."""
    with Lab(tmp_path, peer, addresses=(PRIMARY, SECONDARY)) as lab:
        lab.start()
        lab.wait_answer(PRIMARY)
        lab.primary.stop()
        lab.wait_answer(SECONDARY)

        def confirmed() -> bool:  # journalled once the peer says the change is in sync
            return any(
                e["kind"] == "verify" and e["to"] == "secondary" and e["result"] == "ok"
                for e in lab.history()
            )

        wait_until(confirmed, 20, "the change to the secondary confirmed")
        verify = [e for e in lab.history() if e["kind"] == "verify"][-1]
        verifies = "verify: false" not in peer.settings
        assert verify["providers"][0]["verified"] is (True if verifies else None)
        shop = lab.service()
        assert shop["active"] == "secondary"
        assert shop["records"][0]["provider"] == peer.name
        assert shop["records"][0]["values"] == [SECONDARY]
        assert shop["records"][0]["in_sync"] is True
        switch = [e for e in lab.history() if e["kind"] == "switch"][-1]
        assert (switch["from"], switch["to"], switch["trigger"], switch["result"]) == (
            "primary",
            "secondary",
            "auto",
            "ok",
        )
        metrics = lab.metrics()
        changes = metric_value(
            metrics, "failover_dns_changes_total", provider=peer.name, result="ok"
        )
        assert (changes or 0) >= 2  # the publication and the switch
        assert metric_value(metrics, "failover_active_target", target="secondary") == 1
        peer.check()
        assert lab.stop() == 0
    log = lab.log()
    assert "Traceback" not in log
    for secret in peer.secrets:
        assert secret not in log


# --- BIND ----------------------------------------------------------------------------------------


def test_bind_record_is_created_or_adopted_then_both_fail_over(
    bind: BindServer, tmp_path: Path
) -> None:
    """`shop` has no record yet: the daemon creates it with the first UP target. `api` already
    has one, written by hand with the primary's address: nothing moves at start-up."""
    hand = bind.update()
    hand.add("api", 30, "A", PRIMARY)
    bind.send(hand)
    serial = bind.serial()
    with Lab(
        tmp_path,
        bind_peer(bind, tmp_path),
        addresses=(PRIMARY, SECONDARY),
        services=("shop", "api"),
    ) as lab:
        lab.start()
        lab.wait_answer(PRIMARY, "shop")
        assert lab.answer("api") == [PRIMARY]
        assert bind.serial() == serial + 1  # only the creation of shop changed the zone

        lab.primary.stop()
        for name in ("shop", "api"):
            lab.wait_answer(SECONDARY, name)
        for name in ("shop", "api"):
            svc = lab.wait_service(lambda s: s["active"] == "secondary", "status", name)
            assert svc["records"][0]["values"] == [SECONDARY]


def test_a_hand_edit_at_bind_is_drift_and_is_not_overwritten(
    bind: BindServer, tmp_path: Path
) -> None:
    """Drift: DNS that matches no target is reported and alarmed, never overwritten by
    automation; `promote --force` takes it over."""
    peer = bind_peer(bind, tmp_path)
    with Lab(
        tmp_path, peer, addresses=(PRIMARY, SECONDARY), instance_extra=", resync_interval: 300ms"
    ) as lab:
        lab.start()
        lab.wait_answer(PRIMARY)

        def edit(value: str) -> None:  # an operator's nsupdate, signed with the zone's key
            update = bind.update()
            update.replace("shop", 30, "A", value)
            bind.send(update)

        edit(HAND)
        shop = lab.wait_service(lambda s: "drift" in s["alarms"], "the drift alarm")
        assert shop["active"] is None and shop["published"]["kind"] == "drift"
        assert HAND in shop["published"]["detail"]
        assert "not overwriting" in shop["reason"]
        drift = [e for e in lab.history() if e["kind"] == "drift"]
        assert len(drift) == 1 and drift[0]["trigger"] == "auto"

        # the daemon keeps reading the zone (it sees a second edit) and keeps its hands off
        edit("192.0.2.78")
        lab.wait_service(lambda s: s["records"][0]["values"] == ["192.0.2.78"], "the re-read")
        lab.primary.stop()  # even an incident does not make automation take the record back
        lab.wait_health("primary", "down")
        time.sleep(2.0)  # several resync intervals and decision rounds
        assert bind.values(f"shop.{ZONE}") == ["192.0.2.78"]
        assert "drift" in lab.service()["alarms"]
        assert not [e for e in lab.history() if e["kind"] == "switch"]

        refused = lab.cli("promote", "shop", "secondary", "--reason", "take back", "--yes")
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "drift" in refused.stderr
        assert bind.values(f"shop.{ZONE}") == ["192.0.2.78"]

        forced = lab.cli(
            "promote", "shop", "secondary", "--reason", "take back", "--force", "--yes"
        )
        assert forced.returncode == 0, forced.stdout + forced.stderr
        lab.wait_answer(SECONDARY)
        shop = lab.wait_service(lambda s: "drift" not in s["alarms"], "the drift alarm to clear")
        assert shop["active"] == "secondary" and shop["mode"] == "pinned"
        switch = [e for e in lab.history() if e["kind"] == "switch"][-1]
        assert (switch["to"], switch["trigger"], switch["result"]) == ("secondary", "manual", "ok")


# --- Scaleway -------------------------------------------------------------------------------------


def test_scaleway_throttling_is_waited_out_retried_and_counted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with (
        scaleway_peer(monkeypatch) as (peer, fake),
        Lab(tmp_path, peer, addresses=(PRIMARY, SECONDARY)) as lab,
    ):
        lab.start()
        lab.wait_answer(PRIMARY)
        # the failover PATCH is throttled once: the daemon must wait and retry, and count it
        fake.inject(
            "PATCH",
            "/records",
            status=429,
            headers={"Retry-After": "1"},
            body={"message": "rate limit exceeded", "type": "too_many_requests"},
        )
        lab.primary.stop()
        lab.wait_answer(SECONDARY, timeout=30)
        lab.wait_service(
            lambda s: s["active"] == "secondary" and s["records"][0]["in_sync"],
            "status to report the secondary in sync",
        )
        throttled = lab.metric("failover_provider_errors_total", provider="scw", kind="throttling")
        assert throttled == 1
        patched = [c["set"]["id_fields"] for s in fake.calls("PATCH") for c in s.body["changes"]]
        assert patched == [{"name": "shop", "type": "A"}] * 3  # published, throttled, retried


# --- Hetzner --------------------------------------------------------------------------------------


def test_hetzner_throttling_and_5xx_are_retried_and_counted_and_the_token_stays_hidden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with (
        hetzner_peer(monkeypatch) as (peer, api),
        Lab(tmp_path, peer, addresses=(PRIMARY, SECONDARY)) as lab,
    ):
        lab.start()
        lab.wait_answer(PRIMARY)
        # the failover's set_records is throttled once, its action poll answered 503 once
        api.run(
            lambda: api.fake.inject(
                "POST",
                "set_records",
                status=429,
                code="rate_limit_exceeded",
                message="limit reached",
            )
        )
        api.run(lambda: api.fake.inject("GET", "/actions/", status=503, code="unavailable"))
        lab.primary.stop()
        lab.wait_answer(SECONDARY, timeout=30)
        lab.wait_service(
            lambda s: s["active"] == "secondary" and s["records"][0]["in_sync"],
            "status to report the secondary in sync",
        )
        assert lab.metric("failover_provider_errors_total", provider="hz", kind="throttling") == 1
        assert lab.metric("failover_provider_errors_total", provider="hz", kind="server") == 1
        posts = api.run(lambda: [s.path.rsplit("/", 1)[-1] for s in api.fake.calls("POST")])
        assert posts == ["rrsets", "set_records", "set_records"]  # one attempt each: SDK's off
        seen = [lab.cli("status", "--json").stdout, lab.cli("history", "--json").stdout]
        seen.append(lab.metrics())
        for text in seen:
            assert HCLOUD_TOKEN not in text
        assert lab.stop() == 0
    assert HCLOUD_TOKEN not in lab.log()


def test_hetzner_without_a_token_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with hetzner_peer(monkeypatch) as (peer, _), Lab(tmp_path, peer) as lab:
        monkeypatch.delenv("HCLOUD_TOKEN")
        done = cli("run", "-c", str(lab.config))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "providers.hz:" in done.stderr and "HCLOUD_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr


# --- Cloudflare -----------------------------------------------------------------------------------


def test_cloudflare_promote_direct_while_the_daemon_is_down(
    bind: BindServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`promote --direct` writes through the Cloudflare API itself (one batch), BIND serves it,
    and the token comes from $CLOUDFLARE_API_TOKEN when the config names none."""
    with cloudflare_peer(monkeypatch, bind) as (peer, fake):
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CF_TOKEN)
        peer.settings = peer.settings.replace(' api_token: "${CF_TEST_TOKEN}",', "")
        with Lab(tmp_path, peer, addresses=(PRIMARY, SECONDARY)) as lab:
            lab.start()
            lab.wait_answer(PRIMARY)
            assert lab.stop() == 0
            batches = len(fake.calls("POST", "/batch"))
            done = cli(
                "promote", "shop", "secondary", "--reason", "cf", "--direct", "--yes",
                "-c", str(lab.config),
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            assert bind.values(f"shop.{ZONE}") == [SECONDARY]  # verified there, too
            assert len(fake.calls("POST", "/batch")) == batches + 1
            assert CF_TOKEN not in done.stdout + done.stderr
            peer.check()


def test_cloudflare_proxied_record_is_verified_through_the_api_and_says_so(
    bind: BindServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`proxied` with `verify: api`: BIND answers Cloudflare's edge address (an authoritative
    query could never confirm the change), so the change is read back through the API, and
    status and the journal name that."""
    with cloudflare_peer(monkeypatch, bind) as (peer, fake):
        verify = f'verify: {{nameservers: ["127.0.0.1:{bind.port}"], timeout: 10s}}'
        peer.settings = peer.settings.replace(verify, f"verify: api, proxied: [shop.{ZONE}]")
        with Lab(tmp_path, peer, addresses=(PRIMARY, SECONDARY)) as lab:
            lab.start()
            wait_until(lambda: bind.values(f"shop.{ZONE}") == [EDGE], 20, "the edge address")
            lab.primary.stop()
            wait_until(lambda: fake_values(fake) == [SECONDARY], 20, "the secondary at Cloudflare")

            def confirmed() -> bool:
                return any(
                    e["kind"] == "verify" and e["to"] == "secondary" and e["result"] == "ok"
                    for e in lab.history()
                )

            wait_until(confirmed, 20, "the change to the secondary confirmed")
            verify_entry = [e for e in lab.history() if e["kind"] == "verify"][-1]
            (provider,) = verify_entry["providers"]
            assert provider["verified"] is True and provider["verified_by"] == "api"
            assert "verify: api" in provider["verify_reason"]
            record = lab.service()["records"][0]
            assert record["verify_method"] == "api" and record["values"] == [SECONDARY]
            assert bind.values(f"shop.{ZONE}") == [EDGE]
            status_text = lab.cli("status").stdout
            assert "in sync (verified through the API only)" in status_text
            assert "read back (API)" in lab.cli("history").stdout
            shown = json.dumps([lab.status(), lab.history()]) + lab.metrics()
            assert CF_TOKEN not in shown
            assert lab.stop() == 0
        log = lab.log()
        assert CF_TOKEN not in log and "Traceback" not in log
        assert "HTTP Request:" not in log  # httpx's line per request is kept out


def test_cloudflare_throttling_is_retried_and_counted(
    bind: BindServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with (
        cloudflare_peer(monkeypatch, bind) as (peer, fake),
        Lab(tmp_path, peer, addresses=(PRIMARY, SECONDARY)) as lab,
    ):
        lab.start()
        lab.wait_answer(PRIMARY)
        fake.throttle("POST", "/batch", retry_after=1)  # the failover's batch, once
        lab.primary.stop()
        lab.wait_answer(SECONDARY, timeout=30)
        lab.wait_service(
            lambda s: s["active"] == "secondary" and s["records"][0]["in_sync"],
            "status to report the secondary in sync",
        )
        throttled = lab.metric("failover_provider_errors_total", provider="cf", kind="throttling")
        assert throttled == 1
        assert len(fake.calls("POST", "/batch")) == 3  # published, throttled, retried


def test_cloudflare_without_a_token_is_a_configuration_error(
    bind: BindServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No `api_token` and no $CLOUDFLARE_API_TOKEN: the daemon refuses to start with exit 2,
    naming the provider and the variable (the registry's config/auth path), no traceback."""
    with cloudflare_peer(monkeypatch, bind) as (peer, _):
        monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
        peer.settings = peer.settings.replace(' api_token: "${CF_TEST_TOKEN}",', "")
        with Lab(tmp_path, peer) as lab:
            done = cli("run", "-c", str(lab.config))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "providers.cf:" in done.stderr and "CLOUDFLARE_API_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr


def fake_values(fake: FakeCloudflare) -> list[str]:
    found = fake.rrset(ZONE, f"shop.{ZONE}")
    return found[1] if found else []
