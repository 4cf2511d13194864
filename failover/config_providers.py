"""Parsers of the real DNS providers' sections: route53, ovh, scaleway, rfc2136.

Each takes the provider's `Section`, its name and the keys common to every provider, and
returns the typed config. Credentials are `Secret`s; pairs that only work together (AWS key id
and secret, OVH application key/secret/consumer key, OAuth2 client id/secret) are checked here
so a half-configured provider fails at start, not at the first failover.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from typing import TYPE_CHECKING

from failover.config_parse import (
    Invalid,
    Section,
    choice,
    dns_name,
    duration,
    integer,
    matching,
    plain,
    string,
)
from failover.config_types import (
    OvhProviderConfig,
    RetryConfig,
    Rfc2136ProviderConfig,
    Route53ProviderConfig,
    ScalewayProviderConfig,
    TsigConfig,
)

if TYPE_CHECKING:
    from failover.config import ProviderCommon

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
_positive = duration()


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


def retry_policy(sec: Section) -> RetryConfig:
    """`retry: {attempts, initial, max_delay, deadline}` shared by every provider."""
    r = sec.section("retry")
    default = RetryConfig()
    config = RetryConfig(
        attempts=r.get("attempts", integer(1, 100), default.attempts),
        initial=r.get("initial", _positive, default.initial),
        max_delay=r.get("max_delay", _positive, default.max_delay),
        deadline=r.get("deadline", _positive, default.deadline),
    )
    r.done()
    return config


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
        change_timeout=sec.get("change_timeout", _positive, 120.0),
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
        change_timeout=sec.get("change_timeout", _positive, 120.0),
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
        change_timeout=sec.get("change_timeout", _positive, 300.0),
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
    )
