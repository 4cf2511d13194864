"""The `notifications:` section: where events are sent (by `notify.py`).

A list of destinations, a tagged union on `type` like providers: a new kind (email, PagerDuty…)
adds one parser to `NOTIFY_PARSERS` and one dataclass to `types.NotificationConfig`.
Webhook URLs usually embed their token, so they are `Secret`s and no message here ever quotes
one, not even a malformed one written in clear.
"""

from __future__ import annotations

import difflib
import urllib.parse
from collections.abc import Callable

from failover.config.common import retry_policy, valid_name
from failover.config.parse import (
    PLACEHOLDER,
    Invalid,
    Section,
    choice,
    duration,
    plain,
    show,
    string,
)
from failover.config.types import NotificationConfig, Secret, WebhookConfig

# Event name -> what triggers it. `notify.event_of` maps journal entries onto these names.
EVENTS: dict[str, str] = {
    "switch": "a switch (or first publication) accepted by every provider",
    "change_failed": "a DNS change refused or failed at some or all providers",
    "not_verified": "a change the authoritative servers do not serve in time",
    "block": "automation blocked by the flap guard until `failover ack`",
    "drift": "DNS changed by hand: matches no target",
    "all_down": "every target DOWN: the current answer is held",
    "no_healthy_target": "nothing published yet and no target UP",
    "pinned_target_down": "the pinned target is DOWN",
    "change_ignored": "a provider accepted a change and kept serving the old answer",
    "split_answer": "the providers of a record disagree and one serves a DOWN target",
    "refused": "a change refused by a safety rule",
    "isolated": "this instance believes it is cut off: no automatic switch",
    "isolation_cleared": "the isolation guard cleared",
    "local_fault": "probes fail for a local reason (no file descriptors, a stalled loop): no "
    "automatic switch",
    "local_fault_cleared": "the local fault cleared",
    "pin": "an operator promoted a target (`failover promote`)",
    "release": "an operator released a pin",
    "pause": "an operator paused automation",
    "resume": "an operator resumed automation",
    "ack": "an operator acknowledged a flap block",
    "drill": "a drill started or ended (`failover drill`)",
    "drain": "a target drained (`failover drain`, or a maintenance window opening)",
    "undrain": "a drain ended (`failover undrain`, its `--for` expiring, a window closing)",
    "switchover": "a planned switchover took a step (scheduled, lowered, switched, done, "
    "cancelled) or failed one (`failover switchover`)",
    "reload": "the configuration was reloaded",
    "reload_failed": "a reload was rejected: the running configuration stays",
    "journal_unwritable": "the state disk refuses writes: journal and state wait in memory",
    "journal_recovered": "the journal entries that waited in memory are written",
}
FORMATS = ("json", "slack")


def safe_origin(url: str) -> str:
    """What may be shown of a webhook URL: scheme and host, never the path, query or userinfo
    (where tokens live)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(URL not shown)"
    if not parts.scheme or not host:
        return "(URL not shown)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}"


def _url_problem(text: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(text)
        _ = parts.port  # raises on a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http(s) URL with a host"
    if any(c.isspace() for c in text):
        return "contains spaces"
    return None


def _events(sec: Section) -> frozenset[str] | None:
    """`events: all` (the default) or a list of event names; unknown names get a did-you-mean."""
    raw = sec.raw("events")
    if raw is None or raw == "all":
        return None
    known = ", ".join(EVENTS)
    if not isinstance(raw, list) or not raw:
        sec.error(
            "events",
            f"expected `all` or a non-empty list of events, like [switch, drift]; events: {known}",
        )
        return None
    out: set[str] = set()
    for path, node in sec.items("events"):
        try:
            name = plain(string(node))
        except Invalid as exc:
            sec.errors.append(f"{path}: {exc}")
            continue
        if name == "all":
            return None
        if name not in EVENTS:
            close = difflib.get_close_matches(name, list(EVENTS), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            sec.errors.append(f"{path}: unknown event {show(node)}; {hint}events: {known}, all")
            continue
        out.add(name)
    return frozenset(out)


def webhook(sec: Section, name: str) -> WebhookConfig | None:
    url = sec.secret("url")
    if url is not None and PLACEHOLDER not in url.reveal():  # a placeholder cannot be judged
        problem = _url_problem(url.reveal())
        if problem is not None:
            sec.error(
                "url",
                f"{problem} (the value is not shown: it may hold a token); expected a URL "
                "like https://hooks.slack.com/services/…",
            )
            url = None
    config = WebhookConfig(
        name=name,
        url=url or Secret(""),
        format=sec.get("format", choice(FORMATS, "format"), "json"),  # type: ignore[arg-type]
        events=_events(sec),
        timeout=sec.get("timeout", duration(), 5.0),
        retry=retry_policy(sec),
    )
    return config if url is not None else None


NotifyParser = Callable[[Section, str], NotificationConfig | None]
NOTIFY_PARSERS: dict[str, NotifyParser] = {"webhook": webhook}


def parse_notifications(top: Section) -> tuple[NotificationConfig, ...]:
    """Every destination of `notifications:`; names are unique (they label metrics)."""
    out: list[NotificationConfig] = []
    names: dict[str, str] = {}
    for i, (path, node) in enumerate(top.items("notifications", "a list of destinations")):
        n = Section.open(top.errors, node, path)
        if n is None:
            continue
        kinds = f"a type, one of: {', '.join(NOTIFY_PARSERS)}"
        ntype = n.need("type", choice(NOTIFY_PARSERS, "notification type"), kinds)
        name = plain(n.get("name", valid_name, f"{ntype or 'webhook'}-{i}"))
        if name in names:
            where = "name" if n.present("name") else None
            n.error(where, f"the name {name!r} is already used by {names[name]}; name each one")
        names.setdefault(name, path)
        if ntype is None:
            continue  # its other keys cannot be judged without a known type
        config = NOTIFY_PARSERS[ntype](n, name)
        n.done()
        if config is not None:
            out.append(config)
    return tuple(out)
