"""Reading many record sets from one server: queries pipelined on one TCP connection.

Why: at start-up the daemon reads every record it manages. One connection and one coroutine
per key cost seconds for a thousand keys (1,000 keys took ~9 s against BIND on loopback).
RFC 7766 lets a client write many queries ahead on one connection; the server may answer in
any order, so answers are matched by message id (and question), and each is checked, TSIG
included, exactly as a lone query's answer would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence

import dns.exception
import dns.message

from failover.model import RecordKey, RecordSet, canonical_values, normalize_name
from failover.providers.base import ProviderError
from failover.slicing import Slicer

PIPELINE = 256  # queries written ahead on one connection

Query = Callable[[RecordKey], dns.message.Message]
Judge = Callable[[RecordKey, str, dns.message.Message], RecordSet | None]


async def read_pipelined(
    address: str,
    port: int,
    timeout: float,
    keys: Sequence[RecordKey],
    query_for: Query,
    judge: Judge,
    server: str,
) -> dict[RecordKey, RecordSet | None]:
    """The keys answered. A connection that drops is reopened while it makes progress; what
    is left unanswered (TCP refused, a bad or badly signed answer) is for the caller to ask
    one query at a time, which reports why. A server that stops answering is a timeout."""
    found: dict[RecordKey, RecordSet | None] = {}
    todo = list(keys)
    while todo:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(address, port)
        except TimeoutError:  # blackholed: asking again key by key would only wait longer
            raise _timeout(server, timeout, todo[0]) from None
        except OSError:  # refused: the caller's lone queries fall back to UDP, or say why
            return found
        progress = False
        try:
            while todo:
                chunk, todo = todo[:PIPELINE], todo[PIPELINE:]
                try:
                    async with asyncio.timeout(timeout):
                        answers = await _pipeline(reader, writer, chunk, query_for, judge)
                except TimeoutError:
                    raise _timeout(server, timeout, chunk[0]) from None
                except (OSError, EOFError):  # IncompleteReadError included
                    todo = chunk + todo
                    break
                found.update(answers)
                progress = progress or bool(answers)
                missing = [k for k in chunk if k not in answers]
                if missing:
                    todo = missing + todo
                    break
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if not progress:
            return found
    return found


def record_set(key: RecordKey, ttl: int, texts: list[str], server: str) -> RecordSet:
    """What the server holds for `key`, from its values' texts (a query's answer or a
    transfer's records): the one place a read turns DNS data into a RecordSet."""
    try:
        values = canonical_values(key.type, texts)
    except ValueError as exc:
        raise ProviderError(f"{key}: unexpected data from {server}: {exc}") from None
    return RecordSet(normalize_name(key.name), key.type, ttl, values)


def _timeout(server: str, timeout: float, key: RecordKey) -> ProviderError:
    return ProviderError(
        f"no answer from {server} within {timeout:g}s (zone {normalize_name(key.zone)})",
        kind="timeout",
        retryable=True,
    )


async def _pipeline(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    keys: list[RecordKey],
    query_for: Query,
    judge: Judge,
) -> dict[RecordKey, RecordSet | None]:
    base = random.randrange(0x10000)
    queries: dict[int, tuple[RecordKey, dns.message.Message]] = {}
    frames = []
    slicer = Slicer()  # thousands of signed queries and answers: let the loop turn meanwhile
    for n, key in enumerate(keys):
        query = query_for(key)
        query.id = (base + n) & 0xFFFF
        wire = query.to_wire()  # signs (TSIG) and records the request MAC
        queries[query.id] = (key, query)
        frames.append(len(wire).to_bytes(2, "big") + wire)
        await slicer.pause()
    writer.write(b"".join(frames))
    await writer.drain()
    answers: dict[RecordKey, RecordSet | None] = {}
    while queries:
        size = int.from_bytes(await reader.readexactly(2), "big")
        wire = await reader.readexactly(size)
        match = queries.pop(int.from_bytes(wire[:2], "big"), None) if size >= 2 else None
        if match is None:
            continue  # not one of ours, or answered twice: ignored
        key, query = match
        try:
            response = dns.message.from_wire(wire, keyring=query.keyring, request_mac=query.mac)
        except dns.exception.DNSException:
            return answers
        if not query.is_response(response):
            return answers
        answers[key] = judge(key, normalize_name(key.zone), response)
        await slicer.pause()
    return answers
