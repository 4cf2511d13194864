"""`failover audit`: each finding with a config (or daemon answer) that triggers it and a near
miss that does not (the zone delegation checks: `test_audit_dns.py`)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover.audit import AuditReport, Finding, Severity, render, run_audit
from failover.audit.checks import config_findings
from failover.audit.state import drill_findings, status_findings
from failover.config.loader import ConfigError, load_config, parse_config
from failover.config.types import Config, Secret
from failover.timefmt import rfc3339

Cfg = dict[str, Any]
NOW = 1_800_000_000.0
DAY = 86400.0
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "failover.example.yaml"


def base() -> Cfg:
    """A sound setup: the record at two providers in two clouds, primary on aws, backup on ovh,
    the instance elsewhere, an rto the TTL and detection fit in. Only one vantage point."""
    return copy.deepcopy(
        {
            "instance": {"name": "audit-1", "location": "onprem", "state_dir": "/tmp/fo/state"},
            "admin": {"socket": "/tmp/fo/admin.sock"},
            "providers": {"r53": {"type": "route53"}, "ovh": {"type": "ovh"}},
            "services": {
                "shop": {
                    "rto": "5m",
                    "records": [
                        {"provider": "r53", "zone": "example.com", "name": "shop.example.com"},
                        {"provider": "ovh", "zone": "example.com", "name": "shop.example.com"},
                    ],
                    "targets": [
                        {
                            "name": "primary",
                            "location": "aws",
                            "values": ["192.0.2.1"],
                            "probes": [{"type": "http", "url": "http://192.0.2.1/healthz"}],
                        },
                        {
                            "name": "backup",
                            "location": "ovh",
                            "values": ["192.0.2.2"],
                            "probes": [{"type": "tcp", "address": "192.0.2.2:443"}],
                        },
                    ],
                }
            },
        }
    )


def load(cfg: Cfg, env: Mapping[str, str] | None = None) -> Config:
    for record in cfg["services"]["shop"]["records"]:
        record.setdefault("type", "A")
    return parse_config(yaml.safe_dump(cfg, sort_keys=False), env=env or {})


def shop(cfg: Cfg) -> Cfg:
    return cfg["services"]["shop"]  # type: ignore[no-any-return]


def found(findings: list[Finding] | tuple[Finding, ...]) -> set[tuple[str, str, Severity]]:
    return {(f.check, f.subject, f.severity) for f in findings}


def checks(findings: list[Finding] | tuple[Finding, ...]) -> set[str]:
    return {f.check for f in findings}


def test_base_is_sound_but_for_its_single_vantage_point() -> None:
    assert found(config_findings(load(base()))) == {
        ("single-vantage-point", "coordination", Severity.WARNING)
    }


# --- configuration findings: trigger and near miss --------------------------------------------


def only_route53(cfg: Cfg) -> None:
    del shop(cfg)["records"][1]


def two_aws_providers(cfg: Cfg) -> None:
    cfg["providers"]["r53b"] = {"type": "route53", "profile": "other"}
    shop(cfg)["records"][1]["provider"] = "r53b"


def only_ovh(cfg: Cfg) -> None:
    del shop(cfg)["records"][0]


def hetzner(primary_location: str, token: str = "${HZ}") -> Callable[[Cfg], None]:
    """shop's record only at Hetzner Cloud DNS (location hetzner by default)."""

    def mutate(cfg: Cfg) -> None:
        cfg["providers"] = {"hz": {"type": "hetzner", "token": token}}
        shop(cfg)["records"] = [
            {"provider": "hz", "zone": "example.com", "name": "shop.example.com"}
        ]
        shop(cfg)["targets"][0]["location"] = primary_location

    return mutate


def one_target(cfg: Cfg) -> None:
    del shop(cfg)["targets"][1]


def backup_on_aws(cfg: Cfg) -> None:
    shop(cfg)["targets"][1]["location"] = "aws"


def third_target_elsewhere(cfg: Cfg) -> None:
    backup_on_aws(cfg)
    third = copy.deepcopy(shop(cfg)["targets"][1]) | {"name": "scw", "location": "scaleway"}
    shop(cfg)["targets"].append(third)


def no_probes(index: int) -> Callable[[Cfg], None]:
    def mutate(cfg: Cfg) -> None:
        del shop(cfg)["targets"][index]["probes"]

    return mutate


def instance_at(location: str | None) -> Callable[[Cfg], None]:
    def mutate(cfg: Cfg) -> None:
        cfg["instance"]["location"] = location

    return mutate


def rto(value: str | None, ttl: int = 60) -> Callable[[Cfg], None]:
    def mutate(cfg: Cfg) -> None:
        if value is None:
            del shop(cfg)["rto"]
        else:
            shop(cfg)["rto"] = value
        for record in shop(cfg)["records"]:
            record["ttl"] = ttl

    return mutate


def no_target_location(cfg: Cfg) -> None:
    del shop(cfg)["targets"][1]["location"]


def bind_record(location: str | None) -> Callable[[Cfg], None]:
    def mutate(cfg: Cfg) -> None:
        cfg["providers"]["bind"] = {"type": "rfc2136", "server": "192.0.2.53"}
        if location:
            cfg["providers"]["bind"]["location"] = location
        shop(cfg)["records"].append(
            {"provider": "bind", "zone": "example.net", "name": "shop.example.net"}
        )

    return mutate


def ovh_keys(value: str) -> Callable[[Cfg], None]:
    def mutate(cfg: Cfg) -> None:
        cfg["providers"]["ovh"].update(
            application_key="${AK}", application_secret=value, consumer_key="${OVH_CK}"
        )

    return mutate


def tsig_secret(value: str) -> Callable[[Cfg], None]:
    def mutate(cfg: Cfg) -> None:
        bind_record("onprem")(cfg)
        cfg["providers"]["bind"]["tsig"] = {"name": "failover-key", "secret": value}

    return mutate


def only_cloudflare(
    primary: str, *, located: str | None = None, token: str = "${CF}"
) -> Callable[[Cfg], None]:
    """The record only at Cloudflare; the primary target in `primary`; the provider's location
    configured as `located` (default: its own, `cloudflare`)."""

    def mutate(cfg: Cfg) -> None:
        cfg["providers"]["cf"] = {"type": "cloudflare", "api_token": token}
        if located is not None:
            cfg["providers"]["cf"]["location"] = located
        shop(cfg)["records"] = [
            {"provider": "cf", "zone": "example.com", "name": "shop.example.com"}
        ]
        shop(cfg)["targets"][0]["location"] = primary

    return mutate


R0, R1, R2 = (f"services.shop.records[{i}]" for i in range(3))
T0, T1 = "services.shop.targets[0]", "services.shop.targets[1]"
CRIT, WARN, INFO = Severity.CRITICAL, Severity.WARNING, Severity.INFO
ENV = {
    "AK": "key-from-env",
    "OVH_CK": "consumer-from-env",
    "TSIG": "c2VjcmV0LWZyb20tZW52",
    "AS": "app-secret-env",
    "HZ": "hz-token-env",
    "CF": "cf-token-from-env",
}

# (mutation, the finding it must produce)
TRIGGERS: list[tuple[Callable[[Cfg], None], tuple[str, str, Severity]]] = [
    (only_route53, ("dns-provider-in-primary-location", R0, CRIT)),
    (hetzner("hetzner"), ("dns-provider-in-primary-location", R0, CRIT)),
    (two_aws_providers, ("dns-provider-in-primary-location", R0, CRIT)),
    (one_target, ("single-target", "services.shop.targets", CRIT)),
    (backup_on_aws, ("targets-in-one-location", "services.shop.targets", CRIT)),
    (no_probes(0), ("target-without-probes", T0, CRIT)),
    (no_probes(1), ("target-without-probes", T1, CRIT)),
    (instance_at("aws"), ("instance-in-primary-location", "instance", WARN)),
    (instance_at(None), ("location-unknown", "instance", INFO)),
    (rto("30s"), ("ttl-above-rto", R0, WARN)),
    (rto("70s"), ("recovery-above-rto", "services.shop.rto", WARN)),  # 3 x 5s + 2s + 60s
    (rto(None), ("rto-unset", "services.shop", INFO)),
    (no_target_location, ("location-unknown", T1, INFO)),
    (bind_record(None), ("location-unknown", "providers.bind", INFO)),
    (ovh_keys("clear-app-secret"), ("secret-in-clear", "providers.ovh.application_secret", WARN)),
    (tsig_secret("c2VjcmV0"), ("secret-in-clear", "providers.bind.tsig.secret", WARN)),
    (hetzner("aws", "hz-clear-token"), ("secret-in-clear", "providers.hz.token", WARN)),
    (only_cloudflare("cloudflare"), ("dns-provider-in-primary-location", R0, CRIT)),
    (only_cloudflare("aws", located="aws"), ("dns-provider-in-primary-location", R0, CRIT)),
    (only_cloudflare("aws", token="cf-clear"), ("secret-in-clear", "providers.cf.api_token", WARN)),
]

# (mutation, the check that must stay silent): the closest sound variant of each trigger
NEAR_MISSES: list[tuple[Callable[[Cfg], None], str]] = [
    (only_ovh, "dns-provider-in-primary-location"),  # one provider, but outside aws
    (hetzner("aws"), "dns-provider-in-primary-location"),  # at hetzner, the primary on aws
    (third_target_elsewhere, "targets-in-one-location"),  # two on aws, a third on scaleway
    (third_target_elsewhere, "single-target"),
    (lambda cfg: None, "target-without-probes"),
    (instance_at("ovh"), "instance-in-primary-location"),  # the secondary's location is fine
    (rto("60s", ttl=60), "ttl-above-rto"),  # equal is within
    (rto("80s"), "recovery-above-rto"),  # 17s + 60s fits
    (rto("1h", ttl=3600), "ttl-above-rto"),
    (lambda cfg: None, "rto-unset"),
    (bind_record("onprem"), "location-unknown"),
    (ovh_keys("${AS}"), "secret-in-clear"),
    (tsig_secret("${TSIG}"), "secret-in-clear"),
    (hetzner("aws"), "secret-in-clear"),
    (only_cloudflare("aws"), "dns-provider-in-primary-location"),  # Cloudflare is not aws
    (only_cloudflare("aws"), "secret-in-clear"),
]


@pytest.mark.parametrize(("mutate", "expected"), TRIGGERS)
def test_config_finding_triggers(
    mutate: Callable[[Cfg], None], expected: tuple[str, str, Severity]
) -> None:
    cfg = base()
    mutate(cfg)
    assert expected in found(config_findings(load(cfg, ENV)))


@pytest.mark.parametrize(("mutate", "check"), NEAR_MISSES)
def test_config_finding_near_miss(mutate: Callable[[Cfg], None], check: str) -> None:
    cfg = base()
    mutate(cfg)
    assert check not in checks(config_findings(load(cfg, ENV)))


def test_clear_secret_is_flagged_but_never_shown() -> None:
    cfg = base()
    ovh_keys("sup3r-s3cret-value")(cfg)
    tsig_secret("c3VwM3ItdHNpZy1rZXk=")(cfg)  # base64 of "sup3r-tsig-key"
    config = load(cfg, ENV)
    secret = config.providers["ovh"].application_secret  # type: ignore[union-attr]
    assert isinstance(secret, Secret) and secret.clear_text
    assert not config.providers["ovh"].consumer_key.clear_text  # type: ignore[union-attr]
    assert "s3cret" not in repr(secret) and secret == Secret("sup3r-s3cret-value")
    report = AuditReport("f.yaml", NOW, "audit-1", tuple(config_findings(config)), "-", "-")
    for fmt in ("text", "json", "markdown"):
        out = render(report, fmt)
        assert "providers.ovh.application_secret" in out and "providers.bind.tsig.secret" in out
        assert "sup3r" not in out and "c3VwM3I" not in out


def test_missing_secrets_count_as_references(tmp_path: Path) -> None:
    """Audits run without the secrets (CI): a missing ${VAR} is a reference, not clear text."""
    missing: list[str] = []
    config = load_config(EXAMPLE, env={}, missing_secrets=missing)
    assert missing
    assert "secret-in-clear" not in checks(config_findings(config))


def test_rto_is_parsed_strictly() -> None:
    cfg = base()
    shop(cfg)["rto"] = 300
    with pytest.raises(ConfigError, match=r"services\.shop\.rto: got the bare number 300"):
        load(cfg)
    shop(cfg)["rto"] = "5m"
    assert load(cfg).services["shop"].rto == 300.0


# --- daemon findings: the journal and the status ----------------------------------------------


def drill(to: str, age_days: float, result: str = "ok", trigger: str = "drill") -> dict[str, Any]:
    when = NOW - age_days * DAY
    return {"time": rfc3339(when), "service": "shop", "kind": "switch", "trigger": trigger} | {
        "from": "primary",
        "to": to,
        "result": result,
    }


def three_targets() -> Config:
    cfg = base()
    third = copy.deepcopy(shop(cfg)["targets"][1]) | {"name": "scw", "location": "scaleway"}
    shop(cfg)["targets"].append(third)
    return load(cfg)


T2 = "services.shop.targets[2]"


@pytest.mark.parametrize(
    ("journal", "overdue", "says"),
    [
        ([], {T1, T2}, "never drilled"),
        ([drill("backup", 2), drill("scw", 29)], set(), ""),
        ([drill("backup", 2), drill("scw", 31)], {T2}, "last drilled 31 days ago"),
        ([drill("backup", 2), drill("scw", 3, result="error")], {T2}, "ended error"),
        ([drill("backup", 2), drill("scw", 1, trigger="auto")], {T2}, "never drilled"),
        ([drill("backup", 1), {**drill("scw", 1), "kind": "drill"}], {T2}, "never drilled"),
    ],
)
def test_drill_findings(journal: list[dict[str, Any]], overdue: set[str], says: str) -> None:
    findings = drill_findings(three_targets(), {"shop": journal}, NOW)
    assert {f.subject for f in findings} == overdue
    assert all(f.check == "drill-overdue" and f.severity is WARN for f in findings)
    assert all(says in f.title + f.detail for f in findings)
    assert all("failover drill shop --to" in f.advice for f in findings)


def test_no_journal_for_a_service_the_daemon_does_not_run() -> None:
    assert drill_findings(three_targets(), {}, NOW) == []


def status_body(**shop_fields: Any) -> dict[str, Any]:
    health = shop_fields.pop("health", {"primary": "up", "backup": "up", "scw": "up"})
    return {
        "instance": "audit-1",
        "leader": True,
        "services": {
            "shop": {
                "active": "primary",
                "mode": "auto",
                "blocked": False,
                "reason": "no action",
                "targets": {
                    name: {"health": h, "reason": f"probe tcp: {h}"} for name, h in health.items()
                },
                "records": [],
            }
            | shop_fields
        },
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (status_body(), set()),
        (status_body(mode="paused"), {("automation-off", "services.shop", WARN)}),
        (
            status_body(mode="pinned", pin={"target": "primary", "actor": "ann@host"}),
            {("automation-off", "services.shop", WARN)},
        ),
        (status_body(blocked=True), {("automation-off", "services.shop", WARN)}),
        (
            status_body(health={"primary": "up", "backup": "down", "scw": "up"}),
            {("fallback-down", T1, WARN)},
        ),
        (
            status_body(health={"primary": "up", "backup": "down", "scw": "down"}),
            {("fallback-down", T1, CRIT), ("fallback-down", T2, CRIT)},
        ),
        # every target DOWN: critical whether DNS still serves the dead primary or nothing
        (
            status_body(health={"primary": "down", "backup": "down", "scw": "down"}),
            {("all-down", "services.shop", CRIT)},
        ),
        (
            status_body(health={"primary": "down", "backup": "down", "scw": "down"}, active=None),
            {("all-down", "services.shop", CRIT)},
        ),
        # the active target itself down is the incident failover handles, not a weak fallback
        (status_body(health={"primary": "down", "backup": "up", "scw": "unknown"}), set()),
        (
            {"services": {"shop": status_body()["services"]["shop"], "old": {}}},
            {("daemon-config-differs", "daemon", INFO)},
        ),
    ],
)
def test_status_findings(body: dict[str, Any], expected: set[tuple[str, str, Severity]]) -> None:
    assert found(status_findings(three_targets(), body)) == expected


# --- the report -------------------------------------------------------------------------------


async def test_report_without_daemon_or_dns() -> None:
    cfg = base()
    only_route53(cfg)
    report = await run_audit(load(cfg), config_path="f.yaml", client=None, ns_lookup=None, now=NOW)
    assert report.has_critical
    assert [f.severity for f in report.findings] == sorted(
        (f.severity for f in report.findings), key=[CRIT, WARN, INFO].index
    )
    assert ("daemon-state-unknown", "daemon", INFO) in found(report.findings)
    body = json.loads(render(report, "json"))
    assert set(body) == {"findings", "summary"}
    assert body["summary"] | {"daemon": "", "dns": ""} == {
        "critical": 1,
        "warning": 1,
        "info": 1,
        "config": "f.yaml",
        "generated_at": rfc3339(NOW),
        "instance": "audit-1",
        "daemon": "",
        "dns": "",
    }
    assert set(body["findings"][0]) == {"severity", "check", "subject", "title", "detail", "advice"}
    assert body["findings"][0]["severity"] == "critical"
    markdown = render(report, "markdown")
    assert markdown.startswith("# Resilience audit: audit-1\n")
    assert "| critical | 1 |" in markdown and "`f.yaml`" in markdown
    assert "### 1. CRITICAL: shop.example.com A can only be changed through aws" in markdown
    text = render(report, "text")
    assert text.splitlines()[0] == "failover audit of f.yaml: 1 critical, 1 warning, 1 info"
    assert f"CRITICAL {R0}: shop.example.com A" in text


# --- several instances: where the live vantage points run -------------------------------------


def coordinated() -> Config:
    import dataclasses

    from failover.config.types import CoordinationConfig, EtcdConfig

    etcd = EtcdConfig(("http://127.0.0.1:2379",))
    return dataclasses.replace(load(base()), coordination=CoordinationConfig(etcd))


@pytest.mark.parametrize(
    ("instances", "expected"),
    [
        ({"audit-1": "onprem", "audit-2": "scaleway"}, set()),
        ({"audit-1": "onprem"}, {("instances-one-location", "coordination", Severity.WARNING)}),
        (
            {"audit-1": "onprem", "audit-2": "onprem"},
            {("instances-one-location", "coordination", Severity.WARNING)},
        ),
        (  # every vantage point inside the primary's cloud
            {"audit-1": "aws", "audit-2": "aws"},
            {("instances-one-location", "coordination", Severity.CRITICAL)},
        ),
    ],
)
def test_live_instances_must_span_two_locations(
    instances: dict[str, str], expected: set[tuple[str, str, Severity]]
) -> None:
    config = coordinated()
    assert "single-vantage-point" not in checks(config_findings(config))
    status = {
        "services": {},
        "instances": {n: {"location": loc, "isolated": False} for n, loc in instances.items()},
    }
    vantage = {
        f for f in found(status_findings(config, status)) if f[0] == "instances-one-location"
    }
    assert vantage == expected
