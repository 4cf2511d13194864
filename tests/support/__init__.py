"""Real peers for integration tests, fault tests and benchmarks: HTTP targets, a daemon process,
the CLI. Everything binds to 127.0.0.0/8.

- `net`: free ports, bounded waits, HTTP targets, DNS reads.
- `config`: the one configuration shape of the daemon tests (`config_text`) and its `Peer`.
- `daemon`: `failover run` in a subprocess (`DaemonProcess`), the CLI, metric samples.
- `lab`: all of them together (`Lab`), driven as an operator would.
"""

from tests.support.config import (
    HEALTH,
    POLICY,
    PROBE,
    Peer,
    admin_listen,
    builtin_peer,
    config_text,
    daemon_config,
)
from tests.support.daemon import REPO, DaemonProcess, cli, cli_json, metric_value
from tests.support.lab import Lab
from tests.support.net import TargetServer, dns_a, free_port, wait_until

__all__ = [
    "HEALTH",
    "POLICY",
    "PROBE",
    "REPO",
    "DaemonProcess",
    "Lab",
    "Peer",
    "TargetServer",
    "admin_listen",
    "builtin_peer",
    "cli",
    "cli_json",
    "config_text",
    "daemon_config",
    "dns_a",
    "free_port",
    "metric_value",
    "wait_until",
]
