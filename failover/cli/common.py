"""What every command shares: exit codes (docs/commands.md), finding the config and the daemon,
and how answers print.

Exit codes: 0 success, 1 operation failed, 2 usage or configuration error, 3 refused by a
safety rule, 4 daemon unreachable.

Output rule: with `--json` a command prints exactly one JSON document on stdout, errors
included (`{"error": code, "message": text}`); everything meant for a person (plans, progress,
warnings) goes to stderr. Without `--json`, results go to stdout and failures to stderr.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from failover.client import AdminClient
from failover.config.loader import load_config

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
DEFAULT_SOCKET = Path("/run/failover/admin.sock")
DEFAULT_CONFIG = Path("/etc/failover/failover.yaml")
DEFAULT_HEALTHZ = "http://127.0.0.1:9180/healthz"
CONFIG_ENV = "FAILOVER_CONFIG"


class CliError(Exception):
    """A failure the command reports in one line; `body` is the API's error body, if any."""

    def __init__(self, message: str, code: int, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = body


class JsonOutput:
    """Whether this run owes stdout one JSON document, and whether it printed it already."""

    wanted = False
    printed = False


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def find_config(args: argparse.Namespace) -> Path | None:
    """-c FILE, else $FAILOVER_CONFIG, else /etc/failover/failover.yaml if it exists."""
    given = getattr(args, "config", None) or os.environ.get(CONFIG_ENV)
    if given:
        return Path(given)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def config_path(args: argparse.Namespace) -> Path:
    """Like find_config, for the commands that need a file: the error says where it looked."""
    found = find_config(args)
    if found is None:
        raise CliError(
            f"failover: no configuration file: give -c FILE or set ${CONFIG_ENV} "
            f"(the default, {DEFAULT_CONFIG}, does not exist)",
            EXIT_USAGE,
        )
    return found


def client_for(args: argparse.Namespace, timeout: float = 120.0) -> AdminClient:
    """--url (with --token-file), else --socket, $FAILOVER_SOCKET, admin.socket of the config
    (-c, $FAILOVER_CONFIG, /etc/failover/failover.yaml), else /run/failover/admin.sock.

    The config is read without its secrets: finding the socket must not need them."""
    if getattr(args, "url", None):
        token = Path(args.token_file).read_text().strip() if args.token_file else None
        return AdminClient(url=args.url, token=token, timeout=timeout, source="--url")
    if getattr(args, "socket", None):
        return AdminClient(socket=Path(args.socket), timeout=timeout, source="--socket")
    if os.environ.get("FAILOVER_SOCKET"):
        path = Path(os.environ["FAILOVER_SOCKET"])
        return AdminClient(socket=path, timeout=timeout, source="$FAILOVER_SOCKET")
    config = find_config(args)
    if config is not None:
        socket_path = load_config(config, missing_secrets=[]).admin.socket
        return AdminClient(socket=socket_path, timeout=timeout, source=f"admin.socket of {config}")
    return AdminClient(socket=DEFAULT_SOCKET, timeout=timeout, source="the default")


async def call(
    args: argparse.Namespace, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """One admin call; 409 (refused) and 502 (DNS change failed) are for the caller to judge,
    any other error becomes a CliError carrying the API's error body."""
    status, data = await client_for(args).call(method, path, body)
    if status >= 400 and status not in (409, 502):
        raise api_error(status, data)
    return status, data


def api_error(status: int, data: Any) -> CliError:
    message = data.get("message", data) if isinstance(data, dict) else data
    code = EXIT_USAGE if status < 500 else EXIT_FAILED
    return CliError(f"failover: {message}", code, data if isinstance(data, dict) else None)


def print_json(data: Any) -> None:
    JsonOutput.printed = True
    print(json.dumps(data, indent=2, sort_keys=True))


def say(args: argparse.Namespace, text: str) -> None:
    """A line for the person: stdout, or stderr when stdout carries the JSON document."""
    print(text, file=sys.stderr if getattr(args, "json", False) else sys.stdout)


def warn(text: str) -> None:
    print(text, file=sys.stderr)
