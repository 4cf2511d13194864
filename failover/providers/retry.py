"""Retries are a policy, not a loop: the shared one of `failover.retrying`.

Only errors a provider marks `retryable` (throttling, 5xx, timeouts, connection errors,
Route 53's PriorRequestNotComplete) are retried; a 4xx validation error fails at once. Every
failed attempt is reported through `on_error(kind)` so it is counted in
`failover_provider_errors_total`, and the final error is marked `counted` so the engine does not
count it twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from failover.config.types import RetryConfig
from failover.providers.base import ProviderError
from failover.retrying import retrying

T = TypeVar("T")
ErrorHook = Callable[[str], None]


def kind_of_status(
    status: int, other: str = "client", *, not_found: str = "not_found"
) -> tuple[str, bool]:
    """(error kind, retryable) of a failed HTTP call's status: 429 and 5xx are retried, 401
    and 403 are `auth`; a 404 is `not_found` and anything else (a 4xx, or 0 when there was no
    status) is `other`, both not retried. `not_found` is a parameter because OVH's callers
    take `not_found` to mean "the record is already gone" and a 404 from its OAuth2 token URL
    is no such thing."""
    if status == 429:
        return "throttling", True
    if status >= 500:
        return "server", True
    if status in (401, 403):
        return "auth", False
    if status == 404:
        return not_found, False
    return other, False


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable


async def with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryConfig,
    on_error: ErrorHook | None = None,
    *,
    retry_after: Callable[[BaseException], float | None] | None = None,
) -> T:
    """Run `call` under `policy`; raise the last ProviderError when it is exhausted.
    `retry_after`: the wait a server asked for in a failed attempt (waited, up to the policy's
    `max_delay`)."""

    def count(exc: BaseException, attempt: int) -> None:
        if isinstance(exc, ProviderError):
            exc.counted = True
            if on_error is not None:
                on_error(exc.kind)

    run = retrying(policy, _retryable, on_retry=count, retry_after=retry_after)

    async def attempt() -> T:
        # tenacity awaits only coroutine functions: a lambda returning a coroutine would be
        # called, never awaited, and count as an instant success.
        return await call()

    try:
        return await run(attempt)
    except ProviderError as exc:
        if not exc.counted and on_error is not None:
            exc.counted = True
            on_error(exc.kind)
        raise
