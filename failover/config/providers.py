"""The `providers:` section: a tagged union on `type`, one parser per DNS provider.

A new provider adds one parser to `PROVIDER_PARSERS` and one dataclass to `types.py`. Each
parser takes the provider's `Section`, its name and the keys common to every provider, and
returns the typed config. Credentials are `Secret`s; pairs that only work together (AWS key id
and secret, OVH application key/secret/consumer key, OAuth2 client id/secret) are checked here
so a half-configured provider fails at start, not at the first failover.

A `type` that no parser here knows but an installed plugin registers (`failover.plugins`) is a
`PluginProviderConfig`: the common keys parsed as for every provider, the rest passed through.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from failover.config.common import LOWER_NAME, one_of, opt_plain, positive, retry_policy, valid_name
from failover.config.parse import (
    BROKEN,
    Interpolated,
    Invalid,
    Section,
    boolean,
    choice,
    dns_name,
    hostport,
    integer,
    matching,
    plain,
    string,
)
from failover.config.types import (
    BuiltinProviderConfig,
    CloudflareProviderConfig,
    HetznerProviderConfig,
    HostPort,
    OvhProviderConfig,
    PluginProviderConfig,
    ProviderConfig,
    Rfc2136ProviderConfig,
    Route53ProviderConfig,
    ScalewayProviderConfig,
    Secret,
    TsigConfig,
    VerifyConfig,
)
from failover.plugins import discover


@dataclass(frozen=True)
class ProviderCommon:
    """The keys every provider takes, parsed in one place."""

    location: str | None
    timeout: float
    verify: VerifyConfig


ProviderParser = Callable[[Section, str, ProviderCommon], ProviderConfig]


OVH_ENDPOINTS = (
    "ovh-eu",
    "ovh-us",
    "ovh-ca",
    "kimsufi-eu",
    "kimsufi-ca",
    "soyoustart-eu",
    "soyoustart-ca",
)
OAUTH2_ENDPOINTS = ("ovh-eu", "ovh-ca", "ovh-us")
TSIG_ALGORITHMS = (
    "hmac-sha256",
    "hmac-sha512",
    "hmac-sha384",
    "hmac-sha224",
    "hmac-sha1",
    "hmac-md5",
)


def base_url(value: object) -> str:
    """An http(s) URL with a host, no query: API overrides for tests and proxies."""
    text = plain(string(value)).rstrip("/")
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query:
        raise Invalid("expected an http:// or https:// base URL like http://127.0.0.1:8080")
    return text


def _ovh_endpoint(value: object) -> str:
    text = plain(string(value))
    if text in OVH_ENDPOINTS:
        return text
    if "://" in text:
        return base_url(text)
    raise Invalid(f"expected one of {', '.join(OVH_ENDPOINTS)} or a base URL")


def _pair(sec: Section, keys: tuple[str, ...], what: str) -> bool:
    """All of `keys` or none; returns whether they are all given."""
    given = [k for k in keys if sec.raw(k) is not None]
    if given and len(given) != len(keys):
        missing = ", ".join(k for k in keys if k not in given)
        sec.error(None, f"{what} needs {', '.join(keys)} together; missing {missing}")
    return len(given) == len(keys)


def route53(sec: Section, name: str, common: ProviderCommon) -> Route53ProviderConfig:
    _pair(sec, ("access_key_id", "secret_access_key"), "an AWS access key")
    if sec.raw("session_token") is not None and sec.raw("access_key_id") is None:
        sec.error("session_token", "needs access_key_id and secret_access_key")
    zones = sec.section("hosted_zone_ids")
    zone_ids: dict[str, str] = {}
    for zone, path, node in zones.entries():
        try:
            key = dns_name()(zone)
            zone_ids[key] = matching(r"(/hostedzone/)?[A-Z0-9]{1,32}", "a hosted zone id")(node)
        except Invalid as exc:
            sec.errors.append(f"{path}: {exc}")
    zones.done()
    return Route53ProviderConfig(
        name=name,
        location=common.location or "aws",
        timeout=common.timeout,
        verify=common.verify,
        retry=retry_policy(sec),
        profile=sec.opt("profile", string),
        region=sec.opt("region", matching(r"[a-z]{2}(-[a-z]+)+-\d", "an AWS region")),
        access_key_id=sec.secret("access_key_id", required=False),
        secret_access_key=sec.secret("secret_access_key", required=False),
        session_token=sec.secret("session_token", required=False),
        endpoint_url=sec.opt("endpoint_url", base_url),
        hosted_zone_ids={k: v.rsplit("/", 1)[-1] for k, v in zone_ids.items()},
        max_concurrency=sec.get("max_concurrency", integer(1, 64), 4),
        change_timeout=sec.get("change_timeout", positive, 120.0),
        requests_per_second=sec.get("requests_per_second", integer(1, 1000), 5),
    )


def ovh(sec: Section, name: str, common: ProviderCommon) -> OvhProviderConfig:
    keys = _pair(
        sec, ("application_key", "application_secret", "consumer_key"), "application-key auth"
    )
    oauth = _pair(sec, ("client_id", "client_secret"), "OAuth2 client-credentials auth")
    endpoint = sec.get("endpoint", _ovh_endpoint, "ovh-eu")
    if keys and oauth:
        sec.error(None, "give application keys or an OAuth2 client, not both")
    if oauth and "://" not in endpoint and endpoint not in OAUTH2_ENDPOINTS:
        sec.error("endpoint", f"OAuth2 works only with {', '.join(OAUTH2_ENDPOINTS)}")
    return OvhProviderConfig(
        name=name,
        location=common.location or "ovh",
        timeout=common.timeout,
        verify=common.verify,
        retry=retry_policy(sec),
        endpoint=endpoint,
        application_key=sec.secret("application_key", required=False),
        application_secret=sec.secret("application_secret", required=False),
        consumer_key=sec.secret("consumer_key", required=False),
        client_id=sec.secret("client_id", required=False),
        client_secret=sec.secret("client_secret", required=False),
        max_concurrency=sec.get("max_concurrency", integer(1, 64), 4),
        rate_limit=float(sec.get("rate_limit", integer(1, 1000), 20)),
        change_timeout=sec.get("change_timeout", positive, 120.0),
    )


def scaleway(sec: Section, name: str, common: ProviderCommon) -> ScalewayProviderConfig:
    return ScalewayProviderConfig(
        name=name,
        location=common.location or "scaleway",
        timeout=common.timeout,
        verify=common.verify,
        retry=retry_policy(sec),
        secret_key=sec.secret("secret_key", required=False),
        api_url=sec.get("api_url", base_url, "https://api.scaleway.com"),
        project_id=sec.opt("project_id", matching(r"[0-9a-fA-F-]{36}", "a project UUID")),
        page_size=sec.get("page_size", integer(1, 1000), 100),
        max_concurrency=sec.get("max_concurrency", integer(1, 64), 4),
        change_timeout=sec.get("change_timeout", positive, 300.0),
    )


def hetzner(sec: Section, name: str, common: ProviderCommon) -> HetznerProviderConfig:
    return HetznerProviderConfig(
        name=name,
        location=common.location or "hetzner",
        timeout=common.timeout,
        verify=common.verify,
        retry=retry_policy(sec),
        token=sec.secret("token", required=False),
        api_endpoint=sec.get("api_endpoint", base_url, "https://api.hetzner.cloud/v1"),
        max_concurrency=sec.get("max_concurrency", integer(1, 64), 4),
        change_timeout=sec.get("change_timeout", positive, 120.0),
    )


def _proxied(sec: Section, verify: VerifyConfig) -> bool | frozenset[str]:
    """`proxied`: false, true (every record of the provider) or a list of record names. A
    proxied name answers with Cloudflare's addresses, so only `verify: api` can confirm it."""
    raw = sec.raw("proxied")
    if raw is None or raw is False:
        return False
    proxied: bool | frozenset[str]
    if raw is True:
        proxied = True
    elif isinstance(raw, list):
        names = (sec.item(path, node, dns_name()) for path, node in sec.items("proxied"))
        proxied = frozenset(n for n in names if n is not None)
    else:
        sec.error("proxied", "expected true, false or a list of record names")
        return False
    if verify.method != "api" and verify.enabled:
        sec.error(
            "proxied",
            "a proxied record answers with Cloudflare's addresses, so no authoritative server "
            "can verify it; set `verify: api` on this provider (the change is then read back "
            "through the API), or `verify: false`, or drop `proxied`",
        )
    return proxied


def cloudflare(sec: Section, name: str, common: ProviderCommon) -> CloudflareProviderConfig:
    return CloudflareProviderConfig(
        name=name,
        location=common.location or "cloudflare",
        timeout=common.timeout,
        verify=common.verify,
        retry=retry_policy(sec),
        api_token=sec.secret("api_token", required=False),
        base_url=sec.get("base_url", base_url, "https://api.cloudflare.com/client/v4"),
        batch_size=sec.get("batch_size", integer(1, 10000), 200),
        page_size=sec.get("page_size", integer(5, 5000), 100),
        proxied=_proxied(sec, common.verify),
        max_concurrency=sec.get("max_concurrency", integer(1, 64), 4),
    )


def _option(value: object) -> object:
    """A plugin option as YAML gave it, except that `${…}` text becomes a `Secret`."""
    if isinstance(value, Interpolated):
        return Secret(plain(value))
    if isinstance(value, dict):
        return {k: _option(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_option(v) for v in value]
    return value


def plugin(sec: Section, name: str, common: ProviderCommon, ptype: str) -> PluginProviderConfig:
    """A third-party provider: the common keys parsed here, every other key passed through
    as `options` for the plugin to judge (its factory raises ProviderError on a bad one)."""
    retry = retry_policy(sec)
    options: dict[str, object] = {}
    for key, value in sec.node.items():
        if isinstance(key, str) and key not in sec.known and key != "type":
            sec.known.add(key)
            if value is BROKEN:
                continue  # its interpolation failed: already reported
            options[key] = _option(value)
    return PluginProviderConfig(
        name=name,
        type=ptype,
        location=common.location,
        timeout=common.timeout,
        verify=common.verify,
        retry=retry,
        options=options,
    )


def _tsig(sec: Section) -> TsigConfig | None:
    if sec.raw("tsig") is None:
        return None
    t = sec.section("tsig")
    key_name = t.need("name", dns_name(), "the TSIG key name, like failover-key")
    algorithm = t.get("algorithm", choice(TSIG_ALGORITHMS, "TSIG algorithm"), "hmac-sha256")
    secret = t.secret("secret")
    if secret is not None:
        try:
            base64.b64decode(secret.reveal(), validate=True)
        except (binascii.Error, ValueError):
            t.error("secret", "is not base64; paste the secret of `tsig-keygen` output")
    t.done()
    if key_name is None or secret is None:
        return None
    return TsigConfig(name=key_name, secret=secret, algorithm=algorithm)


def rfc2136(sec: Section, name: str, common: ProviderCommon) -> Rfc2136ProviderConfig:
    server = sec.need("server", string, "the primary server's address, like 192.0.2.53")
    return Rfc2136ProviderConfig(
        name=name,
        server=plain(server or "127.0.0.1"),
        location=common.location,
        timeout=common.timeout,
        verify=common.verify,
        retry=retry_policy(sec),
        port=sec.get("port", integer(1, 65535), 53),
        tsig=_tsig(sec),
        transport=sec.get("transport", choice(("tcp", "udp"), "transport"), "tcp"),  # type: ignore[arg-type]
        max_concurrency=sec.get("max_concurrency", integer(1, 64), 4),
        zone_transfer=sec.get("zone_transfer", boolean, True),
    )


# --- the keys every provider takes, the builtin one, and the section ------------------------------


def _verify(sec: Section) -> VerifyConfig:
    raw = sec.raw("verify")
    if raw is None or raw is True:
        return VerifyConfig()
    if raw is False:
        return VerifyConfig(enabled=False)
    if raw == "api":
        return VerifyConfig(method="api")
    if not isinstance(raw, dict):
        sec.error("verify", "expected false or api, or a mapping with nameservers and timeout")
        return VerifyConfig()
    v = sec.section("verify")
    nameservers = tuple(
        ns
        for path, node in v.items("nameservers", "a list of host:port")
        if (ns := v.item(path, node, hostport(default_port=53))) is not None
    )
    config = VerifyConfig(nameservers=nameservers, timeout=v.get("timeout", positive, 60.0))
    v.done()
    return config


def _provider_common(sec: Section) -> ProviderCommon:
    return ProviderCommon(
        location=opt_plain(sec.opt("location", valid_name)),
        timeout=sec.get("timeout", positive, 10.0),
        verify=_verify(sec),
    )


def builtin(sec: Section, name: str, common: ProviderCommon) -> BuiltinProviderConfig:
    listen = sec.need("listen", hostport(allow_zero=True), "host:port, like 127.0.0.1:5353")
    return BuiltinProviderConfig(
        name=name,
        listen=listen or HostPort("127.0.0.1", 0),
        location=common.location,
        timeout=common.timeout,
        verify=common.verify,
    )


PROVIDER_PARSERS: dict[str, ProviderParser] = {
    "builtin": builtin,
    "route53": route53,
    "ovh": ovh,
    "scaleway": scaleway,
    "rfc2136": rfc2136,
    "hetzner": hetzner,
    "cloudflare": cloudflare,
}


def parse_providers(top: Section) -> tuple[dict[str, ProviderConfig], set[str]]:
    """The parsed providers, and every declared name (records may cite a provider with errors)."""
    sec = top.section("providers")
    if not sec.node and not sec.broken:
        top.error("providers", "no provider defined; define at least one DNS provider here")
    out: dict[str, ProviderConfig] = {}
    plugins = {k: p for k, p in discover()[0].items() if not p.builtin}
    types: dict[str, object] = {**PROVIDER_PARSERS, **plugins}
    for name, path, node in sec.entries():
        if not re.fullmatch(LOWER_NAME[0], name):
            sec.error(name, f"invalid provider name; expected {LOWER_NAME[1]}")
        p = Section.open(sec.errors, node, path)
        if p is None:
            continue
        ptype = p.need("type", choice(types, "provider type"), one_of(types))
        if ptype is None:
            continue  # its other keys cannot be judged without a known type
        if ptype in PROVIDER_PARSERS:
            out[name] = PROVIDER_PARSERS[ptype](p, name, _provider_common(p))
        else:
            out[name] = plugin(p, name, _provider_common(p), ptype)
        p.done()
    return out, {name for name, _, _ in sec.entries()}
