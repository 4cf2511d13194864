"""Parse primitives: durations and host:port, with messages that say what to write."""

from __future__ import annotations

import pytest

from failover.config.parse import ConfigError, parse_duration, parse_hostport
from failover.config.types import HostPort
from tests.unit.config.helpers import base, load


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("200ms", 0.2),
        ("5s", 5.0),
        ("1.5s", 1.5),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("2m500ms", 120.5),
        (" 5s ", 5.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5", "bare number"),
        (5, "bare number"),
        (1.5, "bare number"),
        ("-5s", "negative"),
        ("", "not a duration"),
        ("5 s", "not a duration"),
        ("5sec", "not a duration"),
        ("30m1h", "not a duration"),
        ("1d", "not a duration"),
        (True, "expected a duration"),
        (None, "expected a duration"),
    ],
)
def test_parse_duration_refuses(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_duration(text)
    assert "like 5s" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5353", HostPort("127.0.0.1", 5353)),
        ("[::1]:53", HostPort("::1", 53)),
        ("[2001:DB8::0001]:443", HostPort("2001:db8::1", 443)),
        ("ns1.example.com:53", HostPort("ns1.example.com", 53)),
        ("127.0.0.1:65535", HostPort("127.0.0.1", 65535)),
    ],
)
def test_parse_hostport(text: str, expected: HostPort) -> None:
    assert parse_hostport(text, "x") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1", "no port"),
        ("127.0.0.1:0", "port 1..65535"),
        ("127.0.0.1:65536", "port 1..65535"),
        ("127.0.0.1:http", "invalid port"),
        ("::1:53", "brackets"),
        ("[example.com]:53", "IPv6"),
        ("bad host!:53", "no valid host"),
    ],
)
def test_parse_hostport_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_hostport(text, "metrics.listen")
    assert info.value.errors[0].startswith("metrics.listen: ")


def test_port_zero_where_it_makes_sense() -> None:
    assert parse_hostport("127.0.0.1:0", "x", allow_zero=True).port == 0
    cfg = base()
    cfg["metrics"] = {"listen": "127.0.0.1:0"}
    config = load(cfg)
    assert config.metrics.listen == HostPort("127.0.0.1", 0)
    assert config.providers["local"].listen == HostPort("127.0.0.1", 0)
