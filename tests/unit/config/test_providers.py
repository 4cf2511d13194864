"""Provider sections of the config: every provider type, credential pairs, secrets kept secret."""

from __future__ import annotations

import pytest

from failover.config.describe import describe
from failover.config.loader import ConfigError, parse_config
from failover.config.types import (
    CloudflareProviderConfig,
    HetznerProviderConfig,
    OvhProviderConfig,
    Rfc2136ProviderConfig,
    Route53ProviderConfig,
    ScalewayProviderConfig,
)

SERVICE = """
services:
  shop:
    records: [{provider: PROVIDER, zone: example.com, name: shop.example.com, type: A}]
    targets:
      - {name: a, values: [192.0.2.1], probes: [{type: tcp, address: "192.0.2.1:443"}]}
      - {name: b, values: [192.0.2.2], probes: [{type: tcp, address: "192.0.2.2:443"}]}
"""
ENV = {
    "AK": "AKIAEXAMPLE",
    "SK": "aws-secret-value-123",
    "OVH_AK": "ovh-app-key",
    "OVH_AS": "ovh-app-secret-456",
    "OVH_CK": "ovh-consumer-789",
    "SCW": "scw-secret-000",
    "TSIG": "c2VjcmV0LXRzaWcta2V5LXZhbHVl",
    "HZ": "hz-token-abcdef0123456789",
    "CF": "cf-token-0123456789",
}


def load(provider: str, name: str = "p") -> object:
    text = f"instance: {{name: t, state_dir: /tmp/x}}\nproviders:\n  {name}: {provider}\n"
    return parse_config(text + SERVICE.replace("PROVIDER", name), env=ENV)


def errors(provider: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(provider)
    return str(info.value)


def test_spec_providers_parse_with_their_defaults() -> None:
    r53 = load("{type: route53}").providers["p"]  # type: ignore[attr-defined]
    assert isinstance(r53, Route53ProviderConfig)
    assert r53.location == "aws" and r53.access_key_id is None
    ovh = load(
        "{type: ovh, endpoint: ovh-eu, application_key: '${OVH_AK}',"
        " application_secret: '${OVH_AS}', consumer_key: '${OVH_CK}'}"
    ).providers["p"]  # type: ignore[attr-defined]
    assert isinstance(ovh, OvhProviderConfig)
    assert ovh.location == "ovh" and ovh.application_secret is not None
    assert ovh.application_secret.reveal() == "ovh-app-secret-456"
    scw = load("{type: scaleway, secret_key: '${SCW}'}").providers["p"]  # type: ignore[attr-defined]
    assert isinstance(scw, ScalewayProviderConfig) and scw.location == "scaleway"
    bind = load(
        "{type: rfc2136, server: 192.0.2.53, port: 5353,"
        " tsig: {name: failover-key, secret: '${TSIG}'}, retry: {attempts: 2, deadline: 5s}}"
    ).providers["p"]  # type: ignore[attr-defined]
    assert isinstance(bind, Rfc2136ProviderConfig)
    assert bind.port == 5353 and bind.location is None
    assert bind.tsig is not None and bind.tsig.algorithm == "hmac-sha256"
    assert bind.retry.attempts == 2 and bind.retry.deadline == 5.0
    assert bind.zone_transfer is True  # tried by default, falls back to queries when refused
    off = load("{type: rfc2136, server: x, zone_transfer: off}").providers["p"]  # type: ignore[attr-defined]
    assert isinstance(off, Rfc2136ProviderConfig) and off.zone_transfer is False


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ("{type: route53, access_key_id: '${AK}'}", "providers.p: an AWS access key needs"),
        ("{type: route53, endpoint_url: ftp://x}", "providers.p.endpoint_url: expected an http"),
        ("{type: route53, region: mars}", "providers.p.region: "),
        (
            "{type: route53, hosted_zone_ids: {example.com: 'bad id!'}}",
            "hosted_zone_ids.example.com",
        ),
        ("{type: ovh, application_key: '${OVH_AK}'}", "application-key auth needs"),
        ("{type: ovh, endpoint: ovh-mars}", "providers.p.endpoint: expected one of ovh-eu"),
        (
            "{type: ovh, endpoint: kimsufi-eu, client_id: '${OVH_AK}', client_secret: '${OVH_AS}'}",
            "OAuth2 works only with",
        ),
        (
            "{type: ovh, client_id: a, client_secret: b, application_key: c,"
            " application_secret: d, consumer_key: e}",
            "not both",
        ),
        ("{type: scaleway, api_url: 'not a url'}", "providers.p.api_url"),
        ("{type: scaleway, page_size: 0}", "providers.p.page_size"),
        ("{type: rfc2136}", "providers.p.server: missing"),
        ("{type: rfc2136, server: x, tsig: {name: k, secret: '${SK}'}}", "is not base64"),
        ("{type: rfc2136, server: x, tsig: {name: k, algorithm: md4, secret: c2Vj}}", "algorithm"),
        ("{type: rfc2136, server: x, transport: quic}", "providers.p.transport"),
        ("{type: rfc2136, server: x, zone_transfer: auto}", "providers.p.zone_transfer"),
        ("{type: rfc2136, server: x, retry: {attempts: 0}}", "providers.p.retry.attempts"),
        ("{type: route53, colour: blue}", "providers.p.colour: unknown key"),
        ("{type: hetzner, api_endpoint: 'hetzner.cloud'}", "providers.p.api_endpoint: expected"),
        ("{type: hetzner, max_concurrency: 0}", "providers.p.max_concurrency"),
        ("{type: hetzner, change_timeout: 0s}", "providers.p.change_timeout"),
        ("{type: hetzner, token: 42}", "providers.p.token: expected a non-empty string"),
        ("{type: hetzner, tokne: '${HZ}'}", "providers.p.tokne: unknown key; did you mean 'token'"),
        ("{type: cloudflare, base_url: 'api.cloudflare.com'}", "providers.p.base_url: expected"),
        ("{type: cloudflare, batch_size: 0}", "providers.p.batch_size"),
        ("{type: cloudflare, proxied: yes please}", "providers.p.proxied: expected true, false"),
        ("{type: cloudflare, proxied: ['bad name!']}", "providers.p.proxied[0]"),
        ("{type: cloudflare, proxied: true}", "providers.p.proxied: a proxied record answers"),
        ("{type: cloudflare, proxied: true, verify: {timeout: 5s}}", "set `verify: api`"),
        ("{type: cloudflare, verify: dns}", "providers.p.verify: expected false or api"),
        ("{type: cloudflare, api_key: '${CF}'}", "providers.p.api_key: unknown key"),
    ],
)
def test_provider_errors_name_the_path(provider: str, expected: str) -> None:
    assert expected in errors(provider)


@pytest.mark.parametrize(
    "provider",
    [
        "{type: rfc2136, server: x, tsig: {name: k, secret: '${SK}'}}",
        "{type: route53, access_key_id: '${SK}'}",
        "{type: ovh, application_key: '${OVH_AS}', consumer_key: 42}",
        "{type: hetzner, token: '${HZ}', api_endpoint: '${HZ}'}",
        "{type: cloudflare, api_token: '${CF}', batch_size: -1}",
    ],
)
def test_secret_values_never_appear_in_errors(provider: str) -> None:
    text = errors(provider)
    for secret in ENV.values():
        assert secret not in text


def test_secrets_are_hidden_in_reprs() -> None:
    config = load("{type: rfc2136, server: x, tsig: {name: k, secret: '${TSIG}'}}")
    assert ENV["TSIG"] not in repr(config)


def test_hetzner_parses_with_its_defaults_and_hides_its_token() -> None:
    config = load("{type: hetzner, token: '${HZ}'}")
    hz = config.providers["p"]  # type: ignore[attr-defined]
    assert isinstance(hz, HetznerProviderConfig)
    assert hz.location == "hetzner" and hz.api_endpoint == "https://api.hetzner.cloud/v1"
    assert hz.token is not None and hz.token.reveal() == ENV["HZ"] and not hz.token.clear_text
    assert (hz.max_concurrency, hz.change_timeout, hz.timeout) == (4, 120.0, 10.0)
    assert ENV["HZ"] not in repr(config) and ENV["HZ"] not in str(hz)
    default = load("{type: hetzner, location: fsn1}").providers["p"]  # type: ignore[attr-defined]
    assert default.token is None and default.location == "fsn1"  # $HCLOUD_TOKEN at start


def test_cloudflare_defaults_opt_ins_and_summary() -> None:
    cf = load("{type: cloudflare, api_token: '${CF}'}").providers["p"]  # type: ignore[attr-defined]
    assert isinstance(cf, CloudflareProviderConfig)
    assert (cf.location, cf.batch_size, cf.proxied, cf.verify.method) == (
        "cloudflare",
        200,
        False,
        "dns",
    )
    assert cf.base_url == "https://api.cloudflare.com/client/v4"
    assert cf.api_token is not None and cf.api_token.reveal() == ENV["CF"]
    config = load(
        "{type: cloudflare, api_token: '${CF}', batch_size: 3500, verify: api,"
        " proxied: [Shop.Example.com.]}"
    )
    paid = config.providers["p"]  # type: ignore[attr-defined]
    assert paid.batch_size == 3500 and paid.verify.method == "api"
    assert paid.proxied == frozenset({"shop.example.com"})
    assert load("{type: cloudflare, proxied: true, verify: false}").providers["p"].proxied is True  # type: ignore[attr-defined]
    text = describe(config)  # type: ignore[arg-type]
    assert "p: cloudflare (built-in) in cloudflare" in text and "proxied shop.example.com" in text
    assert "verify: through the API only" in text
    assert ENV["CF"] not in text and ENV["CF"] not in repr(config)
