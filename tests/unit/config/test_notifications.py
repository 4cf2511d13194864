"""The `notifications:` section and the pure half of notify.py: event mapping and payloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from failover.config.describe import describe
from failover.config.loader import ConfigError, parse_config
from failover.config.notifications import EVENTS
from failover.config.types import WebhookConfig
from failover.journal import Journal
from failover.model import Trigger
from failover.notify import event_of, render
from failover.store import Store

TOKEN = "T0KEN-s3cr3t-9f8e7d"
BASE = """
instance: {name: t, state_dir: /tmp/x}
providers:
  lab: {type: builtin, listen: "127.0.0.1:5353"}
services:
  shop:
    records: [{provider: lab, zone: example.test, name: shop.example.test, type: A}]
    targets:
      - {name: a, values: [192.0.2.1], probes: [{type: tcp, address: "192.0.2.1:443"}]}
"""
ENV = {"HOOK": f"https://hooks.slack.com/services/{TOKEN}"}


def load(notifications: str, env: dict[str, str] | None = None) -> tuple[WebhookConfig, ...]:
    config = parse_config(BASE + f"notifications: {notifications}\n", env=ENV | (env or {}))
    return config.notifications


def errors(notifications: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(notifications)
    return str(info.value)


def test_a_webhook_with_its_defaults() -> None:
    (hook,) = load("[{type: webhook, url: '${HOOK}'}]")
    assert hook.name == "webhook-0" and hook.format == "json" and hook.events is None
    assert hook.url.reveal() == ENV["HOOK"] and TOKEN not in repr(hook)
    assert hook.timeout == 5.0 and hook.retry.attempts == 5 and hook.retry.deadline == 60.0
    assert parse_config(BASE, env={}).notifications == ()


def test_every_option() -> None:
    hooks = load(
        "[{type: webhook, url: '${HOOK}', format: slack, name: oncall, events: [switch, drift],"
        " timeout: 2s, retry: {attempts: 3, initial: 100ms, max_delay: 1s, deadline: 10s}},"
        " {type: webhook, url: 'http://127.0.0.1:9/x', events: all}]"
    )
    assert [h.name for h in hooks] == ["oncall", "webhook-1"]
    assert hooks[0].format == "slack" and hooks[0].events == {"switch", "drift"}
    assert hooks[0].timeout == 2.0 and hooks[0].retry.initial == 0.1
    assert hooks[1].events is None


@pytest.mark.parametrize(
    ("notifications", "expected"),
    [
        ("[{type: email, url: '${HOOK}'}]", "notifications[0].type: unknown notification type"),
        ("[{type: webhook}]", "notifications[0].url: missing; expected a secret"),
        ("[{url: '${HOOK}'}]", "notifications[0].type: missing; expected a type, one of: webhook"),
        ("[{type: webhook, url: '${HOOK}', format: teams}]", "format: unknown format 'teams'"),
        (
            "[{type: webhook, url: '${HOOK}', events: [swtich]}]",
            "notifications[0].events[0]: unknown event 'swtich'; did you mean 'switch'?",
        ),
        ("[{type: webhook, url: '${HOOK}', events: []}]", "expected `all` or a non-empty list"),
        ("[{type: webhook, url: '${HOOK}', timeout: 5}]", "timeout: got the bare number 5"),
        ("[{type: webhook, url: '${HOOK}', retries: 3}]", "unknown key; did you mean 'retry'?"),
        (
            "[{type: webhook, url: '${HOOK}', name: a}, {type: webhook, url: '${HOOK}', name: a}]",
            "notifications[1].name: the name 'a' is already used by notifications[0]",
        ),
        ("{type: webhook}", "notifications: expected a list of destinations, got a mapping"),
    ],
)
def test_errors_name_the_path_and_the_fix(notifications: str, expected: str) -> None:
    assert expected in errors(notifications)


@pytest.mark.parametrize(
    "url",
    [f"ftp://hooks.example.com/{TOKEN}", f"hooks.example.com/{TOKEN}", f"https://h:99999/{TOKEN}"],
)
def test_a_bad_url_is_refused_without_quoting_it(url: str) -> None:
    for written in (f"'{url}'", "'${BAD}'"):
        with pytest.raises(ConfigError) as info:
            load(f"[{{type: webhook, url: {written}}}]", env={"BAD": url})
        message = str(info.value)
        assert "notifications[0].url: " in message and "not shown" in message
        assert TOKEN not in message


def test_check_config_shows_scheme_and_host_only() -> None:
    text = parse_config(
        BASE + "notifications: [{type: webhook, url: '${HOOK}', events: [drift, switch]}]\n",
        env=ENV,
    )
    summary = describe(text)
    assert "webhook-0: webhook json to https://hooks.slack.com/…; switch, drift" in summary
    assert TOKEN not in summary


def test_a_missing_secret_url_passes_check_config_without_secrets() -> None:
    missing: list[str] = []
    config = parse_config(
        BASE + "notifications: [{type: webhook, url: '${NOPE}'}]\n", env={}, missing_secrets=missing
    )
    assert missing == ["notifications[0].url: ${NOPE}"]
    assert "to (URL not shown)" in describe(config)


# --- events and payloads ----------------------------------------------------------------------


def entry(kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "time": "2026-01-02T03:04:05.000Z",
        "ts": 1.0,
        "instance": "gra-1",
        "service": "shop",
        "kind": kind,
        "trigger": "auto",
        "actor": "failover@gra-1",
        "from": "primary",
        "to": "secondary",
        "reason": "primary DOWN (connect refused) -> switching to secondary",
        **extra,
    }


@pytest.mark.parametrize(
    ("journalled", "event"),
    [
        (entry("switch", result="ok"), "switch"),
        (entry("publish", result="ok"), "switch"),
        (entry("switch", result="partial"), "change_failed"),
        (entry("publish", result="error"), "change_failed"),
        (entry("verify", result="failed"), "not_verified"),
        (entry("verify", result="ok"), None),
        (entry("retry", result="error"), None),
        (entry("alarm", alarm="all_down"), "all_down"),
        (entry("alarm", alarm="blocked"), "block"),
        (entry("alarm", alarm="no_healthy_target"), "no_healthy_target"),
        (entry("alarm", alarm="pinned_target_down"), "pinned_target_down"),
        (entry("alarm", alarm="change_ignored"), "change_ignored"),
        (entry("alarm", alarm="split_answer"), "split_answer"),
        (entry("alarm", alarm="isolated"), None),  # told once, by the instance-wide entry
        (entry("block"), None),  # the `blocked` alarm of the same decision tells it
        (entry("drift", alarm="drift"), "drift"),
        (entry("refused"), "refused"),
        (entry("isolated", service="*"), "isolated"),
        (entry("isolation_cleared", service="*"), "isolation_cleared"),
        (entry("pin", trigger="manual", actor="alice"), "pin"),
        (entry("release"), "release"),
        (entry("pause"), "pause"),
        (entry("resume"), "resume"),
        (entry("ack"), "ack"),
        (entry("abandoned", result="error"), "change_failed"),
        (entry("drill", trigger="drill", result="started"), "drill"),
        (entry("reload", service="*", result="ok"), "reload"),
        (entry("reload", service="*", result="error"), "reload_failed"),
        (entry("journal_unwritable", service="*"), "journal_unwritable"),
        (entry("journal_recovered", service="*"), "journal_recovered"),
        (entry("journal_lost", service="*", result="error"), None),  # told by journal_recovered
    ],
)
def test_journal_entries_map_to_events(journalled: dict[str, Any], event: str | None) -> None:
    assert event_of(journalled) == event
    assert event is None or event in EVENTS


def test_every_configurable_event_can_happen() -> None:
    kinds = ["switch", "publish", "verify", "drift", "refused", "isolated", "isolation_cleared"]
    kinds += ["local_fault", "local_fault_cleared"]
    kinds += ["pin", "release", "pause", "resume", "ack", "drill", "reload"]
    kinds += ["drain", "undrain", "switchover"]
    kinds += ["journal_unwritable", "journal_recovered"]
    produced = {event_of(entry(k, result=r)) for k in kinds for r in ("ok", "error", "failed")}
    alarms = ("all_down", "blocked", "no_healthy_target", "pinned_target_down")
    alarms += ("change_ignored", "split_answer")
    produced |= {event_of(entry("alarm", alarm=a)) for a in alarms}
    assert produced - {None} == set(EVENTS)


@pytest.mark.parametrize(
    ("fields", "event", "head", "severity"),
    [
        (
            {"kind": "drain", "target": "primary", "actor": "alice", "until": "2026-12-06T02:00Z"},
            "drain",
            "shop: primary DRAINED by alice until 2026-12-06T02:00Z",
            "info",
        ),
        (
            {"kind": "undrain", "target": "primary", "actor": "maintenance"},
            "undrain",
            "shop: primary back in service (maintenance)",
            "info",
        ),
        (
            {"kind": "switchover", "step": "lowered", "to": "secondary", "result": "ok"},
            "switchover",
            "shop: switchover to secondary: lowered",
            "info",
        ),
        (
            {"kind": "switchover", "step": "lowered-failed", "to": "secondary", "result": "error"},
            "switchover",
            "shop: switchover to secondary: lowered-failed",
            "warning",
        ),
    ],
)
def test_drains_and_switchover_steps_are_announced(
    fields: dict[str, str], event: str, head: str, severity: str
) -> None:
    body = {**entry(fields["kind"]), "reason": "kernel patching", **fields}
    assert event_of(body) == event and event in EVENTS
    rendered = render(event, body, "json")
    assert rendered["summary"] == f"[{body['instance']}] {head}: kernel patching"
    assert rendered["severity"] == severity


def test_json_payload_is_the_entry_with_event_severity_and_summary() -> None:
    body = render("switch", entry("switch", result="ok"), "json")
    assert body["event"] == "switch" and body["severity"] == "warning"
    for key, value in entry("switch", result="ok").items():
        if key != "ts":
            assert body[key] == value
    assert "ts" not in body
    assert body["summary"].startswith("[gra-1] shop: switched primary -> secondary (auto): ")


def test_failed_change_names_the_failing_providers() -> None:
    providers = [
        {"provider": "ovh", "ok": False, "error": "HTTP 503"},
        {"provider": "r53", "ok": True},
    ]
    body = render("change_failed", entry("switch", result="partial", providers=providers), "json")
    assert body["severity"] == "critical" and body["providers"] == providers
    assert body["summary"].endswith("FAILED (partial): ovh: HTTP 503")


def test_slack_payload_is_one_escaped_line_with_blocks() -> None:
    body = render("drift", entry("drift", reason="values <x> & y"), "slack")
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith(":rotating_light: [gra-1] shop: DRIFT")
    assert "values &lt;x&gt; &amp; y" in body["text"] and "<x>" not in str(body)
    assert [b["type"] for b in body["blocks"]] == ["section", "context"]
    assert "gra-1 · auto · 2026-01-02T03:04:05.000Z" in str(body["blocks"][1])
    switched = render("switch", entry("switch", result="ok"), "slack")["text"]
    assert "shop: switched primary -&gt; secondary (auto)" in switched


def test_slack_texts_stay_within_slack_limits_and_operator_events_name_the_actor() -> None:
    body = render("not_verified", entry("verify", reason="x" * 10_000, result="failed"), "slack")
    assert len(body["text"]) < 3000 and len(body["blocks"][0]["text"]["text"]) < 3000
    paused = render("pause", entry("pause", actor="alice", reason="pause by alice"), "json")
    assert paused["summary"] == "[gra-1] shop: automation paused by alice: pause by alice"
    assert paused["severity"] == "info"


async def test_the_journal_hands_every_written_entry_to_its_hook(tmp_path: Path) -> None:
    seen: list[str] = []

    def hook(body: dict[str, Any]) -> None:
        seen.append(body["kind"])
        if body["kind"] == "drift":
            raise RuntimeError("a broken hook")

    journal = Journal(Store(tmp_path), "gra-1", on_entry=hook)
    await journal.write("shop", "drift", Trigger.AUTO, "hand edit", 1.0)  # the hook raises
    await journal.write("shop", "switch", Trigger.AUTO, "primary DOWN", 2.0, result="ok")
    assert seen == ["drift", "switch"]
    assert [e["kind"] for e in Store(tmp_path).history()] == ["drift", "switch"]
