"""Config of the http and tcp probes: new keys, their defaults, and every error with its path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from failover.config.describe import describe
from failover.config.loader import ConfigError, parse_config
from failover.config.types import Config, HttpProbeConfig, ProbeConfig, TcpProbeConfig

AT = "services.shop.targets[0].probes[0]"
Cfg = dict[str, Any]


def config_with(probe: Cfg) -> Cfg:
    return copy.deepcopy(
        {
            "instance": {"name": "test-1", "state_dir": "/tmp/fo/state"},
            "admin": {"socket": "/tmp/fo/admin.sock"},
            "providers": {"local": {"type": "builtin", "listen": "127.0.0.1:0"}},
            "services": {
                "shop": {
                    "records": [
                        {"provider": "local", "zone": "example.com", "name": "shop.example.com"}
                        | {"type": "A"}
                    ],
                    "targets": [{"name": "primary", "values": ["192.0.2.1"], "probes": [probe]}],
                }
            },
        }
    )


def load(probe: Cfg, source: Path | None = None) -> Config:
    return parse_config(yaml.safe_dump(config_with(probe), sort_keys=False), source=source, env={})


def first_probe(config: Config) -> ProbeConfig:
    return config.services["shop"].targets[0].probes[0]


def http(source: Path | None = None, **keys: Any) -> HttpProbeConfig:
    probe = first_probe(load({"type": "http", "url": "https://192.0.2.1/healthz"} | keys, source))
    assert isinstance(probe, HttpProbeConfig)
    return probe


def tcp(source: Path | None = None, **keys: Any) -> TcpProbeConfig:
    probe = first_probe(load({"type": "tcp", "address": "192.0.2.1:6379"} | keys, source))
    assert isinstance(probe, TcpProbeConfig)
    return probe


def errors(probe: Cfg, source: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(probe, source)
    return info.value.errors


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A directory with ca.pem, client.crt, client.key, other.key and a config file path."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client = ca.issue_cert("client.test")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    ca.issue_cert("other.test").private_key_pem.write_to_path(str(tmp_path / "other.key"))
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    return tmp_path


# --- http -------------------------------------------------------------------------------------


def test_http_defaults() -> None:
    probe = http()
    assert probe.expect_status == (200,)
    assert probe.body_limit == 64 * 1024
    assert (probe.follow_redirects, probe.max_redirects) == (False, 5)
    assert probe.verify_tls is True
    assert (probe.ca_file, probe.client_cert, probe.client_key) == (None, None, None)
    assert probe.tls_min_version is None


@pytest.mark.parametrize(
    ("written", "parsed"),
    [
        ([200, "2xx", "301", "3XX"], (200, "2xx", 301, "3xx")),
        ("2xx", ("2xx",)),
        (204, (204,)),
        ([200, 200], (200,)),
    ],
)
def test_expect_status_codes_and_classes(written: object, parsed: tuple[int | str, ...]) -> None:
    assert http(expect_status=written).expect_status == parsed


@pytest.mark.parametrize(
    ("written", "size"),
    [(4096, 4096), ("64KiB", 65536), ("1MiB", 1048576), ("64KB", 64000), ("512 B", 512)],
)
def test_body_limit_sizes(written: object, size: int) -> None:
    assert http(body_limit=written).body_limit == size


def test_http_tls_and_redirect_keys(pki: Path) -> None:
    probe = http(
        pki / "failover.yaml",
        follow_redirects=True,
        max_redirects=3,
        ca_file="ca.pem",  # relative to the config file
        client_cert="client.crt",
        client_key=str(pki / "client.key"),
        tls_min_version=1.3,  # an unquoted YAML number
        tls_server_name="Shop.Test",
    )
    assert (probe.follow_redirects, probe.max_redirects) == (True, 3)
    assert probe.ca_file == pki / "ca.pem"
    assert (probe.client_cert, probe.client_key) == (pki / "client.crt", pki / "client.key")
    assert probe.tls_min_version == "1.3"
    assert probe.tls_server_name == "shop.test"
    assert http(tls_min_version="1.2").tls_min_version == "1.2"


def test_tls_keys_on_http_url_allowed_when_following_redirects(pki: Path) -> None:
    probe = http(url="http://192.0.2.1/", follow_redirects=True, ca_file=str(pki / "ca.pem"))
    assert probe.ca_file == pki / "ca.pem"


def test_http_describe(pki: Path) -> None:
    keys = {"body_regex": "ok", "follow_redirects": True, "ca_file": str(pki / "ca.pem")}
    text = describe(
        load({"type": "http", "url": "https://192.0.2.1/h", "expect_status": "2xx"} | keys)
    )
    assert "expect 2xx, body matches 'ok' in first 64KiB, follows up to 5 redirects" in text
    assert f"TLS verified against {pki / 'ca.pem'}" in text


HTTP_ERRORS: list[tuple[str, Cfg, str, str]] = [
    ("status range", {"expect_status": [99]}, "expect_status", "99 is out of range"),
    ("status class", {"expect_status": ["2xy"]}, "expect_status", "'2xy' is not an HTTP status"),
    ("status 6xx", {"expect_status": "6xx"}, "expect_status", "expected status codes 100..599"),
    ("status empty", {"expect_status": []}, "expect_status", "empty list"),
    ("status bool", {"expect_status": [True]}, "expect_status", "a boolean is not an HTTP status"),
    ("limit unit", {"body_limit": "64 parsecs"}, "body_limit", "is not a size"),
    ("limit zero", {"body_limit": 0}, "body_limit", "out of range"),
    ("limit huge", {"body_limit": "32MiB"}, "body_limit", "between 1 byte and 16MiB"),
    ("redirects alone", {"max_redirects": 3}, "max_redirects", "without follow_redirects: true"),
    (
        "redirects zero",
        {"follow_redirects": True, "max_redirects": 0},
        "max_redirects",
        "between 1 and 30",
    ),
    ("follow type", {"follow_redirects": "yes"}, "follow_redirects", "expected true or false"),
    ("tls version", {"tls_min_version": "1.1"}, "tls_min_version", 'expected "1.2" or "1.3"'),
    ("tls version num", {"tls_min_version": 1.0}, "tls_min_version", "1.0 is not a TLS version"),
    ("host header", {"headers": {"Host": "x"}}, "headers.Host", "with the `host` key"),
    ("ca missing", {"ca_file": "/nonexistent/ca.pem"}, "ca_file", "cannot read /nonexistent"),
    ("ca is dir", {"ca_file": "/"}, "ca_file", "is a directory; expected a file"),
]


@pytest.mark.parametrize(
    ("keys", "key", "message"), [c[1:] for c in HTTP_ERRORS], ids=[c[0] for c in HTTP_ERRORS]
)
def test_http_errors(keys: Cfg, key: str, message: str) -> None:
    found = errors({"type": "http", "url": "https://192.0.2.1/"} | keys)
    assert any(e.startswith(f"{AT}.{key}: ") and message in e for e in found), found


@pytest.mark.parametrize(
    "key", ["verify_tls", "tls_server_name", "ca_file", "client_cert", "tls_min_version"]
)
def test_tls_keys_on_a_plain_http_url(pki: Path, key: str) -> None:
    value = {
        "verify_tls": False,
        "tls_server_name": "shop.test",
        "ca_file": str(pki / "ca.pem"),
        "client_cert": str(pki / "client.crt"),
        "tls_min_version": "1.3",
    }[key]
    found = errors({"type": "http", "url": "http://192.0.2.1/", key: value})
    assert found == [
        f"{AT}.{key}: set on a plain http URL; TLS options only apply to https URLs "
        "(or, with follow_redirects: true, to redirects to https)"
    ]


def test_tls_file_errors(pki: Path) -> None:
    src = pki / "failover.yaml"
    https = {"type": "http", "url": "https://192.0.2.1/"}
    [bad_ca] = errors(https | {"ca_file": "not-a-cert.pem"}, src)
    assert bad_ca.startswith(f"{AT}.ca_file: cannot load ca_file {pki / 'not-a-cert.pem'}")
    [unverified] = errors(https | {"ca_file": "ca.pem", "verify_tls": False}, src)
    assert unverified == (
        f"{AT}.ca_file: set while verify_tls is false; the CA file only serves verification"
    )
    [key_only] = errors(https | {"client_key": "client.key"}, src)
    assert key_only == f"{AT}.client_key: set without client_cert; add the client certificate file"
    [mismatch] = errors(https | {"client_cert": "client.crt", "client_key": "other.key"}, src)
    assert mismatch.startswith(f"{AT}.client_key: cannot load client certificate")
    [no_key] = errors(https | {"client_cert": "client.crt"}, src)
    assert no_key.startswith(f"{AT}.client_cert: cannot load client certificate")


# --- tcp --------------------------------------------------------------------------------------


def test_tcp_defaults() -> None:
    probe = tcp()
    assert (probe.send, probe.expect, probe.expect_bytes, probe.tls) == (None, None, 4096, False)


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("PING\\r\\n", b"PING\r\n"),  # escapes written literally (single-quoted YAML)
        ("PING\r\n", b"PING\r\n"),  # or already interpreted by YAML
        ("\\x00\\xffA\\t\\\\", b"\x00\xffA\t\\"),
        ("café", "café".encode()),
    ],
)
def test_tcp_send_escapes(written: str, sent: bytes) -> None:
    assert tcp(send=written).send == sent


def test_tcp_expect_and_tls(pki: Path) -> None:
    probe = tcp(
        pki / "failover.yaml",
        send="PING\\r\\n",
        expect="^\\+PONG",
        expect_bytes="1KiB",
        tls=True,
        tls_server_name="redis.test",
        ca_file="ca.pem",
        client_cert="client.crt",
        client_key="client.key",
    )
    assert (probe.expect, probe.expect_bytes) == ("^\\+PONG", 1024)
    assert probe.tls and probe.tls_server_name == "redis.test" and probe.ca_file == pki / "ca.pem"
    text = describe(load({"type": "tcp", "address": "192.0.2.1:6380", "tls": True, "send": "x"}))
    assert "connect 192.0.2.1:6380, TLS verified, send 1 bytes" in text


TCP_ERRORS: list[tuple[str, Cfg, str, str]] = [
    ("tls off", {"tls_server_name": "a.test"}, "tls_server_name", "TLS options need tls: true"),
    ("verify off", {"verify_tls": False}, "verify_tls", "TLS options need tls: true"),
    ("escape", {"send": "a\\qb"}, "send", "unknown escape '\\\\q'"),
    ("short hex", {"send": "\\x4"}, "send", "unknown escape"),
    ("empty send", {"send": ""}, "send", "expected a non-empty string"),
    ("regex", {"expect": "("}, "expect", "invalid regular expression"),
    ("bytes alone", {"expect_bytes": 10}, "expect_bytes", "set without expect"),
    ("bytes huge", {"expect": "x", "expect_bytes": "2MiB"}, "expect_bytes", "out of range"),
    ("tls type", {"tls": "yes"}, "tls", "expected true or false"),
]


@pytest.mark.parametrize(
    ("keys", "key", "message"), [c[1:] for c in TCP_ERRORS], ids=[c[0] for c in TCP_ERRORS]
)
def test_tcp_errors(keys: Cfg, key: str, message: str) -> None:
    found = errors({"type": "tcp", "address": "192.0.2.1:443"} | keys)
    assert any(e.startswith(f"{AT}.{key}: ") and message in e for e in found), found


def test_secret_in_send_is_not_shown() -> None:
    cfg = config_with({"type": "tcp", "address": "192.0.2.1:6379", "send": "AUTH ${T}\\q"})
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(cfg), env={"T": "hunter2"})
    assert "hunter2" not in str(info.value)
    assert "value from ${T}" in str(info.value)
