"""Route 53 API details kept pure: error classification, change batches within the request
limits, and names and zones as the API spells them. No I/O, so each rule is tested alone."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import botocore.exceptions as boto_errors
from botocore.parsers import ResponseParserError

from failover.model import Change, RecordType
from failover.model import normalize_name as _norm
from failover.providers.base import ProviderError, check_values
from failover.providers.retry import kind_of_status

MAX_BATCH_RECORDS = 1000  # ResourceRecord elements per request; an UPSERT counts twice
MAX_BATCH_CHARS = 32000  # characters of all Values per request; an UPSERT counts twice

# error code -> (kind, retryable); the HTTP status decides when the code is unknown
_CODE_TABLE = (
    ("throttling", True, "Throttling ThrottlingException TooManyRequestsException"),
    ("throttling", True, "RequestLimitExceeded"),
    ("prior_request_not_complete", True, "PriorRequestNotComplete"),
    ("server", True, "ServiceUnavailable InternalFailure InternalError RequestTimeout"),
    ("invalid", False, "InvalidChangeBatch InvalidInput InvalidArgument InvalidDomainName"),
    ("not_found", False, "NoSuchHostedZone NoSuchChange HostedZoneNotFound"),
    ("auth", False, "AccessDenied AccessDeniedException InvalidClientTokenId ExpiredToken"),
    ("auth", False, "SignatureDoesNotMatch UnrecognizedClientException IncompleteSignature"),
    ("auth", False, "MissingAuthenticationToken ExpiredTokenException InvalidSignatureException"),
)
CODES: dict[str, tuple[str, bool]] = {
    code: (kind, retryable) for kind, retryable, codes in _CODE_TABLE for code in codes.split()
}

# botocore's own exceptions (no answer from AWS) -> (kind, retryable); first match wins
BOTO_ERRORS: tuple[tuple[type[Exception], str, bool], ...] = (
    (boto_errors.ConnectTimeoutError, "timeout", True),
    (boto_errors.ReadTimeoutError, "timeout", True),
    (boto_errors.ConnectionError, "connection", True),
    (boto_errors.HTTPClientError, "connection", True),
    (ResponseParserError, "server", True),  # an HTML page from a proxy or load balancer
    (boto_errors.NoCredentialsError, "auth", False),
    (boto_errors.PartialCredentialsError, "auth", False),
    (boto_errors.CredentialRetrievalError, "auth", False),
    (boto_errors.TokenRetrievalError, "auth", False),
    (boto_errors.SSOError, "auth", False),
    (boto_errors.ProfileNotFound, "config", False),
    (boto_errors.NoRegionError, "config", False),
    (boto_errors.ParamValidationError, "invalid", False),
)
SDK_ERRORS = (boto_errors.ClientError, boto_errors.BotoCoreError, ResponseParserError)

_ESCAPE = re.compile(r"\\(\d{3})")


def classify(exc: Exception) -> tuple[str, bool, str]:
    """(kind, retryable, one-line detail) of an SDK exception."""
    if isinstance(exc, boto_errors.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "")) or "Unknown"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        kind, retryable = CODES.get(code) or kind_of_status(status)
        return kind, retryable, f"{code}: {error.get('Message') or f'HTTP {status}'}"
    kind, retryable = next(
        ((k, r) for cls, k, r in BOTO_ERRORS if isinstance(exc, cls)), ("error", False)
    )
    return kind, retryable, str(exc) or type(exc).__name__


def decode_name(name: str) -> str:
    """Our spelling of a name as Route 53 returns it (octal escapes such as `\\052` for `*`)."""
    return _norm(_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), name))


def snake(operation: str) -> str:
    """boto3 method name of an API operation (GetChange -> get_change)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


@dataclass(frozen=True)
class HostedZone:
    id: str
    name: str
    private: bool
    record_count: int | None  # at lookup time: a hint for per-key vs whole-zone reads


def parse_zone(raw: dict[str, Any]) -> HostedZone:
    count = raw.get("ResourceRecordSetCount")
    return HostedZone(
        id=str(raw["Id"]).rsplit("/", 1)[-1],
        name=decode_name(raw["Name"]),
        private=bool(raw.get("Config", {}).get("PrivateZone", False)),
        record_count=int(count) if count is not None else None,
    )


def upsert(change: Change, zone: str) -> dict[str, Any]:
    """The UPSERT replacing one record set, checked first so a bad value never costs a call."""
    key, name = change.key, _norm(change.key.name)
    values = check_values(change, zone)
    dot = "." if key.type is RecordType.CNAME else ""
    return {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": name + ".",
            "Type": key.type.value,
            "TTL": change.ttl,
            "ResourceRecords": [{"Value": v + dot} for v in values],
        },
    }


def _cost(values: Sequence[str]) -> tuple[int, int]:
    """What one UPSERT of these values costs against the request limits (it counts twice)."""
    return 2 * len(values), 2 * sum(map(len, values))


def _request_starts(costs: Iterable[tuple[int, int]]) -> Iterator[int]:
    """Where each request after the first begins: the greedy rule both `batches` and
    `first_request` follow (a request holds items until the next would pass a limit)."""
    records = chars = 0
    for index, (cost_records, cost_chars) in enumerate(costs):
        if index and (
            records + cost_records > MAX_BATCH_RECORDS or chars + cost_chars > MAX_BATCH_CHARS
        ):
            yield index
            records = chars = 0
        records, chars = records + cost_records, chars + cost_chars


def first_request(changes: Sequence[Change]) -> int:
    """How many of the leading `changes` one request holds under the limits (at least one),
    on the values as they will be sent."""
    costs = (
        _cost([v + ("." if c.key.type is RecordType.CNAME else "") for v in c.after])
        for c in changes
    )
    return next(_request_starts(costs), len(changes))


def batches(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """As few requests as the limits allow: greedy split, an UPSERT counting twice in both."""
    costs = [_cost([r["Value"] for r in i["ResourceRecordSet"]["ResourceRecords"]]) for i in items]
    for item, (cost_records, cost_chars) in zip(items, costs, strict=True):
        if cost_records > MAX_BATCH_RECORDS or cost_chars > MAX_BATCH_CHARS:
            name = item["ResourceRecordSet"]["Name"]
            raise ProviderError(f"{name}: too many values for one Route 53 request", kind="invalid")
    bounds = [0, *_request_starts(costs), len(items)]
    return [items[a:b] for a, b in itertools.pairwise(bounds) if b > a]
