"""Route 53's pure rules: how SDK exceptions map to error kinds and retryability."""

from __future__ import annotations

import botocore.exceptions as boto_errors
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from failover.model import Change, RecordKey, RecordType
from failover.providers.route53 import wire


@pytest.mark.parametrize(
    ("exc", "kind", "retryable"),
    [
        (boto_errors.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), "timeout", True),
        (boto_errors.ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), "timeout", True),
        (
            boto_errors.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
            "connection",
            True,
        ),
        (boto_errors.ConnectionClosedError(endpoint_url="http://127.0.0.1:1"), "connection", True),
        (ResponseParserError("<html>502 Bad Gateway</html>"), "server", True),
        (boto_errors.NoCredentialsError(), "auth", False),
        (boto_errors.ProfileNotFound(profile="x"), "config", False),
        (
            ClientError(
                {"Error": {"Code": "Weird"}, "ResponseMetadata": {"HTTPStatusCode": 502}},
                "GetChange",
            ),
            "server",
            True,
        ),
        (
            ClientError(
                {"Error": {"Code": "Weird"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                "GetChange",
            ),
            "client",
            False,
        ),
        (
            ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetChange"),
            "auth",
            False,
        ),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else None,
)
def test_sdk_errors_are_classified_truthfully(exc: Exception, kind: str, retryable: bool) -> None:
    got_kind, got_retryable, detail = wire.classify(exc)
    assert (got_kind, got_retryable) == (kind, retryable)
    assert detail and "\n" not in detail


def _changes(rtype: RecordType, values: tuple[str, ...], count: int) -> list[Change]:
    return [
        Change(RecordKey("r53", "example.test", f"s{i}.example.test", rtype), 60, None, values)
        for i in range(count)
    ]


@pytest.mark.parametrize(
    ("rtype", "values", "held"),
    [
        (RecordType.A, ("192.0.2.1",), 500),  # 1,000 records, an UPSERT counting twice
        (RecordType.A, ("192.0.2.1", "192.0.2.2", "192.0.2.3"), 166),
        # 38 characters, counted twice: 32,000 characters hold 421 of them
        (RecordType.AAAA, ("2001:db8:1234:5678:9abc:def0:1234:5678",), 421),
        # a load balancer's name (41 characters and the dot Route 53 is sent): 380
        (RecordType.CNAME, ("shop-lb-1234567890.eu-west-1.elb.test.net",), 380),
    ],
)
def test_one_request_holds_what_the_batches_put_in_the_first(
    rtype: RecordType, values: tuple[str, ...], held: int
) -> None:
    changes = _changes(rtype, values, 1000)
    assert wire.first_request(changes) == held
    items = [wire.upsert(c, "example.test") for c in changes]
    assert len(wire.batches(items)[0]) == held  # the same rule as the split `apply` makes
    assert wire.first_request(changes[:10]) == 10
    assert wire.first_request([]) == 0
