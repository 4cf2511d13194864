"""Any RFC 2136 server (BIND, Knot, PowerDNS) through TSIG-signed dynamic UPDATEs.

`provider` talks to the server; `wire` builds the UPDATE messages.
"""

from failover.providers.rfc2136.provider import Rfc2136Provider, create
from failover.providers.rfc2136.wire import (
    TCP_LIMIT,
    UDP_LIMIT,
    UDP_MAX,
    build_update,
    split_changes,
)

__all__ = [
    "TCP_LIMIT",
    "UDP_LIMIT",
    "UDP_MAX",
    "Rfc2136Provider",
    "build_update",
    "create",
    "split_changes",
]
