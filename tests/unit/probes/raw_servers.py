"""Scripted TCP (optionally TLS) servers on 127.0.0.1:0 for the http and tcp probe tests.

`RawServer(handler)` runs `handler(reader, writer)` per connection; on exit it cancels the
handlers still running (a silent or stalling server never returns by itself) and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import trustme

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self._handler = handler
        self._ssl = ssl_context
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self._handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._run, "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    """Accept, read what comes, never answer (no HTTP headers, no TLS ServerHello)."""
    while await reader.read(4096):
        pass
    await asyncio.Event().wait()


@dataclass
class TlsFiles:
    """A private CA and PEM files for it: trust (`ca`), a client certificate and its key."""

    authority: trustme.CA
    ca: Path
    client_cert: Path
    client_key: Path
    client_bundle: Path  # key and certificate in one file
    extra: dict[str, Path] = field(default_factory=dict)

    def server_context(
        self,
        name: str = "shop.test",
        *,
        require_client_cert: bool = False,
        max_version: ssl.TLSVersion | None = None,
    ) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.authority.issue_cert(name).configure_cert(context)
        if require_client_cert:
            self.authority.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        if max_version is not None:
            context.maximum_version = max_version
        return context


def tls_files(directory: Path) -> TlsFiles:
    authority = trustme.CA()
    client = authority.issue_cert("client.test")
    files = TlsFiles(
        authority,
        directory / "ca.pem",
        directory / "client.crt",
        directory / "client.key",
        directory / "client.pem",
    )
    authority.cert_pem.write_to_path(str(files.ca))
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    client.private_key_and_cert_chain_pem.write_to_path(str(files.client_bundle))
    return files
