"""A DNS-over-TCP proxy in front of BIND whose answers to queries a test can hold back.

Why: a read of the published records that was *sent* before a change and *answered* after
something else happened is what a slow provider API gives; with BIND on loopback a read takes a
millisecond, so the test makes one slow on purpose. `hold()` lets the next queries go to BIND at
once (their answers say what BIND served at that moment) and keeps the answers until
`release()`. UPDATEs always pass straight through.
"""

from __future__ import annotations

import asyncio
import struct
import threading

import dns.opcode

from tests.support import free_port, wait_until
from tests.support.net import close_leftover_transports


class HoldingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.port = free_port()
        self.held = 0  # answers kept back since the last hold()
        self._gate: asyncio.Event | None = None
        self._holding = dns.opcode.QUERY
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> HoldingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._gate = asyncio.Event()
        self._gate.set()
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    def close(self) -> None:
        async def stop() -> None:
            assert self._gate is not None
            self._gate.set()
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        asyncio.run_coroutine_threadsafe(close_leftover_transports(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def hold(self, *, updates: bool = False) -> None:
        """Keep back the answers to the queries (or the UPDATEs) from now on, until
        `release()`."""

        def close_gate() -> None:
            assert self._gate is not None
            self.held = 0
            self._holding = dns.opcode.UPDATE if updates else dns.opcode.QUERY
            self._gate.clear()

        self._loop.call_soon_threadsafe(close_gate)

    def wait_held(self, count: int = 1) -> None:
        wait_until(lambda: self.held >= count, 20, f"{count} answer(s) held at the proxy")

    def release(self) -> None:
        def open_gate() -> None:
            assert self._gate is not None
            self._gate.set()

        self._loop.call_soon_threadsafe(open_gate)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                wire = await reader.readexactly(size)
                reply = await self._forward(wire)
                assert self._gate is not None
                if _opcode(wire) == self._holding and not self._gate.is_set():
                    self.held += 1
                    await self._gate.wait()
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _forward(self, wire: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        try:
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(size)
        finally:
            writer.close()


def _opcode(wire: bytes) -> int:
    """From the header, without parsing (the message is TSIG-signed with a key we lack)."""
    return (struct.unpack("!H", wire[2:4])[0] >> 11) & 0xF
