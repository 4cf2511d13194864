"""A flood of /metrics scrapes (issue 10, finding 2) must not starve the decision loop: with
healthy targets nothing switches and /healthz answers; when the primary dies, it fails over.

Hundreds of scrapers run in their own process (flood_support.py) against a daemon whose
metrics body is most of a megabyte. Before the fix every scrape rendered the registry on the
event loop: probes timed out, /healthz went unanswered and a failover took tens of seconds.
Outcomes only; the timings are in bench/faults_flood.py.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.faults.flood_support import Attacker, answer_time, fillers
from tests.support import Lab, TargetServer, wait_until

SCRAPERS = 200
FILLERS = 150  # about 0.9 MB of metrics


def test_a_scrape_flood_switches_nothing_and_does_not_hold_up_a_failover(
    tmp_path: Path,
) -> None:
    filler = TargetServer("127.0.3.3").start()
    lab = Lab(
        tmp_path,
        addresses=("127.0.3.1", "127.0.3.2"),
        instance="flood-1",
        more_services=fillers(filler, FILLERS),
    )
    primary, secondary, daemon = lab.primary, lab.secondary, lab.daemon
    flood: Attacker | None = None
    try:
        lab.start(ready_timeout=90)
        lab.wait_answer(primary.host, timeout=60)
        flood = Attacker("scrape", "--port", str(lab.metrics_port), "--count", str(SCRAPERS))
        assert flood.line() == "started"
        answers = []
        until = time.monotonic() + 6.0  # healthy targets under the flood
        while time.monotonic() < until:
            answers.append(answer_time(daemon, timeout=5.0))
            time.sleep(0.2)
        assert None not in answers, f"/healthz unanswered {answers.count(None)} times"
        assert daemon.switches() == [], "a false failover under the flood"
        assert lab.answer() == [primary.host]

        primary.stop()  # a real failure, still under the flood
        lab.wait_answer(secondary.host, timeout=30)
        assert answer_time(daemon, timeout=5.0) is not None
        served = flood.stop()
        flood = None
        assert '"scrapes": 0' not in served, "the flood never got a scrape served"
        [switch] = wait_until(daemon.switches, 10, "the switch in the journal")
        assert (switch["from"], switch["to"]) == ("primary", "secondary")
    finally:
        if flood is not None:
            flood.stop()
        lab.close()
        filler.close()
