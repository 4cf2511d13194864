"""A blackholed DNS provider delays only its own services, at start-up and at a restart.

Before the single background read path, start-up read every provider under the decision lock:
with one provider's API dropping packets, a service held by another, healthy provider was
published only after ~60 s, a restart mid-incident left the dead primary served as long, and
the start-up grace could run out and publish a secondary while the primary was UP. Here the
RFC 2136 server of service `far` is an address whose packets a network namespace drops; the
assertions are causal: everything about `shop` happens while `far`'s read is still pending.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.netns import blackhole
from tests.support import Lab, wait_until

RETRY = "retry: {attempts: 3, initial: 1s, max_delay: 5s, deadline: 60s}"


def dead_provider(kind: str, server: str) -> str:
    """A provider whose server drops every packet: each read waits its 30 s timeout. RFC 2136
    (DNS over TCP) or Cloudflare (its HTTPS API, here plain HTTP to the dead address)."""
    if kind == "cloudflare":
        return (
            f'  dead: {{type: cloudflare, base_url: "http://{server}:8080/client/v4",'
            f' api_token: "${{CF_DEAD_TOKEN}}", verify: false, timeout: 30s, {RETRY}}}'
        )
    return (
        f"  dead: {{type: rfc2136, server: {server}, verify: false, timeout: 30s,"
        ' tsig: {name: k, algorithm: hmac-sha256, secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},'
        f" {RETRY}}}"
    )


def lab(workdir: Path, dead: str, kind: str) -> Lab:
    """`shop` at the builtin server, `far` (same targets) at the blackholed provider."""
    return Lab(
        workdir,
        addresses=("127.0.0.61", "127.0.0.62"),
        instance="bh-1",
        services=("shop", "far"),
        record_at={"far": ("dead",)},
        more_providers=dead_provider(kind, dead),
        env={"CF_DEAD_TOKEN": "cf-dead-token"},
        policy="{failback: manual, cooldown: 2s, startup_grace: 2s}",
    )


def start(lab: Lab) -> None:
    """Returns once the daemon is alive: with a blackholed provider it is not ready for long."""
    lab.start(wait_ready=False)
    wait_until(lambda: lab.daemon.healthz(timeout=1.0)[0] == 200, 20, "the daemon to be alive")


def far_still_unread(lab: Lab) -> bool:
    return "dead (1 services)" in lab.daemon.readyz(timeout=2.0)[1]


@pytest.mark.parametrize("kind", ["rfc2136", "cloudflare"])
def test_a_blackholed_provider_delays_only_its_own_services(tmp_path: Path, kind: str) -> None:
    with blackhole() as dead, lab(tmp_path, dead, kind) as bh:
        primary, secondary = bh.primary, bh.secondary
        start(bh)
        # start-up: shop is published while far's provider has not answered
        bh.wait_answer(primary.host)
        assert far_still_unread(bh)
        # the start-up grace (2s) runs out with the primary UP: it is never replaced
        time.sleep(3.0)
        assert bh.answer() == [primary.host]
        assert bh.daemon.switches("shop") == []
        assert far_still_unread(bh)
        far = bh.service("far")
        assert far["phase"] == "starting"  # nothing decided from missing data
        assert far["active"] is None

        # restart in the middle of an incident: the primary died while we were down
        assert bh.stop() == 0
        primary.stop()
        start(bh)
        bh.wait_answer(secondary.host)
        assert far_still_unread(bh), "shop's failover waited for the blackholed read"
