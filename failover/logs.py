"""Log output: one event per line, as text for people or JSON for log pipelines.

The JSON form carries a fixed set of keys (time, level, logger, message, and service, target,
provider when the event names them through `extra=`), so a pipeline can index them without
parsing messages. Nothing else of the log record is copied out: arguments and stray
attributes could hold a secret, and only the formatted message, which the code writes with
that in mind, leaves the process.
"""

from __future__ import annotations

import json
import logging
import sys
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
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
