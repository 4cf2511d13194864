"""The one retry policy of outbound calls (provider APIs, webhooks): tenacity with exponential
backoff plus jitter, stopped by an attempt count or a deadline, whichever comes first.

Callers say what is retryable and what to do with each failed attempt that is retried (count
it, log it); the shape of the policy lives here only. A server's Retry-After can be honoured
on top of the backoff.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from failover.config.types import RetryConfig

FailedAttempt = Callable[[BaseException, int], None]


def retrying(
    policy: RetryConfig,
    retryable: Callable[[BaseException], bool],
    *,
    on_retry: FailedAttempt | None = None,
    retry_after: Callable[[BaseException], float | None] | None = None,
) -> AsyncRetrying:
    """An AsyncRetrying for `policy`; it re-raises the last error once exhausted.

    `on_retry(exc, attempt_number)` runs after each failed attempt that `retryable` accepts,
    including the last one when the policy is exhausted (not after an error that is not
    retried). With `retry_after` (seconds a server asked for, from the error), the wait is
    at least that, and never more than `policy.max_delay`."""
    # Not wait_exponential_jitter: its `initial` is deprecated in tenacity 9 (a warning, an
    # error under pytest) and `multiplier` does not exist in 8.x.
    backoff = wait_exponential(multiplier=policy.initial, max=policy.max_delay) + wait_random(
        0, policy.initial
    )

    def failed(state: RetryCallState) -> BaseException | None:
        outcome = state.outcome
        return outcome.exception() if outcome is not None else None

    def wait(state: RetryCallState) -> float:
        exc = failed(state)
        asked = retry_after(exc) if retry_after is not None and exc is not None else None
        return min(max(backoff(state), asked or 0.0), policy.max_delay)

    def after(state: RetryCallState) -> None:
        exc = failed(state)
        if exc is not None and on_retry is not None:
            on_retry(exc, state.attempt_number)

    return AsyncRetrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.deadline),
        wait=backoff if retry_after is None else wait,
        after=after,
        reraise=True,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 §10.2.3);
    None when absent or unreadable, 0 for a time already past."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None
