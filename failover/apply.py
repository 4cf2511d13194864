"""Writing DNS: one queue per provider that batches changes, then confirms them off the loop.

Why a queue per provider: when a region dies, hundreds of services decide to switch in the
same cycle. Each provider's worker takes every change waiting for it and sends them in one
`apply` call, which the provider splits per zone into as few API calls as its API allows (a
group commit). A slow or hung provider only delays its own queue: OVH changes never wait for
Route 53. Acceptance (the provider took the change) resolves first, so the decision loop can
record the switch at once; being in sync at the provider and then served by every
authoritative server (verification) are confirmed afterwards, in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from failover.config.provider_types import call_budget
from failover.config.types import HostPort, ProviderConfig
from failover.logs import fields
from failover.metrics import Metrics
from failover.model import Change
from failover.providers.base import PacedWrites, Provider, ProviderError, Receipt
from failover.submission import Confirmation, ProviderOutcome, Submission
from failover.verify import Expectation, VerifyResult, verify, verify_change

log = logging.getLogger("failover.apply")

MAX_BATCH = 5000  # changes per apply call; providers split further by their API limits
STALE_LEADER = "stale_leader"  # the outcome kind of a plan refused by fencing
RECHECK_TIMEOUT = 5.0  # seconds one re-check of a change that did not verify may poll
RECHECK_SLOTS = 4  # re-checks in flight per provider: a mass failover must not flood the servers


def _verify_servers(provider: Provider, config: ProviderConfig) -> tuple[HostPort, ...]:
    """Configured servers, else the builtin server itself, else () for the zone's NS set."""
    if config.verify.nameservers:
        return config.verify.nameservers
    bound = getattr(provider, "bound", None)
    return (bound,) if isinstance(bound, HostPort) else ()


class ProviderQueue:
    """The only writer to one provider. `submit` enqueues; one worker per zone batches and
    applies, so changes to a zone stay ordered and a slow zone never delays another."""

    def __init__(
        self,
        name: str,
        provider: Provider,
        config: ProviderConfig,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        fence: Callable[[int], bool] | None = None,
    ) -> None:
        self.name = name
        self.fence = fence  # is a plan built under this token still ours to send?
        self.provider = provider
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.calls = 0  # apply calls made (benchmarks report it)
        for result in ("ok", "error"):  # from 0, so increase() sees the first failed change
            metrics.dns_changes.labels(name, result)
        self._limit = asyncio.Semaphore(getattr(config, "max_concurrency", 8))
        self._pending: dict[str, list[tuple[Submission, list[Change]]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._confirms: set[asyncio.Task[None]] = set()
        self._rechecks = asyncio.Semaphore(RECHECK_SLOTS)

    async def aclose(self) -> None:
        tasks = [*self._workers.values(), *self._confirms]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for items in self._pending.values():
            for sub, _ in items:
                for fut in (sub.accepted, sub.confirmed):
                    if not fut.done():
                        fut.cancel()

    def submit(self, changes: Sequence[Change], token: int = 0) -> Submission:
        loop = asyncio.get_running_loop()
        sub = Submission(list(changes), loop.create_future(), loop.create_future(), token)
        by_zone: dict[str, list[Change]] = {}
        for change in changes:
            by_zone.setdefault(change.key.zone, []).append(change)
        for zone, zone_changes in by_zone.items():
            self._pending.setdefault(zone, []).append((sub, zone_changes))
            worker = self._workers.get(zone)
            if worker is None or worker.done():
                self._workers[zone] = asyncio.create_task(
                    self._zone_worker(zone), name=f"apply-{self.name}-{zone}"
                )
        return sub

    async def _zone_worker(self, zone: str) -> None:
        await asyncio.sleep(0)  # let every service of this cycle enqueue first
        while self._pending.get(zone):
            async with self._limit, contextlib.AsyncExitStack() as turn:
                paced = self.provider if isinstance(self.provider, PacedWrites) else None
                if paced is not None:
                    await self._take_turn(zone, paced, turn)
                # made up only now: what was decided while the write waited goes with it
                await self._apply_zone(zone, self._next_batch(zone, paced))
        self._workers.pop(zone, None)

    async def _take_turn(
        self, zone: str, paced: PacedWrites, turn: contextlib.AsyncExitStack
    ) -> None:
        """Wait for the rate-limited API's next write to `zone` (given back if unused). One
        that never comes within the call budget is not waited for: the write goes unpaced."""
        budget = call_budget(self.config)
        try:
            async with asyncio.timeout(budget):
                await turn.enter_async_context(paced.write_turn(zone))
        except TimeoutError:
            log.warning(
                "%s: no write turn for %s within %gs; writing without it",
                self.name,
                zone,
                budget,
                extra=fields(provider=self.name),
            )

    def _next_batch(
        self, zone: str, paced: PacedWrites | None
    ) -> list[tuple[Submission, list[Change]]]:
        """The services waiting for `zone`, in order, up to MAX_BATCH changes, or what one
        request of a paced API carries (at least one service, never a service split)."""
        items = self._pending[zone]
        limit = MAX_BATCH
        if paced is not None:
            head: list[Change] = []
            for _, part in items:
                if len(head) >= MAX_BATCH:
                    break
                head += part
            try:
                limit = min(limit, max(1, paced.one_request(head)))
            except Exception:  # a plugin's bug must not strand the services waiting here
                log.exception("%s: one_request failed; sending the batch whole", self.name)
        count, size = 0, 0
        while count < len(items) and (not count or size + len(items[count][1]) <= limit):
            size += len(items[count][1])
            count += 1
        batch = items[:count]
        del items[:count]
        if not items:
            del self._pending[zone]
        return batch

    async def _apply_zone(self, zone: str, batch: list[tuple[Submission, list[Change]]]) -> None:
        """One apply call for `batch` (the caller holds `_limit`), then its confirmation in
        the background."""
        timeout = call_budget(self.config)
        start, submitted = self.clock(), time.time()
        batch = self._fenced(zone, batch)  # checked last thing before the provider call
        if not batch:
            return
        changes = [c for _, part in batch for c in part]
        self.calls += 1
        try:
            async with asyncio.timeout(timeout):
                receipt = await self.provider.apply(changes)
        except (ProviderError, TimeoutError, OSError) as exc:
            outcome = self._failure(exc, timeout, zone, len(changes))
            for sub, _ in batch:
                sub.zone_accepted(zone, outcome)
            return
        self.metrics.dns_changes.labels(self.name, "ok").inc()
        outcome = ProviderOutcome(
            self.name, True, accepted_after=self.clock() - start, batch_size=len(changes)
        )
        for sub, _ in batch:
            sub.zone_accepted(zone, outcome)
        task = asyncio.create_task(self._confirm(zone, batch, changes, receipt, start, submitted))
        self._confirms.add(task)
        task.add_done_callback(self._confirms.discard)

    def _fenced(
        self, zone: str, batch: list[tuple[Submission, list[Change]]]
    ) -> list[tuple[Submission, list[Change]]]:
        """Drop the plans built under a leadership this instance no longer holds (or whose
        lease is about to expire): a slow or frozen writer never applies a stale plan late."""
        if self.fence is None:
            return batch
        fresh = []
        for sub, part in batch:
            if self.fence(sub.token):
                fresh.append((sub, part))
                continue
            message = (
                f"stale-leader: plan built under leadership token {sub.token}, which this "
                "instance no longer holds; not sent"
            )
            log.error("%s: %s", self.name, message, extra=fields(provider=self.name))
            sub.zone_accepted(zone, ProviderOutcome(self.name, False, message, STALE_LEADER))
        return fresh

    def _failure(self, exc: BaseException, timeout: float, zone: str, size: int) -> ProviderOutcome:
        kind = exc.kind if isinstance(exc, ProviderError) else type(exc).__name__.lower()
        message = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            kind, message = "timeout", f"no answer within {timeout:g}s"
        if not (isinstance(exc, ProviderError) and exc.counted):
            self.metrics.provider_errors.labels(self.name, kind).inc()
        self.metrics.dns_changes.labels(self.name, "error").inc()
        log.warning(
            "%s: change of %d records in %s failed: %s",
            self.name,
            size,
            zone,
            message,
            extra=fields(provider=self.name),
        )
        return ProviderOutcome(self.name, False, message, kind, batch_size=size)

    async def _confirm(
        self,
        zone: str,
        batch: list[tuple[Submission, list[Change]]],
        changes: list[Change],
        receipt: Receipt,
        start: float,
        submitted: float,
    ) -> None:
        confirmation = await self._confirm_zone(changes, receipt, start, submitted)
        for sub, _ in batch:
            sub.zone_confirmed(zone, confirmation)

    async def _confirm_zone(
        self, changes: list[Change], receipt: Receipt, start: float, submitted: float
    ) -> Confirmation:
        try:
            await self._wait_in_sync(receipt)
        except (ProviderError, TimeoutError, OSError) as exc:
            kind = exc.kind if isinstance(exc, ProviderError) else "timeout"
            if not (isinstance(exc, ProviderError) and exc.counted):
                self.metrics.provider_errors.labels(self.name, kind).inc()
            reason = f"not in sync: {exc or 'timeout'}"
            return Confirmation(False, None, False, reason, None, str(exc), receipt)
        in_sync_after = self.clock() - start
        self.metrics.dns_change_duration.labels(self.name).observe(in_sync_after)
        if not self.config.verify.enabled:
            return Confirmation(
                True, in_sync_after, None, "verification disabled", None, "", receipt
            )
        verified = await self._verify(changes, submitted, self.config.verify.timeout)
        return Confirmation(
            True,
            in_sync_after,
            verified.ok,
            verified.reason,
            verified.elapsed,
            "",
            receipt,
            self.config.verify.method,
        )

    def change_timeout(self) -> float:
        """How long the provider may take to report a change live (its own `change_timeout`)."""
        return float(getattr(self.config, "change_timeout", self.config.verify.timeout))

    async def _wait_in_sync(self, receipt: Receipt, budget: float | None = None) -> None:
        """Wait for the provider's own sync until `change_timeout`, whatever the retry policy:
        a status call that keeps being throttled is asked again (with backoff), because giving
        up after `retry.attempts` would report a change that is live as not verified."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.change_timeout() if budget is None else budget)
        delay = self.config.retry.initial
        while True:
            left = deadline - loop.time()
            try:
                async with asyncio.timeout(left):
                    await self.provider.wait_in_sync(receipt, left)
                return
            except ProviderError as exc:
                if not exc.retryable or deadline - loop.time() <= delay:
                    raise
                log.info(
                    "%s: still waiting for the change to be in sync (%s); asking again in %.1fs",
                    self.name,
                    exc,
                    delay,
                    extra=fields(provider=self.name),
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.retry.max_delay)

    async def recheck(
        self, changes: Sequence[Change], previous: Confirmation | None, *, full: bool
    ) -> Confirmation:
        """One more look at a change that did not verify, or whose check a reload interrupted
        (`full`: a first verdict, with the whole verification timeout). The servers serving
        the answer proves it live, whatever the provider last said about its own sync."""
        async with self._rechecks:
            verify_config = self.config.verify
            if not verify_config.enabled:
                return await self._recheck_sync(previous)
            timeout = verify_config.timeout if full else min(RECHECK_TIMEOUT, verify_config.timeout)
            result = await self._verify(list(changes), None, timeout, quiet=not full)
            receipt = previous.receipt if previous else None
            return Confirmation(
                result.ok or bool(previous and previous.in_sync),
                None,
                result.ok,
                result.reason,
                result.elapsed,
                "",
                receipt,
                verify_config.method,
            )

    async def _recheck_sync(self, previous: Confirmation | None) -> Confirmation:
        """Verification off: only the provider can say whether the change is live."""
        if previous is None or previous.in_sync or previous.receipt is None:
            return Confirmation(True, None, None, "verification disabled", None, "", None)
        try:
            await self._wait_in_sync(previous.receipt, RECHECK_TIMEOUT)
        except (ProviderError, TimeoutError, OSError) as exc:
            reason = f"not in sync: {exc or 'timeout'}"
            return Confirmation(False, None, False, reason, None, str(exc), previous.receipt)
        return Confirmation(True, None, None, "verification disabled", None, "", previous.receipt)

    async def _verify(
        self, changes: list[Change], submitted: float | None, timeout: float, quiet: bool = False
    ) -> VerifyResult:
        expectations = [
            Expectation(c.key.zone, c.key.name, c.key.type, c.after, c.ttl) for c in changes
        ]
        servers = _verify_servers(self.provider, self.config)
        if self.config.verify.method == "api":
            result = await verify_through_api(self.provider, changes, timeout)
        elif servers:
            result = await verify(expectations, servers, timeout=timeout)
        else:
            result = await verify_change(expectations, self.config.verify, timeout=timeout)
        if result.ok:
            if submitted is not None:
                self.metrics.dns_propagation.labels(self.name).observe(time.time() - submitted)
        elif quiet:  # a re-check of a change already reported: one line per backoff step
            log.info("%s: change still not verified: %s", self.name, result.reason)
        else:
            self.metrics.provider_errors.labels(self.name, "not_verified").inc()
            log.error(
                "%s: change not verified: %s",
                self.name,
                result.reason,
                extra=fields(provider=self.name),
            )
        return result


async def verify_through_api(
    provider: Provider, changes: Sequence[Change], timeout: float, interval: float = 1.0
) -> VerifyResult:
    """`verify: api`: read the records back through the provider's API until they hold the
    change. Weaker than asking the servers (it proves the provider stored the change, not
    that anyone serves it), which is why it is opt-in and named in status and the journal."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    keys = [c.key for c in changes]
    problem = "not read yet"
    while True:
        try:
            async with asyncio.timeout(max(0.0, start + timeout - loop.time())):
                found = await provider.read(keys)
            wrong = [
                f"{c.key.name} {c.key.type.value}: {_shown(found.get(c.key))}"
                for c in changes
                if (rs := found.get(c.key)) is None or rs.values != c.after or rs.ttl != c.ttl
            ]
            if not wrong:
                return VerifyResult(
                    True,
                    loop.time() - start,
                    (),
                    "read back through the provider API (verify: api; not asked of the "
                    "authoritative servers)",
                )
            problem = "the API holds " + "; ".join(wrong[:3])
        except (ProviderError, TimeoutError, OSError) as exc:
            problem = f"read back through the API failed: {exc or 'timeout'}"
        if loop.time() + interval > start + timeout:
            return VerifyResult(False, loop.time() - start, (), f"{problem} (verify: api)")
        await asyncio.sleep(interval)


def _shown(found: Any) -> str:
    return "nothing" if found is None else f"{', '.join(found.values)} ttl {found.ttl}"


def submit_plan(
    queues: Mapping[str, ProviderQueue], changes: Sequence[Change], token: int = 0
) -> list[Submission]:
    """Hand each provider its share of the changes, all at once (one writer per provider).
    `token` is the leadership the plan was built under; each queue checks it before sending."""
    by_provider: dict[str, list[Change]] = {}
    for change in changes:
        by_provider.setdefault(change.key.provider, []).append(change)
    return [queues[name].submit(part, token) for name, part in by_provider.items()]
