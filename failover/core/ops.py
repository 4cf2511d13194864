"""The operator intents beyond a pin that survive restarts: drains and a planned switchover.

They live in `ServiceState` (persisted where pins are, shared in etcd with several instances),
so a leader that takes over or a daemon restarted mid-way finds them and carries them on.
Leaf module: the decision (`decide.py`) and the rules (`drain.py`, `switchover.py`) import it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Steps of a planned switchover, in order (shown by status, journalled as kind `switchover`).
STEP_SCHEDULED = "scheduled"  # waiting for --at
STEP_LOWERED = "lowered"  # the short TTL is published: waiting out the old one in caches
STEP_SWITCHED = "switched"  # the target is published (short TTL): waiting for verify and --ttl
STEP_RESTORE = "restore"  # publish the configured TTL again, now (also after any failure)
STEPS = (STEP_SCHEDULED, STEP_LOWERED, STEP_SWITCHED, STEP_RESTORE)


@dataclass(frozen=True)
class Drain:
    """`failover drain`: the target counts as unavailable for decisions until `until` (None:
    until `failover undrain`); its probes go on."""

    target: str
    reason: str
    actor: str
    at: float
    until: float | None = None


@dataclass(frozen=True)
class Switchover:
    """`failover switchover`: lower the TTL, wait out the old one, switch, restore the TTL.

    `step` says what has been done; `next_at` when the next step is due. `ttls` keeps the TTL
    each record had before it was lowered (by record key text), so the restore never depends on
    a read made after the change."""

    target: str
    reason: str
    actor: str
    ttl: int  # the short TTL
    step: str
    next_at: float  # when the next step is due (unix time)
    created_at: float
    origin: str | None = None  # the target published when the TTL was lowered
    old_ttl: int = 0  # the longest TTL that was lowered: how long caches may hold the old answer
