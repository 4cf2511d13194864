"""Parse primitives every config module builds on: errors, a `Section` reader, converters.

No YAML and no file reading here (those are `loader.py`'s): a new provider or probe parser
needs only `Section` and the small converters below. Converters take the raw YAML value and
either return the typed value or raise `Invalid("<problem>; <what is expected>")`; the
`Section` adds the path.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from failover.config.types import HostPort, Secret
from failover.model import normalize_name
from failover.units import format_size

T = TypeVar("T")


class ConfigError(Exception):
    """Every problem of one file, each `"<path>: <problem>; <what is expected>"`."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class Invalid(Exception):
    """A value was refused; the message is `<problem>; <what is expected>` without the path."""


class Interpolated(str):
    """A string built from `${…}`. It may be a secret, so errors name its origin, not its text."""

    origin: str

    def __new__(cls, value: str, origin: str) -> Interpolated:
        self = super().__new__(cls, value)
        self.origin = origin
        return self


class _Broken:
    """Stands for a value whose interpolation failed: already reported, not to be judged again."""


BROKEN = _Broken()


def show(value: object) -> str:
    """How an error may quote a value: interpolated text is named by its origin, never shown."""
    if isinstance(value, Interpolated):
        return f"value from {value.origin}"
    if isinstance(value, str):
        return repr(str(value))
    return str(value)


def bare(value: str) -> str:
    """Like `show`, unquoted: for names and durations that read well without quotes."""
    return show(value) if isinstance(value, Interpolated) else str(value)


def retaint(source: object, value: str) -> str:
    """`value` derived from `source` keeps its interpolation origin, so errors stay discreet."""
    return Interpolated(value, source.origin) if isinstance(source, Interpolated) else value


def plain(value: str) -> str:
    """An exact `str` for the frozen models (drops the interpolation marker)."""
    return str.__str__(value)


def kind(value: object) -> str:
    """The YAML name of a value's type, for "expected X, got Y" messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, str) and not value.strip():
        return "an empty string"
    names = {bool: "a boolean", int: "an integer", float: "a number", dict: "a mapping"}
    names |= {list: "a list", str: "a string"}
    for cls, name in names.items():
        if isinstance(value, cls):
            return name
    return f"a {type(value).__name__}"


# What `interpolate` (loader.py) puts in place of a secret not available here (check-config
# --without-secrets); a parser that judges a secret's shape must let it pass.
PLACEHOLDER = "cGxhY2Vob2xkZXI="  # base64 of "placeholder": passes secret-format checks


def join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


_HEADER = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"


# --- the section reader ---------------------------------------------------------------------------


class Section:
    """One YAML mapping being read.

    It remembers which keys the schema asked for, so `done()` refuses the rest with a
    did-you-mean, and a tagged union (providers, probes) needs no separate list of allowed keys.
    """

    def __init__(self, errors: list[str], node: object, path: str) -> None:
        self.errors = errors
        self.path = path
        self.known: set[str] = set()
        self.bad: set[str] = set()
        self.broken = not isinstance(node, dict)
        self.node: dict[object, object] = node if isinstance(node, dict) else {}

    @classmethod
    def open(cls, errors: list[str], node: object, path: str) -> Section | None:
        """A Section over `node`, or None (reported) when `node` is not a mapping."""
        if isinstance(node, dict):
            return cls(errors, node, path)
        if node is not BROKEN:
            errors.append(f"{path}: expected a mapping, got {kind(node)}")
        return None

    def sub(self, key: str) -> str:
        return join(self.path, key)

    def error(self, key: str | None, message: str) -> None:
        self.errors.append(f"{self.sub(key) if key else self.path or '<top>'}: {message}")

    def present(self, key: str) -> bool:
        """Whether the key is written at all (even as null)."""
        self.known.add(key)
        return key in self.node

    def raw(self, key: str) -> object:
        self.known.add(key)
        return self.node.get(key)

    def failed(self, *keys: str) -> bool:
        return any(key in self.bad for key in keys)

    def opt(self, key: str, conv: Callable[[Any], T]) -> T | None:
        """The converted value; None when absent, null or refused (the refusal is reported)."""
        value = self.raw(key)
        if value is None:
            return None
        if value is BROKEN:
            self.bad.add(key)
            return None
        try:
            return conv(value)
        except Invalid as exc:
            self.error(key, str(exc))
            self.bad.add(key)
            return None

    def get(self, key: str, conv: Callable[[Any], T], default: T) -> T:
        value = self.opt(key, conv)
        return default if value is None else value

    def need(self, key: str, conv: Callable[[Any], T], expected: str) -> T | None:
        """A required key; `expected` says what to write when it is missing."""
        if self.raw(key) is None and not self.broken:
            self.error(key, f"missing; expected {expected}")
            self.bad.add(key)
        return self.opt(key, conv)

    def secret(self, key: str, *, required: bool = True) -> Secret | None:
        """A credential. Errors about it never quote it, whether interpolated or written clear."""
        value = self.raw(key)
        if value is None:
            if required and not self.broken:
                self.error(key, "missing; expected a secret, like ${ENV_VAR} or ${file:/path}")
            return None
        if value is BROKEN:
            return None
        if not isinstance(value, str) or not value:
            self.error(key, f"expected a non-empty string, got {kind(value)}")
            return None
        return Secret(plain(value), clear_text=not isinstance(value, Interpolated))

    def section(self, key: str) -> Section:
        """The nested mapping (empty when absent; a wrong type is reported)."""
        value = self.raw(key)
        if value is None:
            return Section(self.errors, {}, self.sub(key))
        found = Section.open(self.errors, value, self.sub(key))
        return found or Section(self.errors, BROKEN, self.sub(key))

    def items(self, key: str, what: str = "a list") -> list[tuple[str, object]]:
        """(path, node) of each element of a list value; [] when absent; a wrong type reported."""
        value = self.raw(key)
        if value is BROKEN:
            self.bad.add(key)
        if value is None or value is BROKEN:
            return []
        if not isinstance(value, list):
            self.error(key, f"expected {what}, got {kind(value)}")
            self.bad.add(key)
            return []
        return [(f"{self.sub(key)}[{i}]", item) for i, item in enumerate(value)]

    def item(self, path: str, node: object, conv: Callable[[Any], T]) -> T | None:
        """Convert one list element, reporting a refusal at its own `[i]` path."""
        try:
            return conv(node)
        except Invalid as exc:
            self.errors.append(f"{path}: {exc}")
            return None

    def string_map(self, key: str, key_pattern: str = _HEADER) -> dict[str, str]:
        """A mapping of names to strings (HTTP headers); values may come from `${…}`."""
        sec = self.section(key)
        out: dict[str, str] = {}
        for name, path, value in sec.entries():
            if not re.fullmatch(key_pattern, name):
                sec.error(name, "invalid name; expected letters, digits and '-'")
            elif isinstance(value, str):
                out[name] = plain(value)
            elif value is not BROKEN:
                self.errors.append(f"{path}: expected a string, got {kind(value)}; quote it")
        sec.done()
        return out

    def entries(self) -> list[tuple[str, str, object]]:
        """(name, path, node) of a NAME → section mapping such as providers or services."""
        out = []
        for key, value in self.node.items():
            if isinstance(key, str):
                self.known.add(key)
                out.append((key, self.sub(key), value))
        return out

    def done(self) -> None:
        """Refuse every key the schema did not ask for, suggesting the closest known one."""
        known = sorted(self.known)
        for key in self.node:
            if not isinstance(key, str):
                self.error(None, f"key {key!r} is {kind(key)}; keys must be strings, quote it")
            elif key not in self.known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                allowed = f"known keys here: {', '.join(known)}" if known else "no keys allowed"
                self.error(key, f"unknown key; {hint}{allowed}")


# --- converters -----------------------------------------------------------------------------------


def string(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {kind(value)}")
    if not value.strip():
        raise Invalid("empty; expected a non-empty string")
    return value


def matching(pattern: str, what: str) -> Callable[[object], str]:
    """A string that fully matches `pattern`; `what` describes the allowed spelling."""
    regex = re.compile(pattern)

    def conv(value: object) -> str:
        text = string(value)
        if not regex.fullmatch(text):
            raise Invalid(f"{show(value)} is not a valid name; expected {what}")
        return text

    return conv


def integer(low: int, high: int | None = None) -> Callable[[object], int]:
    def conv(value: object) -> int:
        if isinstance(value, Interpolated) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            number = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise Invalid(f"expected an integer, got {kind(value)}")
        if number < low or (high is not None and number > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise Invalid(
                f"{show(value) if isinstance(value, str) else number} is out of range; "
                f"expected an integer {bounds}"
            )
        return number

    return conv


def boolean(value: object) -> bool:
    if isinstance(value, Interpolated) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {kind(value)}")
    return value


def choice(options: Mapping[str, object] | tuple[str, ...], what: str) -> Callable[[object], str]:
    def conv(value: object) -> str:
        text = string(value)
        if text not in options:
            raise Invalid(f"unknown {what} {show(value)}; expected one of: {', '.join(options)}")
        return plain(text)

    return conv


def path_in(base_dir: Path | None) -> Callable[[object], Path]:
    """Relative paths are read from the config file's directory, not from the daemon's cwd."""

    def conv(value: object) -> Path:
        path = Path(plain(string(value)))
        return base_dir / path if base_dir is not None and not path.is_absolute() else path

    return conv


def readable_file(base_dir: Path | None) -> Callable[[object], Path]:
    """A path (relative to the config file's directory) to a file the daemon can read now."""
    to_path = path_in(base_dir)

    def conv(value: object) -> Path:
        path = to_path(value)
        where = show(value) if isinstance(value, Interpolated) else str(path)
        try:
            with open(path, "rb"):
                pass
        except IsADirectoryError:
            raise Invalid(f"{where} is a directory; expected a file") from None
        except OSError as exc:
            raise Invalid(
                f"cannot read {where}: {exc.strerror or exc}; "
                "the file must exist and be readable by the daemon"
            ) from None
        return path

    return conv


_DURATION = re.compile(
    r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?"
)


def parse_duration(text: object) -> float:
    """Seconds from `200ms`, `5s`, `1.5s`, `10m`, `1h30m`. Bare numbers are refused: is `5`
    seconds or minutes? Raises ValueError saying what to write."""
    if isinstance(text, bool) or not isinstance(text, int | float | str):
        raise ValueError(f"expected a duration, got {kind(text)}; write a duration like 5s")
    if isinstance(text, int | float):
        raise ValueError(f"got the bare number {text}; write a duration with a unit, like 5s")
    spelled = text.strip()
    if spelled.startswith("-"):
        raise ValueError(f"{show(text)} is negative; write a positive duration like 5s")
    if re.fullmatch(r"\d+(\.\d+)?", spelled):
        raise ValueError(f"{show(text)} is a bare number; write a duration with a unit, like 5s")
    match = _DURATION.fullmatch(spelled)
    if not spelled or match is None:
        raise ValueError(
            f"{show(text)} is not a duration; write a duration like 5s, 500ms, 10m or 1h"
        )
    h, m, s, ms = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + s + ms / 1000


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}


def size(low: int, high: int) -> Callable[[object], int]:
    """Bytes from an integer or `512B`, `64KiB`, `1MiB` (KB and MB are powers of 1000)."""
    example = "a size like 4096, 64KiB or 1MiB"

    def conv(value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
            unit = _SIZE_UNITS[(match.group(2) or "b").lower()]
            number = round(float(match.group(1)) * unit)
        else:
            got = show(value) if isinstance(value, str) else kind(value)
            raise Invalid(f"{got} is not a size; expected {example}")
        if not low <= number <= high:
            raise Invalid(
                f"{format_size(number)} is out of range; expected between "
                f"{format_size(low)} and {format_size(high)}"
            )
        return number

    return conv


def duration(*, allow_zero: bool = False) -> Callable[[object], float]:
    def conv(value: object) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        if seconds == 0 and not allow_zero:
            raise Invalid("zero is not allowed here; expected a duration above zero, like 5s")
        return seconds

    return conv


_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


def is_hostname(name: str, *, wildcard: bool = False) -> bool:
    """A DNS host name (normalized); `wildcard` allows a leading `*` label (record names)."""
    labels = name.split(".")
    if wildcard and labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    return (
        0 < len(name) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def dns_name(*, wildcard: bool = False) -> Callable[[object], str]:
    """A DNS name, lower-cased without the trailing dot (model.normalize_name)."""

    def conv(value: object) -> str:
        name = normalize_name(string(value))
        if not is_hostname(name, wildcard=wildcard):
            raise Invalid(f"{show(value)} is not a DNS name; expected a name like example.com")
        return retaint(value, name)

    return conv


def parse_hostport(
    text: str, path: str, *, allow_zero: bool = False, default_port: int | None = None
) -> HostPort:
    """`127.0.0.1:5353`, `[::1]:53`, `ns1.example.com:53`. Raises ConfigError naming `path`."""
    try:
        return hostport(allow_zero=allow_zero, default_port=default_port)(text)
    except Invalid as exc:
        raise ConfigError([f"{path}: {exc}"]) from None


def hostport(
    *, allow_zero: bool = False, default_port: int | None = None
) -> Callable[[object], HostPort]:
    example = "expected host:port, like 127.0.0.1:5353 or [::1]:53"

    def conv(value: object) -> HostPort:
        text = string(value).strip()
        bracketed = re.fullmatch(r"\[([^\]]+)\](?::(.*))?", text)
        if bracketed:
            host, port = bracketed.group(1), bracketed.group(2)
            try:
                host = str(ipaddress.IPv6Address(host))
            except ValueError:
                raise Invalid(f"{show(value)} has no IPv6 address in brackets; {example}") from None
        elif text.count(":") > 1:
            raise Invalid(f"{show(value)}: write IPv6 addresses in brackets; {example}")
        else:
            host, colon, port_text = text.partition(":")
            port = port_text if colon else None
            try:
                host = str(ipaddress.IPv4Address(host))
            except ValueError:
                if not is_hostname(host.rstrip(".").lower()):
                    raise Invalid(f"{show(value)} has no valid host; {example}") from None
        if port is None:
            if default_port is None:
                raise Invalid(f"{show(value)} has no port; {example}")
            return HostPort(host, default_port)
        low = 0 if allow_zero else 1
        if not port.isdigit() or not low <= int(port) <= 65535:
            raise Invalid(f"{show(value)} has an invalid port; expected a port {low}..65535")
        return HostPort(host, int(port))

    return conv
