"""Calls of the synchronous hcloud SDK from the event loop: each in the provider's own thread
pool, at most `max_concurrency` at once, under an asyncio deadline of `timeout`, run by the
retry policy with every failed attempt counted, and every error made token-free."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from hcloud import APIException

from failover.config.types import HetznerProviderConfig
from failover.providers.base import ProviderError
from failover.providers.hetzner import wire
from failover.providers.retry import with_retries

log = logging.getLogger("failover.providers.hetzner")

T = TypeVar("T")
_MESSAGE_MAX = 300


class SdkCalls:
    """The provider's way to the SDK. `on_error` is the provider's (the daemon sets it after
    construction, so it is read at each call); `secret` the token to redact."""

    def __init__(
        self,
        config: HetznerProviderConfig,
        on_error: Callable[[str], None],
        secret: Callable[[], str],
    ) -> None:
        self.config = config
        self.prefix = f"hetzner {config.name}"
        self._on_error = on_error
        self._secret = secret
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._executor: ThreadPoolExecutor | None = None

    def open(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=self.config.max_concurrency,
            thread_name_prefix=f"hetzner-{self.config.name}",
        )

    def close(self) -> None:
        """Stop taking work; a thread stuck on a hung API ends by requests' own timeout."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def call(self, what: str, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One SDK call under the retry policy; every failed attempt is counted."""
        attempt = functools.partial(self._attempt, what, method, args, kwargs, None)
        result = await with_retries(attempt, self.config.retry, self._on_error)
        assert result is not None  # nothing tolerated: an error raised
        return result

    async def call_or_none(
        self, what: str, tolerate: str, method: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T | None:
        """`call`, where an API error whose code is `tolerate` is an answer (None)."""
        attempt = functools.partial(self._attempt, what, method, args, kwargs, tolerate)
        return await with_retries(attempt, self.config.retry, self._on_error)

    async def _attempt(
        self,
        what: str,
        method: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        tolerate: str | None,
    ) -> T | None:
        """One attempt in our thread pool. On timeout the thread is abandoned but keeps its
        slot until requests' own timeout ends it, so threads never pile up."""
        if self._executor is None:
            raise ProviderError(f"{self.prefix}: not started", kind="state")
        await self._slots.acquire()
        try:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(
                self._executor, functools.partial(method, *args, **kwargs)
            )
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._release)
        try:
            async with asyncio.timeout(self.config.timeout):
                return await asyncio.shield(future)
        except wire.SDK_ERRORS as exc:
            if tolerate is not None and isinstance(exc, APIException) and exc.code == tolerate:
                return None
            raise self._error(what, exc) from None
        except TimeoutError:
            raise ProviderError(
                f"{self.prefix}: {what}: no answer within {self.config.timeout:g}s",
                kind="timeout",
                retryable=True,
            ) from None

    def _release(self, future: asyncio.Future[Any]) -> None:
        self._slots.release()
        if not future.cancelled():
            future.exception()  # an abandoned call's error is not "never retrieved"

    def _error(self, what: str, exc: Exception) -> ProviderError:
        """A concise, token-free ProviderError with a truthful kind and retryability."""
        kind, retryable, detail = wire.classify(exc)
        if isinstance(exc, APIException) and exc.code == wire.ZONE_MODE:
            detail = f"{wire.zone_mode('secondary')} ({detail})"
        message = self.redact(f"{self.prefix}: {what}: {detail}")
        if len(message) > _MESSAGE_MAX:
            message = message[: _MESSAGE_MAX - 1] + "…"
        log.warning("%s%s", message, " (retryable)" if retryable else "")
        return ProviderError(message, kind=kind, retryable=retryable)

    def counted(self, message: str, kind: str, *, retryable: bool = False) -> ProviderError:
        """An error found outside a call (an action's or a zone's status): counted here."""
        self._on_error(kind)
        error = ProviderError(self.redact(message), kind=kind, retryable=retryable)
        error.counted = True
        return error

    def redact(self, text: str) -> str:
        token = self._secret()
        return text.replace(token, "***") if token else text
