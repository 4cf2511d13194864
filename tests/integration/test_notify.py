"""Webhooks against a real local receiver: payloads from a real daemon, retries, dead webhooks.

The receiver is an aiohttp server on 127.0.0.1 in its own thread, so it serves both the
in-process `Notifier` tests and a daemon subprocess. A token sits in every webhook URL (path
and query, like Slack's) and must never show up in logs, errors, status, history or metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from failover.config.types import RetryConfig, Secret, WebhookConfig
from failover.metrics import Metrics
from failover.notify import QUEUE_SIZE, Notifier
from tests.support import Lab, cli, free_port, metric_value, wait_until

TOKEN = "T0KEN-s3cr3t-9f8e7d"
PRIMARY, SECONDARY = "127.0.0.31", "127.0.0.32"
FAST = RetryConfig(attempts=4, initial=0.05, max_delay=0.2, deadline=20.0)


class Receiver:
    """A webhook endpoint answering `statuses` in turn (then `default`), or never (`hang`)."""

    def __init__(self, statuses: tuple[int, ...] = (), default: int = 200, hang: bool = False):
        self.statuses = list(statuses)
        self.default = default
        self.hang = hang
        self.requests: list[tuple[str, Any]] = []  # (path with query, JSON body)
        self.pending = 0  # requests received and not answered
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._call(self._start())

    def url(self, path: str = "hook") -> str:
        return f"http://127.0.0.1:{self.port}/{path}/{TOKEN}?token={TOKEN}"

    def bodies(self) -> list[Any]:
        return [body for _, body in list(self.requests)]

    def _call(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path_qs, await request.json()))
        self.pending += 1
        try:
            if self.hang:
                await self._release.wait()
            status = self.statuses.pop(0) if self.statuses else self.default
            return web.Response(status=status, text="ok" if status < 300 else "no")
        finally:
            self.pending -= 1

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def close(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(*args: Any, **kwargs: Any) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def hook(url: str, name: str = "hook", **kwargs: Any) -> WebhookConfig:
    return WebhookConfig(name=name, url=Secret(url), **{"retry": FAST, **kwargs})


def entry(kind: str = "switch", n: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "time": "2026-01-02T03:04:05.000Z",
        "instance": "gra-1",
        "service": "shop",
        "kind": kind,
        "trigger": "auto",
        "from": "primary",
        "to": "secondary",
        "reason": f"event {n}",
        "result": "ok",
        "n": n,
        **extra,
    }


def count(metrics: Metrics, destination: str, result: str) -> float:
    text = generate_latest(metrics.registry).decode()
    found = metric_value(
        text, "failover_notifications_total", destination=destination, result=result
    )
    return found or 0.0


async def until(predicate: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


# --- the Notifier against a real receiver ----------------------------------------------------


async def test_a_500_is_retried_until_it_succeeds(receivers: Callable[..., Receiver]) -> None:
    receiver = receivers(statuses=(500, 503, 429))
    metrics = Metrics()
    notifier = Notifier([hook(receiver.url())], metrics.notifications)
    await notifier.start()
    try:
        notifier.emit(entry())
        await until(lambda: count(metrics, "hook", "ok") == 1, "the delivery")
    finally:
        await notifier.aclose()
    assert len(receiver.requests) == 4  # 500, 503, 429, then 200
    assert all(body == receiver.bodies()[0] for body in receiver.bodies())
    assert receiver.bodies()[0]["event"] == "switch"
    assert count(metrics, "hook", "failed") == 0


async def test_a_400_is_not_retried(
    receivers: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    receiver = receivers(default=400)
    metrics = Metrics()
    notifier = Notifier([hook(receiver.url())], metrics.notifications)
    await notifier.start()
    try:
        notifier.emit(entry())
        await until(lambda: count(metrics, "hook", "failed") == 1, "the delivery to give up")
    finally:
        await notifier.aclose()
    assert len(receiver.requests) == 1  # given up after the first answer: no retry
    assert "HTTP 400 (not retried)" in caplog.text
    assert count(metrics, "hook", "ok") == 0


async def test_events_are_filtered_and_unannounced_kinds_ignored(
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    metrics = Metrics()
    notifier = Notifier([hook(receiver.url(), events=frozenset({"drift"}))], metrics.notifications)
    await notifier.start()
    try:
        notifier.emit(entry("switch"))  # not wanted by this destination
        notifier.emit(entry("verify", result="ok"))  # announces nothing
        notifier.emit(entry("drift", alarm="drift"))
        await until(lambda: count(metrics, "hook", "ok") == 1, "the drift delivery")
    finally:
        await notifier.aclose()
    assert [b["event"] for b in receiver.bodies()] == ["drift"]


async def test_a_full_queue_drops_the_oldest_and_counts_it(
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers()
    metrics = Metrics()
    notifier = Notifier([hook(receiver.url())], metrics.notifications)
    await notifier.start()
    extra = 5
    try:
        for n in range(QUEUE_SIZE + extra):  # the worker cannot run between synchronous emits
            notifier.emit(entry(n=n))
        assert count(metrics, "hook", "dropped") == extra
        await until(lambda: count(metrics, "hook", "ok") == QUEUE_SIZE, "the queued deliveries")
    finally:
        await notifier.aclose()
    assert [b["n"] for b in receiver.bodies()] == list(range(extra, QUEUE_SIZE + extra))


async def test_a_hung_webhook_never_blocks_emit_nor_the_other_destination(
    receivers: Callable[..., Receiver],
) -> None:
    hung, alive = receivers(hang=True), receivers()
    metrics = Metrics()
    notifier = Notifier(
        [hook(hung.url(), "hung", timeout=60.0), hook(alive.url(), "alive")],
        metrics.notifications,
    )
    await notifier.start()
    try:
        notifier.emit(entry(n=1))
        notifier.emit(entry(n=2))
        await until(lambda: count(metrics, "alive", "ok") == 2, "the live destination")
        assert hung.pending == 1  # still holding the first event while the other got both
    finally:
        await notifier.aclose(grace=0.1)
    assert count(metrics, "hung", "dropped") == 2  # the in-flight one and the queued one


async def test_the_token_in_the_url_never_leaks(
    receivers: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    refusing, hung = receivers(default=404), receivers(hang=True)
    closed = f"http://127.0.0.1:{free_port()}/hook/{TOKEN}?token={TOKEN}"
    metrics = Metrics()
    destinations = [
        hook(refusing.url(), "refusing"),
        hook(hung.url(), "hung", timeout=0.2),
        hook(closed, "closed"),
        hook(f"https://{TOKEN}@127.0.0.1:{free_port()}/x", "userinfo"),
    ]
    notifier = Notifier(destinations, metrics.notifications)
    await notifier.start()
    try:
        notifier.emit(entry())
        for name in ("refusing", "hung", "closed", "userinfo"):
            await until(lambda n=name: count(metrics, n, "failed") == 1, f"{name} to give up")  # type: ignore[misc]
    finally:
        await notifier.aclose()
    assert len(hung.requests) == FAST.attempts  # timeouts are retried
    assert "failed after 4 attempts: no answer within 0.2s" in caplog.text
    assert "closed (http://127.0.0.1:" in caplog.text  # the name and scheme+host, no more
    assert TOKEN not in caplog.text
    assert TOKEN not in generate_latest(metrics.registry).decode()
    assert all(TOKEN not in repr(d) for d in destinations)


async def test_reconfigure_keeps_unchanged_destinations_and_swaps_the_rest(
    receivers: Callable[..., Receiver],
) -> None:
    first, hung = receivers(), receivers(hang=True)
    a, b = hook(first.url(), "a"), hook(hung.url(), "b", timeout=60.0)
    metrics = Metrics()
    notifier = Notifier([a], metrics.notifications)
    await notifier.start()
    try:
        await notifier.reconfigure([a, b])
        notifier.emit(entry(n=1))
        await until(lambda: len(first.requests) == hung.pending == 1, "both destinations")
        await notifier.reconfigure([hook(hung.url(), "b", timeout=60.0)])  # equal: b is kept
        assert hung.pending == 1 and count(metrics, "b", "dropped") == 0  # still in flight
        notifier.emit(entry(n=2))
    finally:
        await notifier.aclose(grace=0.1)
    assert [body["n"] for body in first.bodies()] == [1]  # `a` was removed before n=2
    assert count(metrics, "b", "dropped") == 2  # n=1 in flight and n=2 queued, at close


# --- the real daemon ---------------------------------------------------------------------------


def notify_lab(tmp_path: Path, notifications: str) -> Lab:
    return Lab(tmp_path, addresses=(PRIMARY, SECONDARY), extra=f"notifications:\n{notifications}")


def notifications(lab: Lab, destination: str, result: str) -> float:
    found = lab.metric("failover_notifications_total", destination=destination, result=result)
    return found or 0.0


def test_the_daemon_posts_json_and_slack_payloads(
    tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    receiver, refusing = receivers(), receivers(default=400)
    destinations = (
        f'  - {{type: webhook, name: json, url: "{receiver.url("json")}"}}\n'
        f'  - {{type: webhook, name: slack, url: "{receiver.url("slack")}", format: slack,'
        " events: [switch]}\n"
        f'  - {{type: webhook, name: refusing, url: "{refusing.url()}", events: [switch]}}\n'
    )
    with notify_lab(tmp_path, destinations) as lab:
        checked = cli("check-config", "-c", str(lab.config))
        assert checked.returncode == 0, checked.stderr
        assert f"refusing: webhook json to http://127.0.0.1:{refusing.port}/…" in checked.stdout
        lab.start()
        lab.wait_answer(PRIMARY)
        for verb in ("pause", "resume"):
            done = lab.cli(verb, "shop")
            assert done.returncode == 0, done.stderr
        lab.primary.stop()
        lab.wait_answer(SECONDARY)
        wait_until(lambda: "switch" in json_events(receiver)[3:], 20, "the switch notification")
        wait_until(lambda: len(slack_texts(receiver)) == 2, 20, "both Slack messages")
        status = json.dumps(lab.cli_json("status", "--json"))
        history = json.dumps(lab.cli_json("history", "--json"))
        metrics = lab.metrics()

    json_bodies = [b for path, b in receiver.requests if path.startswith("/json/")]
    assert json_events(receiver) == ["switch", "pause", "resume", "switch"]
    assert [b["event"] for b in json_bodies[:3]] == ["switch", "pause", "resume"]
    assert json_bodies[0]["kind"] == "publish" and json_bodies[0]["to"] == "primary"
    switch = next(b for b in json_bodies[3:] if b["event"] == "switch")
    assert {k: switch[k] for k in ("service", "from", "to", "trigger", "result", "instance")} == {
        "service": "shop",
        "from": "primary",
        "to": "secondary",
        "trigger": "auto",
        "result": "ok",
        "instance": "test-1",
    }
    assert switch["time"].endswith("Z") and switch["reason"] and switch["severity"] == "warning"
    assert switch["summary"].startswith("[test-1] shop: switched primary -> secondary (auto): ")

    texts = slack_texts(receiver)  # `events: [switch]`: no pause, no resume
    assert texts[0].startswith(":warning: [test-1] shop: published primary (auto)")
    assert texts[1].startswith(":warning: [test-1] shop: switched primary -&gt; secondary (auto)")

    assert metric_value(metrics, "failover_notifications_total", destination="json", result="ok")
    log = lab.log()
    assert f"refusing (http://127.0.0.1:{refusing.port}) failed after 1 attempt: HTTP 400" in log
    for shown in (status, history, metrics, log, checked.stdout):
        assert TOKEN not in shown


def json_events(receiver: Receiver) -> list[str]:
    return [b["event"] for path, b in list(receiver.requests) if path.startswith("/json/")]


def slack_texts(receiver: Receiver) -> list[str]:
    return [b["text"] for path, b in list(receiver.requests) if path.startswith("/slack/")]


def test_dead_webhooks_do_not_slow_a_failover(
    tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    """The DNS flip happens while one webhook holds the start-up event unanswered and the
    other is still retrying a closed port; then SIGTERM still exits at once."""
    hung = receivers(hang=True)
    closed = f"http://127.0.0.1:{free_port()}/hook/{TOKEN}"
    retry = "retry: {attempts: 100, initial: 500ms, max_delay: 2s, deadline: 10m}"
    destinations = (
        f'  - {{type: webhook, name: hung, url: "{hung.url()}", timeout: 10m}}\n'
        f'  - {{type: webhook, name: closed, url: "{closed}", {retry}}}\n'
    )
    with notify_lab(tmp_path, destinations) as lab:
        lab.start()
        lab.wait_answer(PRIMARY)
        wait_until(lambda: hung.pending == 1, 20, "the hung webhook to hold the first event")
        lab.primary.stop()
        lab.wait_answer(SECONDARY)
        assert hung.pending == 1 and len(hung.requests) == 1  # the publish, still unanswered
        for result in ("ok", "failed"):  # the closed port: retries of the publish pending
            assert notifications(lab, "closed", result) == 0
            assert notifications(lab, "hung", result) == 0
        assert [e["to"] for e in lab.history() if e["kind"] == "switch"] == ["secondary"]
        assert lab.stop() == 0
    log = lab.log()
    assert "not sent: stopping" in log and TOKEN not in log
