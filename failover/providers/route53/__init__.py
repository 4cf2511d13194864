"""Amazon Route 53 (`type: route53`): the provider in `provider.py`, the pure API rules
(errors, batch limits, names) in `wire.py`."""

from failover.providers.route53.provider import Route53Provider, create
from failover.providers.route53.wire import MAX_BATCH_CHARS, MAX_BATCH_RECORDS

__all__ = ["MAX_BATCH_CHARS", "MAX_BATCH_RECORDS", "Route53Provider", "create"]
