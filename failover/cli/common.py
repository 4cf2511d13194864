"""What every command shares: exit codes (SPEC §2), the admin client, and how answers print.

Exit codes: 0 success, 1 operation failed, 2 usage or configuration error, 3 refused by a
safety rule, 4 daemon unreachable.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
from pathlib import Path
from typing import Any

from failover.client import AdminClient
from failover.config.loader import load_config

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
DEFAULT_SOCKET = Path("/run/failover/admin.sock")
DEFAULT_HEALTHZ = "http://127.0.0.1:9180/healthz"


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def client_for(args: argparse.Namespace) -> AdminClient:
    """--url (with --token-file), else --socket, $FAILOVER_SOCKET, admin.socket of -c, default."""
    if args.url:
        token = Path(args.token_file).read_text().strip() if args.token_file else None
        return AdminClient(url=args.url, token=token)
    if args.socket:
        return AdminClient(socket=Path(args.socket))
    if os.environ.get("FAILOVER_SOCKET"):
        return AdminClient(socket=Path(os.environ["FAILOVER_SOCKET"]))
    if args.config:
        return AdminClient(socket=load_config(args.config).admin.socket)
    return AdminClient(socket=DEFAULT_SOCKET)


async def call(
    args: argparse.Namespace, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    status, data = await client_for(args).call(method, path, body)
    if status >= 400 and status not in (409, 502):
        message = data.get("message", data) if isinstance(data, dict) else data
        code = EXIT_USAGE if status < 500 else EXIT_FAILED
        raise CliError(f"failover: {message}", code)
    return status, data


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))
