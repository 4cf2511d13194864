"""A common-mode blip (every target fails for 2 s, then all recover together) switches nothing.

Before the recovery rule, the isolation guard cleared on the first success after the blip and
the first target to finish `rise` won: 7 of 8 trials moved the service to the secondary,
which merely came back a few milliseconds earlier.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.support import Lab, wait_until

TRIALS = 5


def test_common_mode_blips_switch_nothing(tmp_path: Path) -> None:
    with Lab(tmp_path, addresses=("127.0.0.41", "127.0.0.42")) as lab:
        primary, secondary = lab.primary, lab.secondary

        def healths() -> tuple[str, str]:
            return lab.health("primary"), lab.health("secondary")

        lab.start()
        lab.wait_answer(primary.host)
        wait_until(lambda: healths() == ("up", "up"), 20, "both targets UP")
        for _ in range(TRIALS):
            primary.status = secondary.status = 503  # both clouds fail at once …
            wait_until(lambda: healths() == ("down", "down"), 20, "both targets DOWN")
            time.sleep(2.0)
            secondary.status = 200  # … and recover together, the secondary a hair first
            time.sleep(0.1)
            primary.status = 200
            wait_until(lambda: healths() == ("up", "up"), 20, "both targets UP again")
            time.sleep(0.5)  # any decision taken on the recovery has landed by now
            assert lab.answer() == [primary.host]
    switches = lab.daemon.switches(None)
    assert switches == [], f"switched out of a common-mode blip: {switches}"
