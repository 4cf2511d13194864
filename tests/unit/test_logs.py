"""Log formats: JSON keeps a fixed set of keys and copies nothing else out of a record."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from failover.logs import JsonFormatter, fields, setup


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("failover.engine", logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_line_has_time_level_logger_message_and_named_fields() -> None:
    line = JsonFormatter().format(
        record("%s switched", "shop", **fields("shop", "secondary", provider="ovh"))
    )
    assert "\n" not in line
    body = json.loads(line)
    assert body.keys() == {"time", "level", "logger", "message", "service", "target", "provider"}
    assert body["message"] == "shop switched"
    assert body["level"] == "warning"
    assert body["logger"] == "failover.engine"
    assert (body["service"], body["target"], body["provider"]) == ("shop", "secondary", "ovh")
    assert body["time"].endswith("Z") and "T" in body["time"]


def test_json_copies_no_other_record_attribute() -> None:
    body = json.loads(JsonFormatter().format(record("hello", password="hunter2")))
    assert "hunter2" not in json.dumps(body)
    assert set(body) == {"time", "level", "logger", "message"}


def test_exceptions_stay_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), None)
        rec.exc_info = sys.exc_info()
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="json"):
        setup("info", "xml")


def test_repeated_lines_are_counted_then_summarised_once_per_window() -> None:
    from failover.logs import RepeatFilter

    now = [0.0]
    repeats = RepeatFilter(window=10.0, clock=lambda: now[0])
    written: list[logging.LogRecord] = []
    repeats.emit = written.append
    kept = [repeats.filter(record("accept failed on fd %d", n)) for n in range(1000)]
    assert kept.count(True) == 1  # digits aside, the same line
    assert repeats.filter(record("another line"))
    now[0] = 10.5
    assert repeats.filter(record("another line"))  # a new window: written, and the sweep ran
    assert [r.getMessage() for r in written] == [
        "999 repeats suppressed in the last 10s of: accept failed on fd 0"
    ]
    assert written[0].levelno == logging.WARNING


def test_setup_rate_limits_the_real_handler(capsys: pytest.CaptureFixture[str]) -> None:
    setup("info", "text")
    log = logging.getLogger("failover.test")
    for _ in range(50):
        log.error("too many open files")
    err = capsys.readouterr().err
    assert err.count("too many open files") == 1
