"""The `coordination:` section: defaults, every refusal with its key path, no secret shown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover.config.describe import describe
from failover.config.loader import parse_config
from failover.config.types import EtcdTlsConfig
from tests.unit.config.helpers import FULL_EXAMPLE, Cfg, base, errors_of, load

PASSWORD = "pa55-w0rd-7f3e"
ENV = {"ETCD_PASSWORD": PASSWORD}
ENDPOINTS = ["http://127.0.0.1:2379", "http://127.0.0.2:2379", "http://127.0.0.3:2379"]


def with_etcd(**etcd: Any) -> Cfg:
    cfg = base()
    cfg["coordination"] = {"etcd": {"endpoints": ENDPOINTS, **etcd}}
    return cfg


def only_error(cfg: Cfg, env: dict[str, str] | None = None) -> str:
    errors = errors_of(cfg, env or ENV)
    assert len(errors) == 1, errors
    assert PASSWORD not in errors[0]
    return errors[0]


def test_absent_means_alone() -> None:
    assert load(base()).coordination is None
    cfg = base()
    cfg["coordination"] = None  # `coordination:` with everything commented out
    assert load(cfg).coordination is None


def test_defaults() -> None:
    c = load(with_etcd()).coordination
    assert c is not None and c.quorum is None
    e = c.etcd
    assert e.endpoints == tuple(ENDPOINTS)
    assert (e.prefix, e.lease_ttl, e.timeout) == ("/failover", 10.0, 2.0)
    assert e.tls is None and e.username is None and e.password is None


def test_every_option(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    cfg = with_etcd(
        endpoints=["https://etcd-1.example.net:2379/", "https://[::1]:2379"],
        prefix="/failover/prod/",
        lease_ttl="5s",
        timeout="500ms",
        tls={
            "ca_file": str(tmp_path / "ca.pem"),
            "cert_file": str(tmp_path / "cert.pem"),
            "key_file": str(tmp_path / "key.pem"),
        },
        username="failover",
        password="${ETCD_PASSWORD}",
    )
    cfg["coordination"]["quorum"] = 2
    c = load(cfg, ENV).coordination
    assert c is not None and c.quorum == 2
    e = c.etcd
    assert e.endpoints == ("https://etcd-1.example.net:2379", "https://[::1]:2379")
    assert (e.prefix, e.lease_ttl, e.timeout) == ("/failover/prod", 5.0, 0.5)
    assert e.tls == EtcdTlsConfig(tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    assert e.username == "failover" and e.password is not None
    assert e.password.reveal() == PASSWORD and PASSWORD not in repr(c)


def test_a_short_lease_gets_a_shorter_default_timeout() -> None:
    c = load(with_etcd(lease_ttl="3s")).coordination
    assert c is not None and c.etcd.timeout == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("etcd", "expected"),
    [
        ({"endpoints": None}, r"coordination\.etcd\.endpoints: missing; expected the client URLs"),
        ({"endpoints": []}, r"coordination\.etcd\.endpoints: empty; list the client URL"),
        ({"endpoints": "http://a:2379"}, r"coordination\.etcd\.endpoints: expected a list of URLs"),
        ({"endpoints": ["ftp://a:2379"]}, r"etcd\.endpoints\[0\]: 'ftp://a:2379' is not an http"),
        ({"endpoints": ["http://a"]}, r"etcd\.endpoints\[0\]: 'http://a' has no port"),
        ({"endpoints": ["http://a:2379/v3"]}, r"endpoints\[0\]: 'http://a:2379/v3' has a path"),
        ({"endpoints": ["http://a:99999"]}, r"endpoints\[0\]: 'http://a:99999' is not a valid URL"),
        ({"endpoints": [5]}, r"etcd\.endpoints\[0\]: expected a string, got an integer"),
        (
            {"endpoints": ["http://a:2379", "http://a:2379/"]},
            r"endpoints\[1\]: http://a:2379 is listed twice",
        ),
        ({"prefix": "failover"}, r"coordination\.etcd\.prefix: 'failover' does not start with '/'"),
        ({"prefix": "/"}, r"coordination\.etcd\.prefix: '/' is not a key prefix"),
        ({"prefix": "/a b"}, r"coordination\.etcd\.prefix: '/a b' is not a key prefix"),
        ({"lease_ttl": "1s"}, r"etcd\.lease_ttl: 1s is too short; etcd grants leases of at least"),
        ({"lease_ttl": "2500ms"}, r"etcd\.lease_ttl: 2\.5s is not a whole number of seconds"),
        ({"lease_ttl": 10}, r"coordination\.etcd\.lease_ttl: got the bare number 10"),
        (
            {"timeout": "3s"},
            r"coordination\.etcd\.timeout: 3s is too long for lease_ttl 10s: .* at most 2s "
            r"\(lease_ttl/5\), or raise lease_ttl",
        ),
        (
            {"lease_ttl": "3s", "timeout": "1s"},
            r"coordination\.etcd\.timeout: 1s is too long for lease_ttl 3s: .* at most 600ms",
        ),
        ({"timeout": "0s"}, r"coordination\.etcd\.timeout: zero is not allowed"),
        ({"endpoint": ENDPOINTS}, r"coordination\.etcd\.endpoint: unknown key; did you mean"),
        (
            {"username": "fo"},
            r"coordination\.etcd\.password: missing; a username needs a password",
        ),
        (
            {"password": "${ETCD_PASSWORD}"},
            r"coordination\.etcd\.username: missing; a password needs the etcd user name",
        ),
        (
            {"username": "fo", "password": PASSWORD},
            r"coordination\.etcd\.password: written in clear in the file; write it as \$\{",
        ),
        ({"tls": "yes"}, r"coordination\.etcd\.tls: expected a mapping, got a string"),
        (
            {"tls": {"ca_file": "/nonexistent/ca.pem"}, "endpoints": ["https://a:2379"]},
            r"coordination\.etcd\.tls\.ca_file: cannot read /nonexistent/ca\.pem",
        ),
        (
            {"tls": {"verify": False}, "endpoints": ["https://a:2379"]},
            r"coordination\.etcd\.tls\.verify: unknown key",
        ),
    ],
)
def test_refusals_name_the_key(etcd: dict[str, Any], expected: str) -> None:
    cfg = with_etcd(**etcd)
    if etcd.get("endpoints", ENDPOINTS) is None:
        del cfg["coordination"]["etcd"]["endpoints"]
    assert re.search(expected, only_error(cfg)), only_error(cfg)


def test_tls_with_a_certificate_needs_its_key(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("x")
    cfg = with_etcd(endpoints=["https://a:2379"], tls={"cert_file": str(tmp_path / "cert.pem")})
    assert only_error(cfg).startswith(
        "coordination.etcd.tls.key_file: missing; a client certificate needs cert_file and key_file"
    )
    cfg = with_etcd(tls={"ca_file": str(tmp_path / "cert.pem")})
    assert only_error(cfg).startswith(
        "coordination.etcd.tls: set, but http://127.0.0.1:2379 is plain http; write https://"
    )


def test_the_section_itself() -> None:
    cfg = base()
    cfg["coordination"] = {"quorum": 2}
    assert only_error(cfg).startswith("coordination.etcd: missing; expected etcd: {endpoints:")
    cfg = with_etcd()
    cfg["coordination"]["quorum"] = 0
    assert only_error(cfg) == (
        "coordination.quorum: 0 is out of range; expected an integer at least 1"
    )
    cfg["coordination"] = {"etcd": {"endpoints": ENDPOINTS}, "consul": {}}
    assert only_error(cfg).startswith("coordination.consul: unknown key")
    cfg["coordination"] = ["etcd"]
    assert only_error(cfg) == "coordination: expected a mapping, got a list"


def test_credentials_in_an_endpoint_are_refused_without_being_shown() -> None:
    error = only_error(with_etcd(endpoints=[f"http://fo:{PASSWORD}@a:2379"]))
    assert error == (
        "coordination.etcd.endpoints[0]: an endpoint may not carry credentials; "
        "use username and password"
    )


def test_a_missing_password_variable_is_reported_by_name() -> None:
    error = only_error(with_etcd(username="fo", password="${ETCD_PASSWORD}"), env={"X": "1"})
    assert error.startswith(
        "coordination.etcd.password: environment variable ETCD_PASSWORD is not set"
    )


def test_describe_shows_the_cluster_but_never_the_password() -> None:
    cfg = with_etcd(prefix="/failover/prod", username="fo", password="${ETCD_PASSWORD}")
    cfg["coordination"]["quorum"] = 2
    text = describe(load(cfg, ENV))
    assert PASSWORD not in text
    assert (
        "coordination: etcd (3 endpoints: http://127.0.0.1:2379, http://127.0.0.2:2379, "
        "http://127.0.0.3:2379)\n"
        "  prefix /failover/prod, lease ttl 10s, timeout 2s, user fo\n"
        "  quorum: 2 views must agree before a target counts DOWN or UP"
    ) in text
    alone = describe(load(base()))
    assert "coordination: none (this instance decides alone)" in alone
    assert "a majority of the live instances" in describe(load(with_etcd()))


def test_the_example_block_parses_once_uncommented(tmp_path: Path) -> None:
    """config/failover.example.yaml shows the section commented out; it must be valid as shown."""
    lines = FULL_EXAMPLE.read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith("# coordination:")))
    block: list[str] = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(re.sub(r"^# ?", "", line))
    for name in ("etcd-ca.pem", "etcd-client.pem", "etcd-client-key.pem"):
        (tmp_path / name).write_text("x")
    text = "\n".join(block).replace("/etc/failover/", f"{tmp_path}/")
    text = re.sub(
        r"^(\s*)# (tls:|  \w+_file:|username:|password:|quorum:)", r"\1\2", text, flags=re.M
    )
    text = text.replace("http://", "https://")

    cfg = base()
    cfg.update(yaml.safe_load(text))
    c = parse_config(yaml.safe_dump(cfg), env=ENV).coordination
    assert c is not None and c.quorum == 2 and c.etcd.prefix == "/failover/prod"
    assert c.etcd.tls is not None and c.etcd.username == "failover"
