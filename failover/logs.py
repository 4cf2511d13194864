"""Log output: one event per line, as text for people or JSON for log pipelines.

The JSON form carries a fixed set of keys (time, level, logger, message, and service, target,
provider when the event names them through `extra=`), so a pipeline can index them without
parsing messages. Nothing else of the log record is copied out: arguments and stray
attributes could hold a secret, and only the formatted message, which the code writes with
that in mind, leaves the process. Repeated lines are rate-limited (`RepeatFilter`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import Any

FORMATS = ("text", "json")
FIELDS = ("service", "target", "provider")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def fields(
    service: str | None = None, target: str | None = None, provider: str | None = None
) -> dict[str, Any]:
    """`extra=` for a log call: the service/target/provider the event is about."""
    found = {"service": service, "target": target, "provider": provider}
    return {k: v for k, v in found.items() if v is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `time` is RFC 3339 UTC with milliseconds."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if isinstance(value, str):
                body[name] = value
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"


def setup(level: str = "info", fmt: str = "text") -> None:
    """Configure the root logger on stderr (journald and container runtimes collect it)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    repeats = RepeatFilter()
    repeats.emit = handler.handle
    handler.addFilter(repeats)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # the Cloudflare SDK's HTTP client logs every request at INFO; providers log what matters
    logging.getLogger("httpx").setLevel(logging.WARNING)


REPEAT_WINDOW = 10.0  # seconds: the same line more than once in a window is counted, not written
_DIGITS = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """Rate-limits repeated lines so a fault cannot fill the disk: a line whose message (digits
    aside, so ports, counts and durations do not make it new) was written less than `window`
    seconds ago is counted instead; when the window ends, one summary line says how many were
    suppressed. A fault that logs on every probe or accept stays a few lines a minute."""

    def __init__(self, window: float = REPEAT_WINDOW, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[str, int, str], _Window] = {}
        self._next_sweep = 0.0
        self._lock = threading.RLock()  # probes and providers log from worker threads too
        self.emit: Any = None  # set by `setup`: writes a summary record through the handler

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            return self._admit(record)

    def _admit(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        if now >= self._next_sweep:
            self._sweep(now)
        key = (record.name, record.levelno, _DIGITS.sub("#", record.getMessage()))
        seen = self._seen.get(key)
        if seen is None or now - seen.start >= self.window:
            if seen is not None and seen.suppressed:
                self._summary(seen)
            self._seen[key] = _Window(now, record)
            return True
        seen.suppressed += 1
        return False

    def _sweep(self, now: float) -> None:
        """Summarise the windows that ended, forget them (memory stays bounded by the window)."""
        self._next_sweep = now + min(1.0, self.window)
        for key, seen in list(self._seen.items()):
            if now - seen.start >= self.window:
                del self._seen[key]
                if seen.suppressed:
                    self._summary(seen)

    def _summary(self, seen: _Window) -> None:
        first = seen.record
        record = logging.makeLogRecord(
            {
                "name": first.name,
                "levelno": first.levelno,
                "levelname": first.levelname,
                "msg": "%d repeats suppressed in the last %gs of: %s",
                "args": (seen.suppressed, self.window, first.getMessage()),
                **{k: getattr(first, k) for k in FIELDS if hasattr(first, k)},
            }
        )
        seen.suppressed = 0
        if self.emit is not None:
            self.emit(record)


class _Window:
    __slots__ = ("record", "start", "suppressed")

    def __init__(self, start: float, record: logging.LogRecord) -> None:
        self.start, self.record, self.suppressed = start, record, 0
