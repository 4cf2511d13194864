"""Notifications: journal entries become webhook posts, off the decision path.

Every event worth telling (switches, failed or unverified changes, blocks, alarms, isolation,
operator commands) is journalled, so the journal is the one hook: `Journal.on_entry` hands each
entry to `Notifier.emit`, which maps it to an event name and enqueues it, nothing more. Each
destination has its own bounded queue and worker, so a dead webhook (closed port, hung server,
retries under a long deadline) never delays a decision or another destination; when its queue
is full the oldest event is dropped and counted. Webhook URLs usually hold their token: logs,
errors and metrics name a destination by its `name` and at most the URL's scheme and host.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from prometheus_client import Counter

from failover import __version__
from failover.config.notifications import EVENTS, safe_origin
from failover.config.types import NotificationConfig, WebhookConfig
from failover.retrying import parse_retry_after, retrying

log = logging.getLogger("failover.notify")

QUEUE_SIZE = 100  # events waiting per destination; beyond, the oldest is dropped
DRAIN_GRACE = 2.0  # seconds a stopping daemon gives queued events before dropping them
RESULTS = ("ok", "failed", "dropped")

# Alarms journalled per service. `isolated` and `local_fault` are told once, by the
# instance-wide entry.
_ALARM_EVENTS = {
    "all_down": "all_down",
    "no_healthy_target": "no_healthy_target",
    "pinned_target_down": "pinned_target_down",
    "blocked": "block",
    "change_ignored": "change_ignored",
    "split_answer": "split_answer",
}
# Entries whose kind is already the event's name.
_SAME_NAME = frozenset(
    ("drift", "refused", "isolated", "isolation_cleared", "local_fault", "local_fault_cleared")
)
_SAME_NAME |= {"pin", "release", "pause", "resume", "ack", "drill", "drain", "undrain"}
_SAME_NAME |= {"switchover"}
_SAME_NAME |= {"journal_unwritable", "journal_recovered"}
SEVERITY = {
    **dict.fromkeys(("pin", "release", "pause", "resume", "ack", "drill", "reload"), "info"),
    **dict.fromkeys(("drain", "undrain", "switchover"), "info"),
    "isolation_cleared": "info",
    "journal_recovered": "info",
    "local_fault_cleared": "info",
    **dict.fromkeys(("switch", "refused", "pinned_target_down", "reload_failed"), "warning"),
}
SLACK_DETAIL_LIMIT = 2500  # Slack refuses a section text over 3000 characters
_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


def event_of(entry: Mapping[str, Any]) -> str | None:
    """The event a journal entry announces, or None (verified changes, retries, …)."""
    kind = entry.get("kind")
    if kind in ("switch", "publish", "fallback"):
        return "switch" if entry.get("result") == "ok" else "change_failed"
    if kind == "pool":  # a pool's published subset: told only when the change fails
        return None if entry.get("result") == "ok" else "change_failed"
    if kind == "abandoned":  # an in-flight change given up at shutdown
        return "change_failed"
    if kind == "reload":
        return "reload" if entry.get("result") == "ok" else "reload_failed"
    if kind == "verify":
        return "not_verified" if entry.get("result") == "failed" else None
    if kind == "alarm":
        return _ALARM_EVENTS.get(str(entry.get("alarm")))
    return str(kind) if kind in _SAME_NAME else None


def summary(event: str, entry: Mapping[str, Any]) -> tuple[str, str]:
    """(headline, detail): one human line about what happened, and why."""
    svc, to = entry.get("service"), entry.get("to")
    frm = entry.get("from") or "(none)"
    detail = str(entry.get("reason") or "")
    actor = entry.get("actor")
    heads = {
        "switch": f"{svc}: switched {frm} -> {to} ({entry.get('trigger')})",
        "change_failed": f"{svc}: DNS change {frm} -> {to} FAILED ({entry.get('result')})",
        "not_verified": f"{svc}: change to {to} NOT verified by the authoritative servers",
        "block": f"{svc}: automation BLOCKED until `failover ack {svc}`",
        "drift": f"{svc}: DRIFT: DNS serves values that match no target",
        "all_down": f"{svc}: ALL TARGETS DOWN, holding the current answer",
        "no_healthy_target": f"{svc}: no target UP and nothing published",
        "pinned_target_down": f"{svc}: pinned target is DOWN",
        "change_ignored": f"{svc}: a provider accepts changes and keeps the old answer",
        "split_answer": f"{svc}: SPLIT ANSWER: a provider still serves a DOWN target",
        "refused": f"{svc}: change to {to} refused by a safety rule",
        "isolated": "instance ISOLATED: no automatic switch until it clears",
        "isolation_cleared": "isolation cleared",
        "local_fault": "instance LOCAL FAULT: no automatic switch until it clears",
        "local_fault_cleared": "local fault cleared",
        "pin": f"{svc}: pinned to {to} by {actor}",
        "release": f"{svc}: pin released by {actor}, back to automatic",
        "pause": f"{svc}: automation paused by {actor}",
        "resume": f"{svc}: automation resumed by {actor}",
        "ack": f"{svc}: flap block acknowledged by {actor}",
        "drill": f"{svc}: drill {frm} -> {to} {entry.get('result')}",
        "drain": f"{svc}: {entry.get('target')} DRAINED by {actor}"
        + (f" until {entry['until']}" if entry.get("until") else ""),
        "undrain": f"{svc}: {entry.get('target')} back in service ({actor})",
        "switchover": f"{svc}: switchover to {to}: {entry.get('step')}",
        "reload": "configuration reloaded",
        "reload_failed": "configuration reload REJECTED, the running one stays",
        "journal_unwritable": "JOURNAL UNWRITABLE: entries and state wait in memory",
        "journal_recovered": "journal writable again",
    }
    if entry.get("kind") == "publish" and event == "switch":
        heads["switch"] = f"{svc}: published {to} ({entry.get('trigger')})"
    if entry.get("kind") == "fallback" and event == "switch":
        heads["switch"] = f"{svc}: ALL TARGETS DOWN, publishing the fallback"
    if event == "change_failed":
        errors = [
            f"{p.get('provider')}: {p.get('error')}"
            for p in entry.get("providers") or ()
            if isinstance(p, dict) and not p.get("ok")
        ]
        detail = "; ".join(errors) or detail
    return f"[{entry.get('instance')}] {heads.get(event, f'{svc}: {event}')}", detail


def render(event: str, entry: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """The body posted: the journal entry with `event`, `severity` and `summary`, or a Slack
    message with the same one-line summary."""
    head, detail = summary(event, entry)
    line = f"{head}: {detail}" if detail else head
    severity = SEVERITY.get(event, "critical")
    if event == "switchover" and entry.get("result") == "error":
        severity = "warning"  # a failed step: the switchover restores the TTL and stops
    if fmt == "slack":
        emoji = _EMOJI[severity]
        detail = detail[:SLACK_DETAIL_LIMIT]
        context = f"{entry.get('instance')} · {entry.get('trigger')} · {entry.get('time')}"
        return {
            "text": f"{emoji} {_mrkdwn(line[:SLACK_DETAIL_LIMIT])}",
            "blocks": [
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": f"{emoji} *{_mrkdwn(head)}*\n{_mrkdwn(detail)}",
                    },
                },
                {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(context)}]},
            ],
        }
    body = {k: v for k, v in entry.items() if k != "ts"}
    return {"event": event, "severity": severity, "summary": line, **body}


def _mrkdwn(text: str) -> str:
    """Slack's three control characters, escaped so `a -> b` is not read as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class DeliveryError(Exception):
    """A failed attempt. The message never holds the URL: only a status or an error class."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Webhook:
    """One destination: a bounded queue and a worker posting with its own session."""

    def __init__(self, config: WebhookConfig, counter: Counter) -> None:
        self.config = config
        self.label = f"{config.name} ({safe_origin(config.url.reveal())})"
        self._counter = counter
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(QUEUE_SIZE)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        for result in RESULTS:  # zero series, so alerts see the first failure as an increase
            counter.labels(config.name, result)

    def accepts(self, event: str) -> bool:
        return self.config.events is None or event in self.config.events

    def put(self, event: str, entry: dict[str, Any]) -> None:
        if self._queue.full():
            dropped, _ = self._queue.get_nowait()
            self._queue.task_done()
            self._count("dropped")
            log.warning("notification queue of %s full: dropped a %s event", self.label, dropped)
        self._queue.put_nowait((event, entry))

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            headers={"User-Agent": f"failover/{__version__}"},
        )
        self._task = asyncio.create_task(self._run(), name=f"notify-{self.config.name}")

    async def aclose(self, grace: float = DRAIN_GRACE) -> None:
        """Give queued events `grace` seconds, then drop the rest (counted) and close."""
        if self._task is not None:
            try:
                async with asyncio.timeout(grace):
                    await self._queue.join()
            except TimeoutError:
                pass
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        left = self._queue.qsize()
        if left:
            log.warning("%d notifications to %s not sent: stopping", left, self.label)
            self._counter.labels(self.config.name, "dropped").inc(left)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _count(self, result: str) -> None:
        self._counter.labels(self.config.name, result).inc()

    async def _run(self) -> None:
        while True:
            event, entry = await self._queue.get()
            try:
                await self._deliver(event, entry)
            except asyncio.CancelledError:
                self._count("dropped")
                raise
            except Exception:  # a bug here must not stop later notifications
                self._count("failed")
                log.exception("notification %s to %s failed", event, self.label)
            finally:
                self._queue.task_done()

    async def _deliver(self, event: str, entry: dict[str, Any]) -> None:
        body = render(event, entry, self.config.format)

        def note(exc: BaseException, number: int) -> None:
            log.debug("notification %s to %s, attempt %d: %s", event, self.label, number, exc)

        policy = retrying(
            self.config.retry,
            lambda e: isinstance(e, DeliveryError) and e.retryable,
            on_retry=note,
            retry_after=lambda e: e.retry_after if isinstance(e, DeliveryError) else None,
        )
        try:
            async for attempt in policy:
                with attempt:
                    await self._post(body)
        except DeliveryError as exc:
            self._count("failed")
            tries = policy.statistics.get("attempt_number", 1)
            log.warning(
                "notification %s to %s failed after %d attempt%s: %s",
                event,
                self.label,
                tries,
                "" if tries == 1 else "s",
                exc,
            )
            return
        self._count("ok")
        log.debug("notification %s sent to %s", event, self.label)

    async def _post(self, body: dict[str, Any]) -> None:
        assert self._session is not None
        try:
            async with self._session.post(
                self.config.url.reveal(), json=body, allow_redirects=False
            ) as response:
                await response.read()
                status = response.status
                if status < 300:
                    return
                retryable = status >= 500 or status in (408, 429)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            raise DeliveryError(
                f"no answer within {self.config.timeout:g}s", retryable=True
            ) from None
        except aiohttp.ClientConnectionError as exc:
            cause = getattr(exc, "os_error", None)
            why = f": {cause.strerror}" if isinstance(cause, OSError) and cause.strerror else ""
            raise DeliveryError(f"{type(exc).__name__}{why}", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(type(exc).__name__, retryable=False) from None
        what = "redirects are not followed" if status < 400 else "not retried"
        raise DeliveryError(
            f"HTTP {status}" + ("" if retryable else f" ({what})"),
            retryable=retryable,
            retry_after=retry_after,
        )


def _create(config: NotificationConfig, counter: Counter) -> Webhook:
    """One line per destination type, like providers (the union has one member today)."""
    return Webhook(config, counter)


class Notifier:
    """Fans events out to every destination that wants them; `emit` never blocks or raises."""

    def __init__(self, destinations: Sequence[NotificationConfig], counter: Counter) -> None:
        self._counter = counter
        self._configs = tuple(destinations)
        self._destinations = [_create(c, counter) for c in destinations]

    async def start(self) -> None:
        for destination in self._destinations:
            await destination.start()

    def emit(self, entry: Mapping[str, Any]) -> None:
        """Journal hook: map the entry to an event and enqueue it where it is wanted."""
        try:
            event = event_of(entry)
            if event is None:
                return
            assert event in EVENTS, event
            for destination in self._destinations:
                if destination.accepts(event):
                    destination.put(event, dict(entry))
        except Exception:  # never let a notification problem reach the journal's caller
            log.exception("notification of a %s entry not queued", entry.get("kind"))

    async def reconfigure(self, destinations: Sequence[NotificationConfig]) -> None:
        """Reload: keep unchanged destinations (and their queues), start new ones, drain and
        close removed ones."""
        if tuple(destinations) == self._configs:
            return
        old = {d.config: d for d in self._destinations}
        fresh: list[Webhook] = []
        for config in destinations:
            kept = old.pop(config, None)
            if kept is None:
                kept = _create(config, self._counter)
                await kept.start()
            fresh.append(kept)
        self._destinations, self._configs = fresh, tuple(destinations)
        await asyncio.gather(*(d.aclose() for d in old.values()))

    async def aclose(self, grace: float = DRAIN_GRACE) -> None:
        await asyncio.gather(*(d.aclose(grace) for d in self._destinations))
