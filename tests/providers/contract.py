"""The provider contract, run by every provider test module: it lives in the package as a
test kit third-party providers run too (`failover.testkit.providers`)."""

from failover.testkit.providers import (
    CHECKS,
    SYNC_TIMEOUT,
    Check,
    apply_and_sync,
    check_create_and_read_back,
    check_idempotent,
    check_interface,
    check_read_absent,
    check_read_mixed,
    check_refuses_invalid_values,
    check_replace,
    check_ttl_only,
    key,
    run_contract,
)

__all__ = [
    "CHECKS",
    "SYNC_TIMEOUT",
    "Check",
    "apply_and_sync",
    "check_create_and_read_back",
    "check_idempotent",
    "check_interface",
    "check_read_absent",
    "check_read_mixed",
    "check_refuses_invalid_values",
    "check_replace",
    "check_ttl_only",
    "key",
    "run_contract",
]
