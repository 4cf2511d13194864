"""Route 53's pure rules: how SDK exceptions map to error kinds and retryability."""

from __future__ import annotations

import botocore.exceptions as boto_errors
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

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
