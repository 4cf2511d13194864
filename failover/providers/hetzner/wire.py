"""The pure rules of the Hetzner Cloud DNS API: names, record values, and what an SDK error
means (kind, retryable). No I/O, so the provider file keeps only the calls.

Error codes are those of the Cloud API's error object (`{"error": {"code", "message",
"details"}}`); hcloud's `APIException.code` is that string, or the HTTP status when the body
carried none (a proxy's 502 page).
"""

from __future__ import annotations

import requests
from hcloud import APIException, HCloudException

from failover.model import RecordType, canonical_values

APEX = "@"

THROTTLED = frozenset({"rate_limit_exceeded"})
SERVER = frozenset(
    {"server_error", "service_error", "unavailable", "maintenance", "timeout", "bad_gateway"}
)
BUSY = frozenset({"conflict", "locked"})  # another action holds the resource: try again
AUTH = frozenset({"unauthorized", "forbidden", "token_readonly"})
ZONE_MODE = "incorrect_zone_mode"
EXISTS = "uniqueness_error"  # creating an RRSet that exists


def rrset_name(name: str, zone: str) -> str:
    """`name` (normalized, in `zone`) relative to the zone as Hetzner spells it: `@` at the apex."""
    return APEX if name == zone else name[: -len(zone) - 1]


def zone_mode(mode: str) -> str:
    """Why a zone in `mode` cannot be written, and what to do."""
    return (
        f"the zone is in {mode} mode: only a primary zone takes RRSet changes through the "
        "API; switch it to primary, or manage its records on its primary server (type: rfc2136)"
    )


def to_api(rtype: RecordType, values: tuple[str, ...]) -> list[str]:
    """Record values as the API stores them: a CNAME target absolute, with its final dot (a
    value without one would be relative to the zone, as in a zone file)."""
    return [f"{v}." if rtype is RecordType.CNAME else v for v in values]


def from_api(rtype: RecordType, values: list[str]) -> tuple[str, ...]:
    """Canonical values of an RRSet's records; ValueError when one does not fit the type."""
    return canonical_values(rtype, values)


def classify(exc: BaseException) -> tuple[str, bool, str]:
    """(kind, retryable, detail) of an SDK or transport error.

    429 and 5xx (and their error codes) are retried by our policy, as are `conflict`/`locked`
    (the RRSet is busy with another action) and transport errors; everything else fails at
    once. `incorrect_zone_mode` is `config`: the zone is secondary, no write will ever pass."""
    if isinstance(exc, APIException):
        code = exc.code
        detail = f"{exc.message} ({code})"
        if isinstance(code, int):
            if code == 429:
                return "throttling", True, detail
            if code >= 500:
                return "server", True, detail
            if code in (401, 403):
                return "auth", False, detail
            if code == 404:
                return "not_found", False, detail
            return "invalid", False, detail
        if code in THROTTLED:
            return "throttling", True, detail
        if code in SERVER:
            return "server", True, detail
        if code in BUSY:
            return "conflict", True, detail
        if code in AUTH:
            return "auth", False, detail
        if code == "not_found":
            return "not_found", False, detail
        if code == ZONE_MODE:
            return "config", False, detail
        return "invalid", False, detail
    if isinstance(exc, requests.Timeout):
        return "timeout", True, "no answer in time"
    if isinstance(exc, requests.ConnectionError):
        return "connection", True, "connection failed"
    if isinstance(exc, requests.RequestException | HCloudException):
        return "error", False, type(exc).__name__
    return "error", False, type(exc).__name__


SDK_ERRORS = (HCloudException, requests.RequestException)
