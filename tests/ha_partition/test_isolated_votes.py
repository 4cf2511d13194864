"""An isolated instance casts no DOWN vote: a real leader, two other vantage points in etcd.

The leader is a real daemon on a 1-member etcd; the two other instances are their views, put in
etcd by the test exactly as an instance publishes them (and kept fresh). The leader sees the
primary DOWN itself, fo-c sees it UP, fo-b sees it DOWN but believes itself cut off: one DOWN
vote counts, one UP, quorum 2 of 3, so no switch. fo-b's isolation clears: two DOWN votes, the
leader switches.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.coord.etcd_client import b64
from tests.coord.etcd_cluster import EtcdCluster, running_cluster
from tests.ha_partition.lab import hold
from tests.support import Lab, wait_until

PRIMARY, SECONDARY = "127.0.0.61", "127.0.0.62"


class Views:
    """Publish fake instances' views under `prefix`, every 0.3 s, until closed."""

    def __init__(self, endpoint: str, prefix: str) -> None:
        self.endpoint, self.prefix = endpoint, prefix
        self.views: dict[str, dict[str, object]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def set(self, name: str, primary: str, *, isolated: bool) -> None:
        self.views[name] = {
            "instance": name,
            "location": f"cloud-{name}",
            "isolated": isolated,
            "targets": {"shop": {"primary": primary, "secondary": "up"}},
        }
        self._put()

    def _put(self) -> None:
        for name, view in list(self.views.items()):
            body = {
                "key": b64(f"{self.prefix}/views/{name}"),
                "value": b64(json.dumps({**view, "at": time.time()})),
            }
            request = urllib.request.Request(
                f"{self.endpoint}/v3/kv/put", json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(request, timeout=5):
                pass

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            self._put()

    def __enter__(self) -> Views:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    with running_cluster(1) as cluster:
        yield cluster


def test_the_down_vote_of_an_isolated_instance_does_not_count(
    tmp_path: Path, etcd: EtcdCluster
) -> None:
    prefix = f"/iso-{uuid.uuid4().hex[:8]}"
    coordination = (
        "coordination:\n"
        f"  etcd: {{endpoints: [{etcd.endpoints[0]}], prefix: {prefix}, lease_ttl: 3s,"
        " timeout: 600ms}\n"
    )
    lab = Lab(
        tmp_path,
        addresses=(PRIMARY, SECONDARY),
        instance="fo-a",
        policy="{failback: manual, cooldown: 2s, startup_grace: 1s}",
        extra=coordination,
    )
    with lab, Views(etcd.endpoints[0], prefix) as views:
        views.set("fo-b", "up", isolated=False)
        views.set("fo-c", "up", isolated=False)
        lab.start()
        wait_until(lambda: lab.status()["leader"], 30, "fo-a to lead")
        lab.wait_answer(PRIMARY)

        lab.primary.stop()  # fo-a sees it DOWN itself
        views.set("fo-b", "down", isolated=True)  # fo-b too, but it believes itself cut off

        def tally() -> dict[str, str]:
            return dict(lab.service()["targets"]["primary"]["votes"])

        wait_until(
            lambda: tally() == {"fo-a": "down", "fo-b": "down", "fo-c": "up"}, 30, "the votes"
        )
        hold(3.0)  # a leader counting fo-b's DOWN would have switched by now
        assert lab.answer() == [PRIMARY]
        primary = lab.service()["targets"]["primary"]
        assert primary["decided"] == "unknown"  # 1 DOWN counted, 1 UP: no quorum either way
        assert lab.status()["instances"]["fo-b"]["isolated"] is True
        assert not [
            e for e in lab.history("shop") if e["kind"] == "switch" and e["to"] != "primary"
        ]

        views.set("fo-b", "down", isolated=False)  # its isolation clears: its DOWN counts
        lab.wait_answer(SECONDARY)
        assert lab.service()["targets"]["primary"]["decided"] == "down"
