"""Client of the admin API, used by the CLI: unix socket by default, TCP with a token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp


class DaemonUnreachable(Exception):
    """No daemon answers at the given address (CLI exit code 4)."""


class AdminClient:
    def __init__(
        self,
        *,
        socket: Path | None = None,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        if (socket is None) == (url is None):
            raise ValueError("give exactly one of socket or url")
        self.socket = socket
        self.base = (url or "http://failover").rstrip("/")
        self.token = token
        self.timeout = timeout

    @property
    def where(self) -> str:
        return f"unix socket {self.socket}" if self.socket else self.base

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
        except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonUnreachable(
                f"cannot reach the failover daemon at {self.where}: {exc}"
            ) from exc
        except TimeoutError as exc:
            raise DaemonUnreachable(
                f"the failover daemon at {self.where} did not answer within {self.timeout:g}s"
            ) from exc
