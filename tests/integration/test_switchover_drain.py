"""Planned switchovers and drains end to end: a real daemon, a real BIND, the CLI.

What BIND serves is read straight from it (values and TTL), never through the daemon."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.providers.bind import BindServer
from tests.providers.peers import bind_peer
from tests.support import Lab, wait_until

PRIMARY, SECONDARY = "127.0.0.61", "127.0.0.62"
RECORD_TTL = 6


def served(bind: BindServer) -> tuple[tuple[str, ...], int] | None:
    """(values, TTL) BIND answers for the service's A record."""
    query = dns.message.make_query("shop.example.test", dns.rdatatype.A)
    response = dns.query.udp(query, "127.0.0.1", timeout=2, port=bind.port)
    for rrset in response.answer:
        return tuple(sorted(rr.to_text() for rr in rrset)), rrset.ttl
    return None


class Watch:
    """The distinct (values, TTL) BIND served, in order, sampled every 50 ms."""

    def __init__(self, bind: BindServer) -> None:
        self.bind = bind
        self.seen: list[tuple[tuple[str, ...], int]] = []

    def poll(self) -> tuple[tuple[str, ...], int] | None:
        now = served(self.bind)
        if now is not None and (not self.seen or self.seen[-1] != now):
            self.seen.append(now)
        return now

    def until(self, want: tuple[tuple[str, ...], int], timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.poll() == want:
                return
            time.sleep(0.05)
        raise AssertionError(f"BIND never served {want}; saw {self.seen}")


@pytest.fixture
def bind(tmp_path: Path) -> Iterator[BindServer]:
    server = BindServer(tmp_path / "bind").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def lab(tmp_path: Path, bind: BindServer) -> Iterator[Lab]:
    with Lab(
        tmp_path, bind_peer(bind, tmp_path, verify=True), addresses=(PRIMARY, SECONDARY)
    ) as lab:
        lab.config.write_text(lab.text.replace("ttl: 30}", f"ttl: {RECORD_TTL}}}"))
        lab.start()
        lab.wait_answer(PRIMARY)
        lab.wait_health("secondary", "up")
        yield lab


def steps(lab: Lab) -> list[str]:
    return [e.get("step") for e in lab.history("shop") if e["kind"] == "switchover"]


def test_switchover_lowers_switches_and_restores_the_ttl_at_bind(
    lab: Lab, bind: BindServer
) -> None:
    watch = Watch(bind)
    watch.until(((PRIMARY,), RECORD_TTL))
    dry = lab.cli("switchover", "shop", "secondary", "--reason", "move", "--ttl", "2s", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "lower" in dry.stdout and "restore" in dry.stdout
    assert served(bind) == ((PRIMARY,), RECORD_TTL)  # a dry run changes nothing

    running = lab.cli_background(
        "switchover", "shop", "secondary", "--reason", "move", "--ttl", "2s", "--yes", "--json"
    )
    watch.until(((SECONDARY,), RECORD_TTL))
    out, err = running.communicate(timeout=60)
    assert running.returncode == 0, out + err
    assert json.loads(out)["result"] == "switched"
    # lowered first, switched with the short TTL, restored after: never the new answer with
    # the long TTL before clients could follow
    assert watch.seen == [
        ((PRIMARY,), RECORD_TTL),
        ((PRIMARY,), 2),
        ((SECONDARY,), 2),
        ((SECONDARY,), RECORD_TTL),
    ]
    wait_until(lambda: lab.service()["switchover"] is None, 20, "switchover done")
    assert steps(lab) == ["scheduled", "lowered", "switched", "done"]
    text = lab.cli("history", "shop").stdout
    assert "switchover manual (none) -> secondary [lowered, ok]" in text, text
    assert lab.service()["pin"]["target"] == "secondary"
    # one switch of the published target; lowering and restoring the TTL are not switches
    switches = "failover_switches_total"
    assert lab.metric(switches, service="shop", to="secondary", trigger="manual") == 1
    for same in ("primary", "secondary"):
        assert lab.metric(switches, service="shop", **{"from": same, "to": same}) is None


def test_switchover_survives_a_kill_9_and_restores_the_ttl(lab: Lab, bind: BindServer) -> None:
    watch = Watch(bind)
    running = lab.cli_background(
        "switchover", "shop", "secondary", "--reason", "move", "--ttl", "3s", "--yes"
    )
    watch.until(((SECONDARY,), 3))  # switched, short TTL still published
    status = lab.service()["switchover"]
    assert status is not None and status["next_step"] in ("switch", "restore the TTL")
    text = lab.cli("status", "--utc").stdout
    assert "switchover: to secondary (TTL 3s)" in text and "; next: " in text
    lab.kill9()
    running.kill()
    running.communicate()
    assert served(bind) == ((SECONDARY,), 3)
    lab.start()  # the intent is on disk: the restore resumes
    watch.until(((SECONDARY,), RECORD_TTL))
    assert watch.seen[-2:] == [((SECONDARY,), 3), ((SECONDARY,), RECORD_TTL)]
    wait_until(lambda: lab.service()["switchover"] is None, 20, "switchover done")
    assert steps(lab)[-1] == "done"


def test_switchover_refused_when_the_target_is_not_up(lab: Lab, bind: BindServer) -> None:
    lab.secondary.stop()
    lab.wait_health("secondary", "down")
    refused = lab.cli("switchover", "shop", "secondary", "--reason", "x", "--yes")
    assert refused.returncode == 3, refused.stderr
    assert "target-not-up" in refused.stderr
    assert served(bind) == ((PRIMARY,), RECORD_TTL)
    assert lab.service()["switchover"] is None


def test_a_scheduled_switchover_waits_for_its_time_and_can_be_cancelled(
    lab: Lab, bind: BindServer
) -> None:
    args = ("switchover", "shop", "secondary", "--reason", "tonight", "--ttl", "2s", "--yes")
    bad = lab.cli(*args, "--at", "tonight")
    assert bad.returncode == 2 and "+10m" in bad.stderr
    assert lab.cli("switchover", "shop", "secondary").returncode == 2  # no --reason
    scheduled = lab.cli(*args, "--at", "+1h", "--json")
    assert scheduled.returncode == 0, scheduled.stderr
    assert json.loads(scheduled.stdout)["result"] == "scheduled"
    sw = lab.service()["switchover"]
    assert (sw["step"], sw["next_step"]) == ("scheduled", "lower the TTL")
    again = lab.cli(*args)
    assert again.returncode == 3 and "switchover-in-progress" in again.stderr
    time.sleep(1.0)
    assert served(bind) == ((PRIMARY,), RECORD_TTL)  # not before its time
    cancelled = lab.cli("switchover", "shop", "--cancel")
    assert cancelled.returncode == 0, cancelled.stderr
    wait_until(lambda: lab.service()["switchover"] is None, 20, "switchover gone")
    assert served(bind) == ((PRIMARY,), RECORD_TTL)
    assert steps(lab)[-2:] == ["cancelled", "done"]
    assert lab.cli("switchover", "shop", "--cancel").returncode == 1


def test_drain_moves_the_active_target_and_refuses_the_last_up(lab: Lab, bind: BindServer) -> None:
    drained = lab.cli("drain", "shop", "primary", "--reason", "kernel", "--for", "1h", "--json")
    assert drained.returncode == 0, drained.stderr
    body = json.loads(drained.stdout)
    assert body["verified"] is True and body["until"]
    assert served(bind) == ((SECONDARY,), RECORD_TTL)  # moved, verified at BIND before answering
    svc = lab.service()
    assert svc["targets"]["primary"]["drained"]["reason"] == "kernel"
    assert svc["targets"]["primary"]["health"] == "up"  # probes go on
    assert lab.metric("failover_target_drained", service="shop", target="primary") == 1
    assert lab.metric("failover_target_drained", service="shop", target="secondary") == 0
    text = lab.cli("status").stdout
    assert "drained:  primary (manual" in text and "kernel until" in text and "DRAINED" in text

    promote = lab.cli("promote", "shop", "primary", "--reason", "back", "--yes")
    assert promote.returncode == 3 and "drained (manual): kernel" in promote.stderr
    refused = lab.cli("drain", "shop", "secondary", "--reason", "oops")
    assert refused.returncode == 3, refused.stderr
    assert "last-up" in refused.stderr
    assert served(bind) == ((SECONDARY,), RECORD_TTL)

    undrained = lab.cli("undrain", "shop", "primary")
    assert undrained.returncode == 0, undrained.stderr
    again = lab.cli("undrain", "shop", "primary")
    assert again.returncode == 1 and "not drained" in again.stderr
    assert lab.metric("failover_target_drained", service="shop", target="primary") == 0
    assert "drain    manual primary" in lab.cli("history", "shop").stdout
    kinds = [(e["kind"], e.get("target")) for e in lab.history("shop")]
    assert ("drain", "primary") in kinds and ("undrain", "primary") in kinds


def test_a_maintenance_window_drains_the_primary_from_the_start(
    tmp_path: Path, bind: BindServer
) -> None:
    """A window open all week long: the secondary is published first, the journal says why."""
    with Lab(
        tmp_path, bind_peer(bind, tmp_path, verify=True), addresses=(PRIMARY, SECONDARY)
    ) as lab:
        window = (
            "\n        maintenance: {days: [mon, tue, wed, thu, fri, sat, sun],"
            ' window: "00:00-24:00", reason: "rack move"}'
        )
        lab.config.write_text(
            lab.text.replace(f'url: "{lab.primary.url}"}}]', f'url: "{lab.primary.url}"}}]{window}')
        )
        lab.start()
        lab.wait_answer(SECONDARY)
        lab.wait_health("primary", "up")  # its probes go on
        time.sleep(1.0)
        assert lab.answer() == [SECONDARY]
        drained = lab.service()["targets"]["primary"]["drained"]
        assert drained["source"] == "maintenance" and drained["reason"] == "rack move"
        assert ("drain", "maintenance") in [
            (e["kind"], e.get("actor")) for e in lab.history("shop")
        ]
        refused = lab.cli("undrain", "shop", "primary")
        assert refused.returncode == 1 and "maintenance window" in refused.stderr


def test_drain_survives_a_restart(lab: Lab, bind: BindServer) -> None:
    assert lab.cli("drain", "shop", "secondary", "--reason", "disk").returncode == 0
    lab.stop()
    lab.start()
    drained = lab.service()["targets"]["secondary"]["drained"]
    assert drained is not None and drained["reason"] == "disk"
    assert lab.cli("drain", "shop", "primary", "--reason", "x").returncode == 3  # last-up
    drill = lab.cli("drill", "shop", "--hold", "1s", "--yes")
    assert drill.returncode == 3 and "no other target of shop is UP" in drill.stderr
    drill = lab.cli("drill", "shop", "--to", "secondary", "--hold", "1s", "--yes")
    assert drill.returncode == 3 and "secondary is drained (disk)" in drill.stderr
    unknown = lab.cli("drain", "shop", "nowhere", "--reason", "x")
    assert unknown.returncode == 2 and "no target" in unknown.stderr
