"""Client of the admin API, used by the CLI: unix socket by default, TCP with a token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp


class DaemonUnreachable(Exception):
    """No daemon answers at the given address (CLI exit code 4). The message says where the
    client looked, why that failed in plain words, and how to point it elsewhere."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def _why(exc: BaseException) -> str:
    """The operating system's reason, without the HTTP library's wording (`ssl:default`…)."""
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError):
        exc = os_error
    if isinstance(exc, FileNotFoundError):
        return "no such socket"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens there"
    if isinstance(exc, PermissionError):
        return "permission denied (is your user in the daemon's group?)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the daemon closed the connection"
    return type(exc).__name__


class AdminClient:
    def __init__(
        self,
        *,
        socket: Path | None = None,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 120.0,
        source: str = "",
    ) -> None:
        if (socket is None) == (url is None):
            raise ValueError("give exactly one of socket or url")
        self.socket = socket
        self.base = (url or "http://failover").rstrip("/")
        self.token = token
        self.timeout = timeout
        self.source = source  # how this address was chosen: "--socket", "$FAILOVER_SOCKET"…

    @property
    def where(self) -> str:
        place = f"unix socket {self.socket}" if self.socket else self.base
        return f"{place} ({self.source})" if self.source else place

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """One request; returns (HTTP status, decoded JSON). Raises DaemonUnreachable."""
        connector: aiohttp.BaseConnector
        connector = (
            aiohttp.UnixConnector(path=str(self.socket)) if self.socket else aiohttp.TCPConnector()
        )
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        hint = (
            "Is `failover run` running? Point elsewhere with --socket PATH, $FAILOVER_SOCKET, "
            "-c FILE (its admin.socket) or --url URL --token-file FILE."
        )
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.request(method, self.base + path, json=body, headers=headers) as resp,
            ):
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = {"error": "bad_response", "message": (await resp.text())[:200]}
                return resp.status, data
        except TimeoutError as exc:
            raise DaemonUnreachable(
                f"the failover daemon at {self.where} did not answer within {self.timeout:g}s",
                "It may be stuck: check its log; `failover promote … --direct -c FILE` works "
                "without it.",
            ) from exc
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise DaemonUnreachable(
                f"cannot reach the failover daemon at {self.where}: {_why(exc)}", hint
            ) from exc
