"""Config loader: each error names its path and the fix; interpolation; secrets; files."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover.config.describe import describe
from failover.config.loader import ConfigError, load_config, parse_config
from failover.config.parse import Section
from failover.config.providers import PROVIDER_PARSERS, ProviderCommon
from failover.config.types import (
    HealthConfig,
    HostPort,
    PolicyConfig,
    Secret,
    VerifyConfig,
)
from tests.unit.config.helpers import (
    EXAMPLE,
    FULL_EXAMPLE,
    Cfg,
    base,
    errors_of,
    load,
    probe,
    record,
    second_service,
    shop,
    target,
)


def test_base_config_loads() -> None:
    config = load(base())
    assert list(config.services) == ["shop"]
    assert [t.name for t in config.services["shop"].targets] == ["primary", "backup"]


# --- every error kind: (id, mutation, path, what the message must say) ------------------------

T = "services.shop.targets"
R = "services.shop.records"

ERROR_CASES: list[tuple[str, Callable[[Cfg], object], str, str]] = [
    # unknown keys, with and without a suggestion
    ("top typo", lambda c: c.update(servces={}), "servces", "did you mean 'services'?"),
    ("top unknown", lambda c: c.update(zzz=1), "zzz", "unknown key; known keys here: admin"),
    (
        "provider typo",
        lambda c: c["providers"]["local"].update(listne="x"),
        "providers.local.listne",
        "did you mean 'listen'?",
    ),
    ("service typo", lambda c: shop(c).update(tagrets=[]), "services.shop.tagrets", "'targets'"),
    ("probe typo", lambda c: probe(c).update(urll="x"), f"{T}[0].probes[0].urll", "'url'"),
    ("policy typo", lambda c: shop(c).update(policy={"coldown": "1m"}), "policy.coldown", "'cool"),
    # tagged unions
    (
        "unknown provider type",
        lambda c: c["providers"]["local"].update(type="route54"),
        "providers.local.type",
        "unknown provider type 'route54'; expected one of: builtin",
    ),
    (
        "unknown probe type",
        lambda c: probe(c).update(type="icmp"),
        f"{T}[0].probes[0].type",
        "unknown probe type 'icmp'; expected one of: http, tcp",
    ),
    (
        "missing provider type",
        lambda c: c["providers"]["local"].pop("type"),
        "providers.local.type",
        "missing; expected a type, one of: builtin",
    ),
    # wrong types
    (
        "values mapping",
        lambda c: target(c).update(values={"a": 1}),
        f"{T}[0].values",
        "expected a list of addresses or host names, got a mapping",
    ),
    ("targets string", lambda c: shop(c).update(targets="x"), f"{T}", "expected a list of targets"),
    (
        "service list",
        lambda c: c["services"].update(shop=[1]),
        "services.shop",
        "expected a mapping",
    ),
    ("fall string", lambda c: shop(c).update(health={"fall": "3"}), "health.fall", "an integer"),
    (
        "verify_tls",
        lambda c: probe(c).update(verify_tls="no"),
        "verify_tls",
        "expected true or false",
    ),
    ("header", lambda c: probe(c).update(headers={"X-A": 1}), "headers.X-A", "expected a string"),
    # durations
    (
        "timeout above interval",
        lambda c: probe(c, 1).update(interval="2s", timeout="5s"),
        f"{T}[1].probes[0].timeout",
        "5s exceeds the probe interval 2s; a probe's timeout must not exceed its interval",
    ),
    (
        "inherited interval",
        lambda c: (shop(c).update(probe={"interval": "1s"}), probe(c).update(timeout="3s")),
        f"{T}[0].probes[0].timeout",
        "(the interval comes from services.shop.probe.interval)",
    ),
    (
        "default interval below timeout",
        lambda c: c.update(defaults={"probe": {"interval": "1s"}}),
        "defaults.probe.interval",
        "1s is shorter than the probe timeout 2s",
    ),
    ("bare number", lambda c: probe(c).update(interval=5), "interval", "write a duration"),
    ("bare string", lambda c: probe(c).update(interval="5"), "interval", "write a duration"),
    ("zero", lambda c: c["instance"].update(resync_interval="0s"), "resync_interval", "above zero"),
    ("negative", lambda c: probe(c).update(timeout="-1s"), "timeout", "negative"),
    ("no unit", lambda c: probe(c).update(timeout="5 sec"), "timeout", "not a duration"),
    # health and policy
    ("fall zero", lambda c: target(c).update(health={"fall": 0}), f"{T}[0].health.fall", "least 1"),
    ("rise zero", lambda c: shop(c).update(health={"rise": 0}), "shop.health.rise", "least 1"),
    (
        "failback",
        lambda c: c.update(defaults={"policy": {"failback": "sometimes"}}),
        "defaults.policy.failback",
        "expected one of: manual, auto",
    ),
    (
        "max switches",
        lambda c: shop(c).update(policy={"max_auto_switches": 0}),
        "policy.max_auto_switches",
        "at least 1",
    ),
    # records
    (
        "name outside zone",
        lambda c: record(c).update(name="www.other.org"),
        f"{R}[0].name",
        "www.other.org is not inside zone example.com; the name must be the zone",
    ),
    (
        "suffix is not a zone",
        lambda c: record(c).update(name="shopexample.com"),
        f"{R}[0].name",
        "not inside zone",
    ),
    (
        "undefined provider",
        lambda c: record(c).update(provider="lcoal"),
        f"{R}[0].provider",
        "unknown provider 'lcoal'; did you mean 'local'? defined providers: local",
    ),
    ("ttl zero", lambda c: record(c).update(ttl=0), f"{R}[0].ttl", "between 1 and 86400"),
    ("ttl big", lambda c: record(c).update(ttl=86401), f"{R}[0].ttl", "between 1 and 86400"),
    ("ttl string", lambda c: record(c).update(ttl="60s"), f"{R}[0].ttl", "expected an integer"),
    ("rtype", lambda c: record(c).update(type="MX"), f"{R}[0].type", "expected one of: A, AAAA"),
    ("bad name", lambda c: record(c).update(name="a b.example.com"), f"{R}[0].name", "DNS name"),
    ("no zone", lambda c: record(c).pop("zone"), f"{R}[0].zone", "missing; expected the DNS zone"),
    (
        "duplicate record",
        lambda c: shop(c)["records"].append(dict(record(c))),
        f"{R}[1]",
        "duplicate of records[0]",
    ),
    (
        "cname beside A",
        lambda c: shop(c)["records"].append(dict(record(c), type="CNAME")),
        f"{R}[1].type",
        "a name with a CNAME can have no other record",
    ),
    (
        "cname at apex",
        lambda c: record(c).update(name="example.com", type="CNAME"),
        f"{R}[0].type",
        "a CNAME cannot be at the zone apex",
    ),
    (
        "record in two services",
        lambda c: second_service(c)["records"][0].update(name="shop.example.com"),
        "services.api.records[0]",
        "already managed by service 'shop'",
    ),
    ("no records", lambda c: shop(c).pop("records"), f"{R}", "at least one record"),
    # services and targets
    (
        "service name",
        lambda c: c["services"].update(Shop=c["services"].pop("shop")),
        "services.Shop",
        "expected lower-case letters",
    ),
    ("no targets", lambda c: shop(c).update(targets=[]), f"{T}", "at least one target"),
    ("target name", lambda c: target(c).update(name="-x"), f"{T}[0].name", "not a valid name"),
    ("dup target", lambda c: target(c, 1).update(name="primary"), f"{T}[1].name", "defined twice"),
    ("no values", lambda c: target(c).update(values=[]), f"{T}[0].values", "non-empty list"),
    (
        "bad value",
        lambda c: target(c)["values"].append("not valid!"),
        f"{T}[0].values[1]",
        "'not valid!' is neither an IP address nor a host name",
    ),
    ("no ipv4", lambda c: target(c).update(values=["2001:db8::1"]), f"{T}[0].values", "no IPv4"),
    (
        "no ipv6",
        lambda c: shop(c)["records"].append(dict(record(c), type="AAAA")),
        f"{T}[0].values",
        "no IPv6 address; the service has AAAA records",
    ),
    (
        "cname needs one host",
        lambda c: record(c).update(type="CNAME"),
        f"{T}[0].values",
        "so every target needs exactly one host name",
    ),
    (
        "host name in A service",
        lambda c: target(c)["values"].append("www.example.net"),
        f"{T}[0].values",
        "host names in a service without CNAME records",
    ),
    (
        "dup value",
        lambda c: target(c)["values"].append("192.0.2.01"[:-2] + "1"),
        "values[1]",
        "twice",
    ),
    # probes
    ("url scheme", lambda c: probe(c).update(url="ftp://h/x"), "probes[0].url", "http(s) URL"),
    ("url host", lambda c: probe(c).update(url="http:///x"), "probes[0].url", "http(s) URL"),
    ("no url", lambda c: probe(c).pop("url"), "probes[0].url", "missing; expected the URL"),
    ("status", lambda c: probe(c).update(expect_status=[99]), "expect_status", "100..599"),
    ("regex", lambda c: probe(c).update(body_regex="("), "body_regex", "invalid regular expr"),
    ("method", lambda c: probe(c).update(method="FETCH"), "method", "expected one of: GET"),
    ("sni on http", lambda c: probe(c).update(tls_server_name="a.b"), "tls_server_name", "https"),
    ("tcp no port", lambda c: probe(c, 1).update(address="h.example"), "address", "no port"),
    ("tcp port 0", lambda c: probe(c, 1).update(address="h.example:0"), "address", "port 1..65535"),
    ("tcp v6", lambda c: probe(c, 1).update(address="::1:53"), "address", "in brackets"),
    (
        "dup probe name",
        lambda c: target(c)["probes"].append({"type": "tcp", "name": "http", "address": "a:1"}),
        f"{T}[0].probes[1].name",
        "probe name 'http' is used twice in this target",
    ),
    # top-level sections
    (
        "admin listen needs token",
        lambda c: c["admin"].update(listen="127.0.0.1:9181"),
        "admin.token_file",
        "admin.listen (TCP) requires a token_file",
    ),
    ("metrics port", lambda c: c.update(metrics={"listen": ":70000"}), "metrics.listen", "port"),
    ("listen missing", lambda c: c["providers"]["local"].pop("listen"), "local.listen", "missing"),
    ("verify", lambda c: c["providers"]["local"].update(verify="x"), "local.verify", "false or"),
    (
        "verify ns",
        lambda c: c["providers"]["local"].update(verify={"nameservers": ["[x]:53"]}),
        "providers.local.verify.nameservers[0]",
        "IPv6 address in brackets",
    ),
    ("no providers", lambda c: c.pop("providers"), "providers", "no provider defined"),
    ("instance name", lambda c: c["instance"].update(name="a b"), "instance.name", "valid name"),
]


@pytest.mark.parametrize(
    ("mutate", "path", "expected"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_error_names_path_and_expectation(
    mutate: Callable[[Cfg], object], path: str, expected: str
) -> None:
    cfg = base()
    mutate(cfg)
    errors = errors_of(cfg)
    matching = [e for e in errors if e.split(": ", 1)[0].endswith(path) and expected in e]
    assert matching, f"no error at {path!r} saying {expected!r} in:\n" + "\n".join(errors)
    assert all("; " in e or "expected" in e for e in errors), errors  # says what is expected


def test_exact_timeout_message() -> None:
    cfg = base()
    probe(cfg, 1).update(interval="2s", timeout="5s")
    assert errors_of(cfg) == [
        "services.shop.targets[1].probes[0].timeout: 5s exceeds the probe interval 2s; "
        "a probe's timeout must not exceed its interval"
    ]


@pytest.mark.parametrize(
    "value, expected", [(True, True), (False, False), ("auto", "auto"), (" AUTO ", "auto")]
)
def test_probe_process_is_true_false_or_auto(value: object, expected: object) -> None:
    cfg = base()
    cfg["instance"]["probe_process"] = value
    assert load(cfg).instance.probe_process == expected


def test_probe_process_refuses_anything_else() -> None:
    cfg = base()
    cfg["instance"]["probe_process"] = "sometimes"
    assert errors_of(cfg) == [
        "instance.probe_process: expected true, false or auto, got 'sometimes'"
    ]


def test_all_errors_are_collected() -> None:
    cfg = base()
    cfg["providers"]["local"]["type"] = "route54"
    record(cfg)["ttl"] = 0
    probe(cfg)["urll"] = "x"
    target(cfg, 1)["values"] = ["nope nope"]
    errors = errors_of(cfg)
    assert len(errors) == 4, errors


def test_unknown_type_does_not_flag_its_keys() -> None:
    """Keys of an unknown provider type cannot be judged; only the type is reported."""
    cfg = base()
    cfg["providers"]["local"] = {"type": "route53x", "hosted_zone": "Z1"}
    assert errors_of(cfg) == [
        "providers.local.type: unknown provider type 'route53x'; expected one of: "
        "builtin, route53, ovh, scaleway, rfc2136, hetzner, cloudflare"
    ]


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("servics", "services"),
        ("defualts", "defaults"),
        ("instanse", "instance"),
        ("metric", "metrics"),
    ],
)
def test_did_you_mean(typo: str, suggestion: str) -> None:
    cfg = base()
    cfg[typo] = {}
    assert f"{typo}: unknown key; did you mean '{suggestion}'?" in errors_of(cfg)[0]


@pytest.mark.parametrize(
    ("metrics", "listen"),
    [
        (None, HostPort("127.0.0.1", 9180)),
        ({}, HostPort("127.0.0.1", 9180)),
        ({"listen": None}, None),
        ({"listen": False}, None),
        ({"listen": "0.0.0.0:9100"}, HostPort("0.0.0.0", 9100)),
    ],
)
def test_metrics_listen(metrics: Cfg | None, listen: HostPort | None) -> None:
    cfg = base()
    if metrics is not None:
        cfg["metrics"] = metrics
    assert load(cfg).metrics.listen == listen


# --- defaults and paths -----------------------------------------------------------------


def test_builtin_defaults() -> None:
    cfg = base()
    del cfg["instance"]
    del cfg["admin"]
    config = load(cfg)
    svc = config.services["shop"]
    assert svc.policy == PolicyConfig()
    assert all(t.health == HealthConfig(3, 3) for t in svc.targets)
    assert [(p.interval, p.timeout) for t in svc.targets for p in t.probes] == [(5, 2), (5, 2)]
    assert config.instance.name  # the host name
    assert config.instance.state_dir == Path("/var/lib/failover")
    assert config.instance.resync_interval == 30
    assert config.instance.probe_process == "auto"
    assert config.admin.socket == Path("/run/failover/admin.sock")
    assert config.providers["local"].verify == VerifyConfig()
    assert config.providers["local"].timeout == 10
    assert svc.records[0].ttl == 60


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    cfg = base()
    cfg["instance"]["state_dir"] = "state"
    cfg["admin"] = {"socket": "run/admin.sock", "listen": "127.0.0.1:9181", "token_file": "tok"}
    file = tmp_path / "failover.yaml"
    file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    config = load_config(file, env={})
    assert config.instance.state_dir == tmp_path / "state"
    assert config.admin.socket == tmp_path / "run" / "admin.sock"
    assert config.admin.token_file == tmp_path / "tok"
    assert config.admin.listen == HostPort("127.0.0.1", 9181)
    assert config.source == file


# --- interpolation and secrets ----------------------------------------------------------------


def test_env_and_file_interpolation(tmp_path: Path) -> None:
    (tmp_path / "ip").write_text("192.0.2.7\n")
    cfg = base()
    target(cfg)["values"] = ["${PRIMARY_IP}"]
    target(cfg, 1)["values"] = ["${file:ip}"]
    probe(cfg)["url"] = "http://${PRIMARY_IP}:${PORT}/health"
    probe(cfg)["headers"] = {"X-Literal": "$${NOT_A_VAR}"}
    record(cfg)["ttl"] = "${TTL}"
    file = tmp_path / "failover.yaml"
    file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    config = load_config(file, env={"PRIMARY_IP": "192.0.2.5", "PORT": "8080", "TTL": "30"})
    first, second = config.services["shop"].targets
    assert first.values == ("192.0.2.5",) and second.values == ("192.0.2.7",)
    assert first.probes[0].url == "http://192.0.2.5:8080/health"  # type: ignore[union-attr]
    assert first.probes[0].headers == {"X-Literal": "${NOT_A_VAR}"}  # type: ignore[union-attr]
    assert config.services["shop"].records[0].ttl == 30
    assert type(first.values[0]) is str


def _strings(obj: object) -> list[object]:
    """Every string inside a config object tree (dataclasses, mappings, sequences)."""
    if isinstance(obj, str):
        return [obj]
    if is_dataclass(obj) and not isinstance(obj, type):
        return [s for f in fields(obj) for s in _strings(getattr(obj, f.name))]
    if isinstance(obj, Mapping):
        return [s for k, v in obj.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(obj, tuple | list):
        return [s for item in obj for s in _strings(item)]
    return []


def test_models_hold_plain_strings() -> None:
    """Interpolation marks values internally (to keep them out of errors); the models must not."""
    env = {"V": "x"}
    cfg = base()
    cfg["instance"].update(name="n-${V}", location="l${V}")
    cfg["providers"]["local"].update(location="${V}")
    record(cfg).update(provider="${P}", zone="${Z}", name="shop.${Z}", type="${T}")
    target(cfg).update(name="t${V}", location="${V}", values=["${IP}"])
    probe(cfg).update(
        name="p${V}", url="http://${IP}/", method="${M}", host="h.${Z}", headers={"X": "${V}"}
    )
    env |= {"P": "local", "Z": "example.com", "T": "A", "IP": "192.0.2.1", "M": "GET"}
    config = load(cfg, env)
    strings = _strings(config)
    assert "shop.example.com" in strings and "px" in strings
    assert all(type(s) is str or isinstance(s, Enum) for s in strings), {type(s) for s in strings}


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${NOPE}", {}, "environment variable NOPE is not set"),
        ("${file:/nonexistent/secret}", {}, "cannot read ${file:/nonexistent/secret}"),
        ("${not valid}", {}, "cannot interpolate ${not valid}; write ${ENV_VAR}"),
        ("${OPEN", {}, "unclosed '${'"),
    ],
)
def test_interpolation_errors(value: str, env: dict[str, str], expected: str) -> None:
    cfg = base()
    probe(cfg)["url"] = value
    errors = errors_of(cfg, env)
    assert errors == [f"services.shop.targets[0].probes[0].url: {errors[0].split(': ', 1)[1]}"]
    assert expected in errors[0]


def test_interpolated_value_never_echoed() -> None:
    cfg = base()
    target(cfg)["values"] = ["${PRIMARY_IP}"]
    probe(cfg)["url"] = "gopher://${TOKEN}"
    errors = "\n".join(errors_of(cfg, {"PRIMARY_IP": "s3cr3t-host!", "TOKEN": "hunter2"}))
    assert "value from ${PRIMARY_IP} is neither an IP address nor a host name" in errors
    assert "value from ${TOKEN} is not an http(s) URL" in errors
    assert "s3cr3t" not in errors and "hunter2" not in errors


@dataclass(frozen=True)
class _VaultProvider:
    """A stand-in for a future provider with a credential: registering it is one dict entry."""

    name: str
    token: Secret
    region: str
    type: str = "vault"
    location: str | None = None
    timeout: float = 10.0
    verify: VerifyConfig = field(default_factory=VerifyConfig)


def _parse_vault(sec: Section, name: str, common: ProviderCommon) -> Any:
    token = sec.secret("token")
    region = sec.need("region", lambda v: str(v), "a region")
    return _VaultProvider(name, token or Secret(""), region or "", location=common.location)


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PROVIDER_PARSERS, "vault", _parse_vault)


@pytest.mark.usefixtures("vault")
def test_secret_field_is_a_secret_and_never_shown() -> None:
    cfg = base()
    cfg["providers"]["vault"] = {"type": "vault", "token": "${VAULT_TOKEN}", "region": "eu"}
    config = load(cfg, {"VAULT_TOKEN": "tok-123-secret"})
    provider = config.providers["vault"]
    assert isinstance(provider, _VaultProvider)
    assert provider.token == Secret("tok-123-secret")
    assert provider.token.reveal() == "tok-123-secret"
    assert "tok-123-secret" not in repr(config)
    assert "tok-123-secret" not in describe(config)
    assert "token ***" in describe(config)


@pytest.mark.usefixtures("vault")
def test_secret_errors_never_quote_it() -> None:
    cfg = base()
    cfg["providers"]["vault"] = {"type": "vault", "token": "clear-secret", "regoin": "eu"}
    errors = "\n".join(errors_of(cfg))
    assert "providers.vault.regoin: unknown key; did you mean 'region'?" in errors
    assert "providers.vault.region: missing" in errors
    cfg["providers"]["vault"] = {"type": "vault", "token": ["x-secret"], "region": "eu"}
    errors = "\n".join(errors_of(cfg))
    assert "providers.vault.token: expected a non-empty string, got a list" in errors
    assert "x-secret" not in errors
    cfg["providers"]["vault"] = {"type": "vault", "region": "eu"}
    assert "providers.vault.token: missing; expected a secret" in errors_of(cfg)[0]


def test_secret_repr() -> None:
    secret = Secret("p4ss")
    assert "p4ss" not in repr(secret) and "p4ss" not in str(secret) and "p4ss" not in f"{secret}"


# --- files ------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.errors == [
        f"{tmp_path / 'nope.yaml'}: cannot read the configuration: No such file or directory; "
        "check the path and its permissions"
    ]


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(tmp_path)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("providers:\n  local: {type: builtin\nservices: {}\n  password: hunter2\n")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    (error,) = info.value.errors
    assert error.startswith(f"{file}:3:")
    assert "invalid YAML" in error and "hunter2" not in error


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    file = tmp_path / "dup.yaml"
    text = yaml.safe_dump(base(), sort_keys=False) + "services: {}\n"
    file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(file)
    line = text.count("\n")
    assert f"{file}:{line}: duplicate key 'services'; each key may appear only once" in str(
        info.value
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "the file is empty"), ("- a\n", "expected a mapping at the top level, got a list")],
)
def test_empty_or_not_a_mapping(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_config(text)


# --- the examples --------------------------------------------------------------


def test_example_file_loads() -> None:
    config = load_config(EXAMPLE, env={})
    assert set(config.services) == {"shop", "api"}
    shop_targets = config.services["shop"].targets
    assert [t.location for t in shop_targets] == ["aws", "ovh", "scaleway"]
    assert {p.type for t in shop_targets for p in t.probes} == {"http", "tcp"}
    assert config.providers["local"].type == "builtin"


def test_full_example_is_the_spec_example_and_lists_missing_secrets() -> None:
    missing: list[str] = []
    config = load_config(FULL_EXAMPLE, env={}, missing_secrets=missing)
    types = {p.type for p in config.providers.values()}
    assert types == {"route53", "ovh", "scaleway", "hetzner", "cloudflare", "rfc2136"}
    shop = config.services["shop"]
    assert {r.provider for r in shop.records} == {"ovh", "route53", "bind", "hetzner", "cloudflare"}
    assert [t.location for t in shop.targets] == ["aws", "ovh", "scaleway"]
    assert missing == [
        "providers.ovh.application_key: ${OVH_APPLICATION_KEY}",
        "providers.ovh.application_secret: ${OVH_APPLICATION_SECRET}",
        "providers.ovh.consumer_key: ${OVH_CONSUMER_KEY}",
        "providers.scaleway.secret_key: ${file:/run/secrets/scw_secret_key}",
        "providers.hetzner.token: ${HCLOUD_TOKEN}",
        "providers.cloudflare.api_token: ${CLOUDFLARE_API_TOKEN}",
        "providers.bind.tsig.secret: ${TSIG_SECRET}",
        "notifications[0].url: ${SLACK_WEBHOOK_URL}",
    ]
    assert [n.name for n in config.notifications] == ["slack-oncall"]
    with pytest.raises(ConfigError) as info:  # without the flag, missing secrets are errors
        load_config(FULL_EXAMPLE, env={})
    assert "environment variable OVH_APPLICATION_KEY is not set" in str(info.value)
    env = {
        "OVH_APPLICATION_KEY": "k",
        "OVH_APPLICATION_SECRET": "s-4711",
        "OVH_CONSUMER_KEY": "c",
        "TSIG_SECRET": "c2VjcmV0",
        "CLOUDFLARE_API_TOKEN": "cf",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
        "HCLOUD_TOKEN": "hz",
    }
    with pytest.raises(ConfigError) as info:
        load_config(FULL_EXAMPLE, env=env)
    assert str(info.value).count("\n") == 0 and "scw_secret_key" in str(info.value)
