"""Per-probe counters and per-target health."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.core.health import (
    ProbeState,
    TargetHealth,
    Vote,
    observe,
    quorum_health,
    quorum_size,
    target_health,
)
from failover.model import Health

U, D, N = Health.UP, Health.DOWN, Health.UNKNOWN


def run(
    results: str, fall: int = 3, rise: int = 2, start: ProbeState | None = None
) -> list[Health]:
    """Feed '+'/'-' results at t=1,2,3…; return the health after each."""
    state = start or ProbeState()
    out = []
    for i, ch in enumerate(results, start=1):
        state = observe(state, ch == "+", "ok" if ch == "+" else "timeout", float(i), fall, rise)
        out.append(state.health)
    return out


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ("+", [N]),
        ("++", [N, U]),
        ("--", [N, N]),
        ("---", [N, N, D]),
        ("-+-+-+", [N] * 6),  # never a full streak: stays UNKNOWN
        ("++-", [N, U, U]),  # UP holds until `fall` failures
        ("++--+---", [N, U, U, U, U, U, U, D]),  # a success resets the failure streak
        ("---+", [N, N, D, D]),  # DOWN holds until `rise` successes
        ("---+-++", [N, N, D, D, D, D, U]),
        ("++++---", [N, U, U, U, U, U, D]),
    ],
)
def test_fall_rise_table(results: str, expected: list[Health]) -> None:
    assert run(results) == expected


def test_fall_one_rise_one_follows_every_result() -> None:
    assert run("+-+-", fall=1, rise=1) == [U, D, U, D]


def test_counters_and_last_result() -> None:
    s = observe(ProbeState(), False, "timeout", 10.0, 3, 3)
    s = observe(s, False, "refused", 12.0, 3, 3)
    assert (s.failures, s.successes, s.failing_since) == (2, 0, 10.0)
    assert (s.last_ok, s.last_reason, s.last_at) == (False, "refused", 12.0)
    s = observe(s, True, "200 in 12ms", 14.0, 3, 3)
    assert (s.failures, s.successes, s.failing_since) == (0, 1, None)
    assert (s.last_ok, s.last_reason, s.last_at) == (True, "200 in 12ms", 14.0)
    s = observe(s, False, "timeout", 16.0, 3, 3)
    assert s.failing_since == 16.0  # a new streak starts a new failing_since


@pytest.mark.parametrize(("fall", "rise"), [(0, 1), (1, 0), (-1, 3)])
def test_thresholds_must_be_positive(fall: int, rise: int) -> None:
    with pytest.raises(ValueError):
        observe(ProbeState(), True, "ok", 0.0, fall, rise)


def probe(results: str, fall: int = 3, rise: int = 3, reason: str = "timeout") -> ProbeState:
    state = ProbeState()
    for i, ch in enumerate(results, start=1):
        state = observe(state, ch == "+", "ok" if ch == "+" else reason, float(i), fall, rise)
    return state


@pytest.mark.parametrize(
    ("probes", "health", "reason"),
    [
        ({}, N, "no probes configured"),
        ({"http": probe("+++")}, U, "probe http up"),
        ({"http": probe("+++"), "tcp": probe("+++")}, U, "all 2 probes up"),
        (
            {"http": probe("---", reason="status 503"), "tcp": probe("+++")},
            D,
            "probe http: status 503 (DOWN after 3 failures)",
        ),
        (
            {"http": probe("----"), "tcp": probe("---")},
            D,
            "probe http: timeout (DOWN after 4 failures); also DOWN: tcp",
        ),
        ({"http": probe("---+")}, D, "probe http: DOWN, recovering (1/3 successes)"),
        ({"http": probe("+++"), "tcp": probe("+")}, N, "waiting: probe tcp has 1/3 successes"),
        ({"tcp": probe("--")}, N, "waiting: probe tcp has 2/3 failures (timeout)"),
        ({"tcp": ProbeState()}, N, "waiting: probe tcp has no results yet"),
        (
            {"a": ProbeState(), "b": ProbeState()},
            N,
            "waiting: probe a has no results yet; also waiting: b",
        ),
        (
            {"http": probe("---"), "tcp": ProbeState()},
            D,
            "probe http: timeout (DOWN after 3 failures)",
        ),
    ],
)
def test_target_health_table(probes: dict[str, ProbeState], health: Health, reason: str) -> None:
    th = target_health(probes, None, 100.0)
    assert (th.health, th.reason) == (health, reason)


def test_failing_since_is_earliest_among_down_probes() -> None:
    early = probe("-----")  # failing since t=1
    late = ProbeState(health=D, failures=3, failing_since=3.0)
    starting = probe("--")  # failing but not DOWN: does not count
    th = target_health({"a": late, "b": early, "c": starting}, None, 10.0)
    assert th.failing_since == 1.0
    assert target_health({"a": probe("+++")}, None, 10.0).failing_since is None


def test_since_kept_while_unchanged_and_reset_on_change() -> None:
    up = {"http": probe("+++")}
    first = target_health(up, None, 10.0)
    assert first.since == 10.0
    assert target_health(up, first, 20.0).since == 10.0
    down = target_health({"http": probe("---")}, first, 30.0)
    assert (down.health, down.since) == (D, 30.0)


def test_since_is_none_until_a_probe_reports() -> None:
    silent = target_health({"http": ProbeState()}, None, 10.0)
    assert silent.since is None
    assert target_health({"http": ProbeState()}, silent, 20.0).since is None
    waiting = target_health({"http": probe("+")}, silent, 30.0)
    assert (waiting.health, waiting.since) == (N, 30.0)
    assert target_health({"http": probe("++")}, waiting, 40.0).since == 30.0


def test_target_health_is_a_value() -> None:
    assert target_health({}, None, 1.0) == TargetHealth(N, None, None, "no probes configured")


# --- property (d): health changes only after exactly fall/rise consecutive results ---------


def reference_health(results: list[bool], fall: int, rise: int) -> Health:
    """The last time a streak reached its threshold decides; before any, UNKNOWN."""
    health, streak, prev = Health.UNKNOWN, 0, None
    for ok in results:
        streak = streak + 1 if ok == prev else 1
        prev = ok
        if ok and streak == rise:
            health = Health.UP
        elif not ok and streak == fall:
            health = Health.DOWN
    return health


@given(
    results=st.lists(st.booleans(), max_size=40),
    fall=st.integers(1, 5),
    rise=st.integers(1, 5),
)
def test_health_changes_only_at_exact_streaks(results: list[bool], fall: int, rise: int) -> None:
    state = ProbeState()
    for i, ok in enumerate(results):
        new = observe(state, ok, "r", float(i), fall, rise)
        if new.health is not state.health:
            if ok:
                assert (new.health, new.successes) == (Health.UP, rise)
            else:
                assert (new.health, new.failures) == (Health.DOWN, fall)
        assert new.health is reference_health(results[: i + 1], fall, rise)
        assert (new.successes > 0) == ok and (new.failures > 0) == (not ok)
        assert (new.failing_since is None) == ok
        state = new


# ---------------------------------------------------------------- quorum of vantage points

HERE_UP = TargetHealth(Health.UP, 10.0, None, "probe http up")
HERE_DOWN = TargetHealth(Health.DOWN, 10.0, 9.0, "probe http: refused (DOWN after 2 failures)")


@pytest.mark.parametrize(
    ("live", "configured", "size"), [(1, None, 1), (2, None, 2), (3, None, 2), (3, 1, 1)]
)
def test_quorum_is_a_majority_unless_configured(
    live: int, configured: int | None, size: int
) -> None:
    assert quorum_size(live, configured) == size


def votes(*pairs: tuple[str, Health, bool]) -> list[Vote]:
    return [Vote(name, health, isolated) for name, health, isolated in pairs]


def test_one_vantage_point_alone_cannot_take_a_target_down() -> None:
    seen = quorum_health(HERE_DOWN, votes(("a", D, False), ("b", U, False), ("c", U, False)), 2)
    assert seen.health is Health.UP and "2 of 3 vantage points see it UP, 1 DOWN" in seen.reason


def test_a_quorum_of_downs_is_down_and_keeps_the_local_timings() -> None:
    seen = quorum_health(HERE_DOWN, votes(("a", D, False), ("b", D, False), ("c", U, False)), 2)
    assert seen is HERE_DOWN
    elsewhere = quorum_health(HERE_UP, votes(("a", U, False), ("b", D, False), ("c", D, False)), 2)
    assert elsewhere.health is Health.DOWN and elsewhere.since is None


def test_an_isolated_instance_casts_no_down_vote() -> None:
    seen = quorum_health(HERE_DOWN, votes(("a", D, True), ("b", D, False), ("c", U, False)), 2)
    assert seen.health is Health.UNKNOWN and "a isolated: no DOWN vote" in seen.reason


def test_no_verdict_without_a_quorum() -> None:
    seen = quorum_health(HERE_UP, votes(("a", U, False), ("b", N, False)), 2)
    assert seen.health is Health.UNKNOWN
