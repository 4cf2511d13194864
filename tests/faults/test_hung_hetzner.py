"""A hung Hetzner Cloud API delays only its own services (the blackholed-provider scenario of
test_blackholed_provider.py, through the hcloud SDK's threads instead of dropped packets).

Service `far` is published at a Hetzner fake whose every request hangs; `shop` is at the
builtin server. The SDK is synchronous: were a call made on the event loop, or without its
own thread pool and deadline, `shop` would wait for `far`'s 30 s timeout. The assertions are
causal: everything about `shop` happens while `far`'s read is still pending.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.providers.fake_hetzner import FakeHetzner, ThreadedFake
from tests.support import Lab, wait_until

TOKEN = "hz-hung-3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"


def test_a_hung_hetzner_api_delays_only_its_own_services(tmp_path: Path) -> None:
    fake = FakeHetzner(TOKEN)
    fake.add_zone("example.test")
    fake.inject("GET", "/zones", hang=True, times=1_000)
    api = ThreadedFake(fake).start()
    dead = (
        f'  dead: {{type: hetzner, api_endpoint: "{fake.url}", token: "${{FAILOVER_TEST_HZ}}",'
        " verify: false, timeout: 30s, retry: {attempts: 3, initial: 1s, max_delay: 5s,"
        " deadline: 60s}}"
    )
    try:
        with Lab(
            tmp_path,
            addresses=("127.0.0.63", "127.0.0.64"),
            instance="hz-1",
            services=("shop", "far"),
            record_at={"far": ("dead",)},
            more_providers=dead,
            policy="{failback: manual, cooldown: 2s, startup_grace: 2s}",
            env={"FAILOVER_TEST_HZ": TOKEN},
        ) as lab:
            lab.start(wait_ready=False)
            wait_until(lambda: lab.daemon.healthz(timeout=1.0)[0] == 200, 20, "the daemon alive")

            def far_still_unread() -> bool:
                return "dead (1 services)" in lab.daemon.readyz(timeout=2.0)[1]

            lab.wait_answer(lab.primary.host)
            assert far_still_unread()
            assert api.run(lambda: len(fake.calls("GET"))) >= 1  # far's read is under way
            time.sleep(3.0)  # the start-up grace runs out with the primary UP: kept
            assert lab.answer() == [lab.primary.host]
            assert lab.daemon.switches("shop") == []
            lab.primary.stop()  # an incident: shop fails over while far's read still hangs
            lab.wait_answer(lab.secondary.host)
            assert far_still_unread(), "shop's failover waited for the hung Hetzner API"
            far = lab.service("far")
            assert far["phase"] == "starting" and far["active"] is None
            # SIGTERM ends it although an SDK call is stuck in the provider's thread
            assert lab.stop() == 0
        assert "still hung in worker threads: hetzner-dead" in lab.log()
        assert TOKEN not in lab.log()
    finally:
        api.close()
