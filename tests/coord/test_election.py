"""Leader election on a real 3-member etcd cluster: one leader, hand-over, takeover, quorum loss.

Bounds on waits are generous (a busy machine); what is asserted is who leads, never how fast.
Takeover times are printed (`-s`) for a feel of them; `bench/takeover.py` measures them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence

import pytest

from failover.coord.base import ChangeKind
from failover.coord.etcd import EtcdCoordinator
from tests.coord.conftest import TTL, MakeCoordinator, eventually
from tests.coord.etcd_cluster import EtcdCluster


def leaders(coords: Sequence[EtcdCoordinator]) -> list[EtcdCoordinator]:
    return [c for c in coords if c.is_leader()]


def one_leader(coords: Sequence[EtcdCoordinator]) -> EtcdCoordinator | None:
    found = leaders(coords)
    return found[0] if len(found) == 1 else None


@contextlib.asynccontextmanager
async def never_two_leaders(coords: Sequence[EtcdCoordinator]) -> AsyncIterator[list[int]]:
    """Sample `is_leader()` of all coordinators while the block runs: at no sample may two of
    them lead (the safety property; the lease deadline guarantees it within one process)."""
    seen: list[int] = []

    async def sample() -> None:
        while True:
            count = len(leaders(coords))
            seen.append(count)
            assert count <= 1, [c.condition() for c in coords]
            await asyncio.sleep(0.005)

    task = asyncio.create_task(sample())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert seen and max(seen) <= 1


async def started(make: MakeCoordinator, *names: str) -> list[EtcdCoordinator]:
    coords = [make(name) for name in names]
    for coord in coords:
        await coord.start()
    return coords


async def test_exactly_one_of_three_leads_and_the_others_follow_it(make: MakeCoordinator) -> None:
    coords = await started(make, "fo-a", "fo-b", "fo-c")
    async with never_two_leaders(coords):
        leader = await eventually(lambda: one_leader(coords), what="a leader")
        token = leader.fencing_token()
        assert token > 0 and leader.token_valid(token) and not leader.token_valid(token - 1)
        assert leader.condition() == "leader" and leader.leader_name() == leader.instance
        followers = [c for c in coords if c is not leader]
        await eventually(
            lambda: all(f.leader_name() == leader.instance for f in followers), what="followers"
        )
        for follower in followers:
            assert follower.condition() == f"follower of {leader.instance}"
            assert follower.fencing_token() == 0 and not follower.token_valid(token)
        await asyncio.sleep(TTL)  # several keepalives later: still the same one
        assert leaders(coords) == [leader] and leader.fencing_token() == token


async def test_start_returns_before_the_election_and_announces_the_win(
    make: MakeCoordinator,
) -> None:
    coord = make("fo-a")
    changes: list[ChangeKind] = []
    coord.on_change = changes.append
    await coord.start()
    assert not coord.is_leader()  # no lease yet: start() did not wait for it
    await eventually(coord.is_leader, what="the only instance to lead")
    assert "leader" in changes


async def test_a_clean_stop_hands_over_at_once(make: MakeCoordinator) -> None:
    coords = await started(make, "fo-a", "fo-b")
    async with never_two_leaders(coords):
        old = await eventually(lambda: one_leader(coords), what="a leader")
        other = next(c for c in coords if c is not old)
        await eventually(lambda: other.leader_name() == old.instance, what="a follower")
        token = old.fencing_token()
        stopped = time.monotonic()
        await old.aclose()
        # well before the lease (3s) or a periodic re-read (1s) could have told it
        await eventually(other.is_leader, timeout=10, what="the follower to take over")
        print(f"clean hand-over in {(time.monotonic() - stopped) * 1000:.0f} ms")
        assert other.fencing_token() > token


async def test_a_crashed_leader_is_replaced_after_its_lease(make: MakeCoordinator) -> None:
    coords = await started(make, "fo-a", "fo-b", "fo-c")
    async with never_two_leaders(coords):
        old = await eventually(lambda: one_leader(coords), what="a leader")
        token = old.fencing_token()
        crashed = time.monotonic()
        await old.aclose(revoke=False)  # its tasks die; the lease is left to expire
        rest = [c for c in coords if c is not old]
        new = await eventually(lambda: one_leader(rest), timeout=TTL * 5, what="a new leader")
        print(f"takeover after a crash in {time.monotonic() - crashed:.2f} s (lease {TTL}s)")
        assert new.fencing_token() > token
        await eventually(
            lambda: all(c.leader_name() == new.instance for c in rest), what="agreement"
        )


async def test_quorum_loss_stops_the_leader_and_nobody_leads_until_it_returns(
    cluster: EtcdCluster, make: MakeCoordinator
) -> None:
    coords = await started(make, "fo-a", "fo-b")
    async with never_two_leaders(coords):
        leader = await eventually(lambda: one_leader(coords), what="a leader")
        changes: list[ChangeKind] = []
        leader.on_change = changes.append
        cluster.kill(0)
        cluster.kill(1)
        lost = time.monotonic()
        await eventually(lambda: not leader.is_leader(), timeout=TTL * 3, what="the step-down")
        print(f"stepped down {time.monotonic() - lost:.2f} s after losing the quorum")
        # is_leader() turns false at the deadline; the change is told by a timer armed for that
        # same instant, which a loaded loop may run a moment later
        await eventually(lambda: "leader" in changes, timeout=5.0, what="the change told")
        assert leader.condition().startswith("no leader: ")
        # nobody leads while etcd has no quorum
        for _ in range(int(TTL / 0.1)):
            assert leaders(coords) == [], [c.condition() for c in coords]
            await asyncio.sleep(0.1)
        for coord in coords:
            assert not coord.token_valid(leader.fencing_token() or 1)
            assert coord.condition().startswith("no leader: etcd unreachable (no etcd endpoint")
        await asyncio.to_thread(cluster.restart, 0, wait=False)
        await asyncio.to_thread(cluster.restart, 1, wait=False)
        await asyncio.to_thread(cluster.wait_healthy)
        await eventually(lambda: one_leader(coords), timeout=TTL * 10, what="a leader again")


async def test_a_frozen_leader_stops_at_its_deadline_even_if_etcd_answers(
    make: MakeCoordinator,
) -> None:
    """What a SIGSTOP looks like from inside: the clock jumps past the lease deadline before
    the keeper could renew. `is_leader()` is false at once, whatever etcd would say."""
    jump = [0.0]
    coord = make("fo-a", clock=lambda: time.monotonic() + jump[0])
    await coord.start()
    await eventually(coord.is_leader, what="leading")
    token = coord.fencing_token()
    jump[0] = coord.lease_deadline() - coord.margin - time.monotonic()
    assert not coord.is_leader() and not coord.token_valid(token)
    assert coord.fencing_token() == 0
    assert coord.condition() == (
        "no leader: lease renewal late; this instance stopped writing at its lease deadline"
    )


async def test_the_first_endpoint_dead_the_next_ones_are_used(
    cluster: EtcdCluster, make: MakeCoordinator
) -> None:
    cluster.kill(0)
    coords = [make(name) for name in ("fo-a", "fo-b")]
    for coord in coords:
        await coord.start()
    leader = await eventually(lambda: one_leader(coords), what="a leader")
    assert leader.config.endpoints[0] == cluster.members[0].endpoint
    other = next(c for c in coords if c is not leader)
    await eventually(lambda: other.leader_name() == leader.instance, what="a follower")


@pytest.mark.parametrize("victim", ["leader", "follower"])
async def test_losing_one_member_changes_nothing(
    cluster: EtcdCluster, make: MakeCoordinator, victim: str
) -> None:
    """With every endpoint configured, the member the clients talk to may die: they move on
    (measured: with one endpoint, losing that member left the client leaderless)."""
    coords = await started(make, "fo-a", "fo-b")
    async with never_two_leaders(coords):
        leader = await eventually(lambda: one_leader(coords), what="a leader")
        token = leader.fencing_token()
        current = leader._client.endpoint if victim == "leader" else cluster.endpoints[1]
        cluster.kill(cluster.endpoints.index(current))
        await asyncio.sleep(TTL * 2)  # several keepalives, through the remaining members
        await eventually(leader.is_leader, timeout=TTL * 3, what="still leading")
        assert leader.fencing_token() == token
