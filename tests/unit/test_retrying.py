"""The one retry policy (`failover.retrying`) that provider calls and webhooks share."""

from __future__ import annotations

import email.utils
import time

import pytest

from failover.config.types import RetryConfig
from failover.retrying import parse_retry_after, retrying

FAST = RetryConfig(attempts=3, initial=0.001, max_delay=0.01, deadline=5.0)


class Flaky(Exception):
    def __init__(self, retryable: bool = True, after: float | None = None) -> None:
        super().__init__("flaky")
        self.retryable = retryable
        self.after = after


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, Flaky) and exc.retryable


async def test_retries_up_to_the_attempts_and_reports_each_retried_failure() -> None:
    seen: list[int] = []
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise Flaky()

    policy = retrying(FAST, _is_retryable, on_retry=lambda exc, n: seen.append(n))
    with pytest.raises(Flaky):  # the last error itself, not tenacity's RetryError
        await policy(call)
    assert calls == 3
    assert seen == [1, 2, 3]  # the last one too: a caller counts every failed attempt


async def test_an_error_that_is_not_retryable_fails_at_once_unreported() -> None:
    seen: list[int] = []
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise Flaky(retryable=False)

    with pytest.raises(Flaky):
        await retrying(FAST, _is_retryable, on_retry=lambda e, n: seen.append(n))(call)
    assert (calls, seen) == (1, [])


async def test_success_after_failures_returns_the_result() -> None:
    outcomes = [Flaky(), Flaky(), "ok"]

    async def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert await retrying(FAST, _is_retryable)(call) == "ok"


async def test_the_deadline_stops_before_the_attempts() -> None:
    policy = RetryConfig(attempts=100, initial=0.05, max_delay=0.05, deadline=0.2)
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise Flaky()

    with pytest.raises(Flaky):
        await retrying(policy, _is_retryable)(call)
    assert 2 <= calls < 10


async def test_retry_after_is_a_floor_capped_by_max_delay() -> None:
    slow = RetryConfig(attempts=2, initial=0.001, max_delay=1.0, deadline=5.0)

    async def run(after: float) -> float:
        async def call() -> None:
            raise Flaky(after=after)

        started = time.monotonic()
        with pytest.raises(Flaky):
            await retrying(slow, _is_retryable, retry_after=_asked)(call)
        return time.monotonic() - started

    # upper bounds far from the alternatives they rule out (max_delay, then 60 s), so a noisy CI
    # machine cannot fail them
    assert 0.15 <= await run(0.15) < 0.8  # waited what the server asked, not max_delay
    assert 1.0 <= await run(60.0) < 3.0  # but never more than max_delay


def _asked(exc: BaseException) -> float | None:
    return exc.after if isinstance(exc, Flaky) else None


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("inf") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (parse_retry_after(later) or 0) <= 30
    earlier = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after(earlier) == 0.0
