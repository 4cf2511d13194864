"""Probe lists (default names, kinds) and the dns and tls probes: defaults, canonical answers,
every error with its path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from failover.config.describe import describe
from failover.config.loader import ConfigError, load_config, parse_config
from failover.config.types import (
    Config,
    DnsProbeConfig,
    HostPort,
    HttpProbeConfig,
    ProbeConfig,
    TcpProbeConfig,
    TlsProbeConfig,
)
from tests.unit.config import helpers as h

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "lab.yaml"
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


def load(cfg: Cfg, source: Path | None = None) -> Config:
    return parse_config(yaml.safe_dump(cfg, sort_keys=False), source=source, env={})


def first_probe(config: Config) -> ProbeConfig:
    return config.services["shop"].targets[0].probes[0]


def dns_probe(**keys: Any) -> DnsProbeConfig:
    probe = first_probe(load(config_with({"type": "dns"} | keys)))
    assert isinstance(probe, DnsProbeConfig)
    return probe


def tls_probe(source: Path | None = None, **keys: Any) -> TlsProbeConfig:
    probe = first_probe(load(config_with({"type": "tls"} | keys), source))
    assert isinstance(probe, TlsProbeConfig)
    return probe


def errors_of(probe: Cfg, source: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(config_with(probe), source)
    return info.value.errors


# --- dns --------------------------------------------------------------------------------------


def test_dns_defaults() -> None:
    probe = dns_probe(query_name="Shop.Example.COM.", server="192.0.2.53")
    assert probe == DnsProbeConfig(
        name="dns",
        query_name="shop.example.com",
        server=HostPort("192.0.2.53", 53),
        interval=5.0,
        timeout=2.0,
    )
    assert (probe.record_type, probe.transport, probe.expect_rcode) == ("A", "udp", "NOERROR")
    assert probe.recursion_desired is False
    assert probe.expect_answers is None
    assert probe.expect_match == "exact"


def test_dns_every_key() -> None:
    probe = dns_probe(
        name="auth",
        query_name="example.com",
        server="[2001:db8::53]:5353",
        record_type="mx",
        transport="tcp",
        recursion_desired=True,
        expect_rcode="noerror",
        expect_answers=["20 Backup.Example.com.", "10 mail.example.com"],
        expect_match="contains",
        interval="10s",
        timeout="3s",
    )
    assert probe.name == "auth"
    assert probe.server == HostPort("2001:db8::53", 5353)
    assert (probe.record_type, probe.transport, probe.recursion_desired) == ("MX", "tcp", True)
    assert probe.expect_answers == ("10 mail.example.com", "20 backup.example.com")
    assert (probe.expect_match, probe.interval, probe.timeout) == ("contains", 10.0, 3.0)


@pytest.mark.parametrize(
    ("rtype", "given", "canonical"),
    [
        ("A", ["192.0.2.2", " 192.0.2.1"], ("192.0.2.1", "192.0.2.2")),
        ("AAAA", ["2001:DB8:0:0::1"], ("2001:db8::1",)),
        ("CNAME", ["Web.Example.COM."], ("web.example.com",)),
        ("TXT", ["v=spf1 -all"], ("v=spf1 -all",)),
        ("NS", [], ()),
    ],
)
def test_dns_expected_answers_are_canonical(
    rtype: str, given: list[str], canonical: tuple[str, ...]
) -> None:
    probe = dns_probe(query_name="x.example.com", server="192.0.2.53", record_type=rtype)
    assert probe.expect_answers is None
    probe = dns_probe(
        query_name="x.example.com", server="192.0.2.53", record_type=rtype, expect_answers=given
    )
    assert probe.expect_answers == canonical


def test_dns_nxdomain_expectation() -> None:
    probe = dns_probe(query_name="gone.example.com", server="192.0.2.53", expect_rcode="NXDOMAIN")
    assert probe.expect_rcode == "NXDOMAIN"


OK_DNS: Cfg = {"type": "dns", "query_name": "shop.example.com", "server": "192.0.2.53"}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"query_name": None}, f"{AT}.query_name: missing; expected the name to ask for"),
        ({"query_name": "not a name"}, f"{AT}.query_name: 'not a name' is not a DNS name"),
        ({"server": None}, f"{AT}.server: missing; expected the DNS server to ask"),
        ({"server": "192.0.2.53:99999"}, f"{AT}.server: '192.0.2.53:99999' has an invalid port"),
        ({"record_type": "AX"}, f"{AT}.record_type: unknown record type 'AX'; expected one of: A,"),
        ({"transport": "quic"}, f"{AT}.transport: unknown transport 'quic'; expected one of: udp"),
        ({"recursion_desired": "yes"}, f"{AT}.recursion_desired: expected true or false"),
        (
            {"expect_rcode": "OK"},
            f"{AT}.expect_rcode: unknown rcode 'OK'; expected one of: NOERROR",
        ),
        ({"expect_answers": "192.0.2.1"}, f"{AT}.expect_answers: expected a list of A values"),
        (
            {"expect_answers": ["192.0.2.1", "192.0.2.300"]},
            f"{AT}.expect_answers[1]: '192.0.2.300' is not a valid A value (",
        ),
        (
            {"record_type": "AAAA", "expect_answers": ["192.0.2.1"]},
            f"{AT}.expect_answers[0]: '192.0.2.1' is not a valid AAAA value",
        ),
        (
            {"record_type": "MX", "expect_answers": ["mail.example.com"]},
            "expected a preference and a host, like '10 mail.example.com'",
        ),
        ({"expect_answers": [1]}, f"{AT}.expect_answers[0]: expected a string, got an integer"),
        (
            {"expect_answers": ["192.0.2.1", "192.0.2.001"]},
            f"{AT}.expect_answers[1]: '192.0.2.001' is not a valid A value",
        ),
        (
            {"expect_answers": ["192.0.2.1", " 192.0.2.1"]},
            f"{AT}.expect_answers[1]: ' 192.0.2.1' is listed twice",
        ),
        ({"expect_match": "exact"}, f"{AT}.expect_match: set without expect_answers"),
        ({"expect_match": "most"}, f"{AT}.expect_match: unknown match 'most'"),
        (
            {"expect_rcode": "NXDOMAIN", "expect_answers": ["192.0.2.1"]},
            f"{AT}.expect_answers: set with expect_rcode NXDOMAIN; answers are only checked",
        ),
        (
            {"expect_answers": [], "expect_match": "contains"},
            f"{AT}.expect_answers: empty with expect_match contains",
        ),
        (
            {"query_nam": "x.example.com"},
            f"{AT}.query_nam: unknown key; did you mean 'query_name'?",
        ),
        ({"timeout": "10s"}, f"{AT}.timeout: 10s exceeds the probe interval 5s"),
    ],
)
def test_dns_errors(keys: Cfg, expected: str) -> None:
    probe = {k: v for k, v in (OK_DNS | keys).items() if v is not None}
    errors = errors_of(probe)
    assert any(e.startswith(expected) or expected in e for e in errors), errors


def test_dns_refused_type_does_not_judge_answers() -> None:
    errors = errors_of(OK_DNS | {"record_type": "AX", "expect_answers": ["whatever"]})
    assert len(errors) == 1, errors


# --- tls --------------------------------------------------------------------------------------


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def test_tls_defaults() -> None:
    probe = tls_probe(address="shop.example.com:443")
    assert probe == TlsProbeConfig(
        name="tls", address=HostPort("shop.example.com", 443), interval=5.0, timeout=2.0
    )
    assert (probe.server_name, probe.verify, probe.ca_file, probe.warn_days) == (
        None,
        True,
        None,
        14,
    )
    assert probe.hostname == "shop.example.com"


def test_tls_every_key(pem: Path) -> None:
    probe = tls_probe(
        address="203.0.113.10:8443",
        server_name="Shop.Example.com",
        ca_file=str(pem),
        warn_days=0,
        interval="1m",
    )
    assert probe.address == HostPort("203.0.113.10", 8443)
    assert probe.server_name == probe.hostname == "shop.example.com"
    assert (probe.ca_file, probe.warn_days, probe.interval) == (pem, 0, 60.0)
    assert tls_probe(address="203.0.113.10:443").hostname == "203.0.113.10"
    assert tls_probe(address="203.0.113.10:443", verify=False).verify is False


def test_tls_ca_file_is_relative_to_the_config_file(pem: Path, tmp_path: Path) -> None:
    probe = tls_probe(tmp_path / "failover.yaml", address="192.0.2.1:443", ca_file="ca.pem")
    assert probe.ca_file == pem


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"address": None}, f"{AT}.address: missing; expected host:port"),
        ({"address": "192.0.2.1"}, f"{AT}.address: '192.0.2.1' has no port"),
        ({"server_name": "bad name"}, f"{AT}.server_name: 'bad name' is not a DNS name"),
        ({"verify": "no"}, f"{AT}.verify: expected true or false"),
        ({"warn_days": -1}, f"{AT}.warn_days: -1 is out of range; expected an integer at least 0"),
        ({"warn_days": "14d"}, f"{AT}.warn_days: expected an integer"),
        ({"ca_file": "missing.pem"}, f"{AT}.ca_file: cannot load "),
        ({"ca_file": "not-pem.txt"}, "expected a PEM file of CA certs"),
        ({"ca_file": "ca.pem", "verify": False}, f"{AT}.ca_file: set while verify is false"),
        ({"warn_day": 3}, f"{AT}.warn_day: unknown key; did you mean 'warn_days'?"),
    ],
)
def test_tls_errors(keys: Cfg, expected: str, pem: Path, tmp_path: Path) -> None:
    (tmp_path / "not-pem.txt").write_text("hello\n")
    probe = {k: v for k, v in ({"type": "tls", "address": "192.0.2.1:443"} | keys).items()}
    probe = {k: v for k, v in probe.items() if v is not None}
    errors = errors_of(probe, tmp_path / "failover.yaml")
    assert any(e.startswith(expected) or expected in e for e in errors), errors


# --- summary and example ----------------------------------------------------------------------


def test_describe_new_kinds(pem: Path) -> None:
    cfg = config_with(
        {
            "type": "dns",
            "query_name": "db.example.com",
            "server": "192.0.2.53:5353",
            "transport": "tcp",
            "expect_answers": ["192.0.2.9"],
        }
    )
    probes = cfg["services"]["shop"]["targets"][0]["probes"]
    probes.append({"type": "tls", "address": "192.0.2.1:443", "server_name": "shop.example.com"})
    probes.append({"type": "tls", "address": "192.0.2.2:443", "verify": False, "warn_days": 3})
    probes.append({"type": "tls", "address": "192.0.2.3:443", "ca_file": str(pem)})
    text = describe(load(cfg))
    assert (
        "probe dns: ask 192.0.2.53:5353 (tcp) for db.example.com A, expect NOERROR, "
        "answers exactly [192.0.2.9]; every 5s, timeout 2s" in text
    )
    assert (
        "probe tls-1: TLS handshake with 192.0.2.1:443 as shop.example.com, chain verified "
        "against the system trust store, fail under 14 days left" in text
    )
    assert "probe tls-2: TLS handshake with 192.0.2.2:443, chain not verified, fail under 3" in text
    assert f"chain verified against {pem}" in text


def test_example_has_dns_and_tls_probes() -> None:
    config = load_config(EXAMPLE, env={})
    probes = [p for s in config.services.values() for t in s.targets for p in t.probes]
    dns = [p for p in probes if isinstance(p, DnsProbeConfig)]
    tls = [p for p in probes if isinstance(p, TlsProbeConfig)]
    assert dns and tls
    assert dns[0].expect_answers and not dns[0].recursion_desired
    assert tls[0].warn_days == 14


# --- the list ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probes", "names"),
    [
        ([{"type": "http"}], ["http"]),
        ([{"type": "http"}, {"type": "tcp"}], ["http", "tcp"]),
        ([{"type": "http"}, {"type": "http"}, {"type": "tcp"}], ["http-1", "http-2", "tcp"]),
        (
            [{"type": "tcp"}, {"type": "http", "name": "home"}, {"type": "tcp"}],
            ["tcp-1", "home", "tcp-2"],
        ),
    ],
)
def test_probe_default_names(probes: list[h.Cfg], names: list[str]) -> None:
    cfg = h.base()
    fill = {"http": {"url": "http://192.0.2.1/"}, "tcp": {"address": "192.0.2.1:80"}}
    h.target(cfg)["probes"] = [dict(p, **fill[p["type"]]) for p in probes]
    assert [p.name for p in h.load(cfg).services["shop"].targets[0].probes] == names


def test_probe_fields() -> None:
    cfg = h.base()
    h.target(cfg)["probes"] = [
        {
            "type": "http",
            "url": "https://192.0.2.1:8443/healthz",
            "method": "HEAD",
            "headers": {"X-Probe": "failover"},
            "host": "Shop.Example.com",
            "expect_status": [200, 204],
            "body_regex": '"ok"',
            "verify_tls": False,
            "tls_server_name": "shop.example.com",
        },
        {"type": "tcp", "address": "[2001:db8::1]:443"},
    ]
    h.target(cfg, 1)["probes"] = []
    http, tcp = h.load(cfg).services["shop"].targets[0].probes
    assert isinstance(http, HttpProbeConfig) and isinstance(tcp, TcpProbeConfig)
    assert http.method == "HEAD" and http.headers == {"X-Probe": "failover"}
    assert http.host == "shop.example.com" and http.expect_status == (200, 204)
    assert http.verify_tls is False and http.tls_server_name == "shop.example.com"
    assert tcp.address == HostPort("2001:db8::1", 443)
    assert h.load(cfg).services["shop"].targets[1].probes == ()
