"""A small etcd v3 client over the JSON gateway: aiohttp only, no gRPC, no new dependency.

What etcd's gateway does, and this client absorbs: keys and values travel as base64, 64-bit
integers come back as strings, a default value (0, false, PUT) is simply omitted (so a failed
transaction has no `succeeded`), an error is `{"error", "message", "code"}` with an HTTP status
mapped from the gRPC code.

Every endpoint is used: a request that cannot connect, times out or gets a 5xx is retried on the
next one, each with the per-request timeout, because with a single endpoint the loss of that
member left the client without a cluster although two of three members were up (measured). A 4xx
is etcd's answer and is not retried elsewhere, except an expired auth token, which is renewed
once (`/v3/auth/authenticate`). The password is sent only to `/v3/auth/authenticate` and never
appears in an error or a log line; nor does the token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from failover.config.types import EtcdTlsConfig, Secret
from failover.units import format_duration

log = logging.getLogger(__name__)

__all__ = [
    "EtcdClient",
    "EtcdError",
    "EtcdUnavailable",
    "KeyValue",
    "b64",
    "unb64",
]

_INVALID_TOKEN = 16  # gRPC UNAUTHENTICATED: the token expired or the member forgot it
_MISSING_TOKEN = "user name is empty"  # what etcd says to a request without a token


class EtcdError(Exception):
    """etcd answered with an error (a refusal, not an outage): not retried on another member."""

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class EtcdUnavailable(EtcdError):
    """No endpoint gave an answer: every one refused the connection, timed out or failed."""


class _EndpointFailed(Exception):
    """One endpoint failed (connection, timeout, 5xx): try the next one."""


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int = 0

    @classmethod
    def from_json(cls, kv: dict[str, Any]) -> KeyValue:
        return cls(
            key=unb64(kv.get("key", "")).decode("utf-8", "replace"),
            value=unb64(kv.get("value", "")),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
            lease=int(kv.get("lease", 0)),
        )


def b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def _range_end_b64(prefix: str) -> str:
    raw = prefix.encode()
    return b64(raw[:-1] + bytes([raw[-1] + 1]))


def ssl_context(tls: EtcdTlsConfig | None) -> ssl.SSLContext | None:
    """The context for https endpoints; None: aiohttp's default (the system trust store)."""
    if tls is None:
        return None
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None:
        key = str(tls.key_file) if tls.key_file is not None else None
        context.load_cert_chain(str(tls.cert_file), key)
    return context


class EtcdClient:
    """One etcd cluster. Create it, `await open()` on the loop that will use it, `aclose()`."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 2.0,
        tls: EtcdTlsConfig | None = None,
        username: str | None = None,
        password: Secret | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("etcd needs at least one endpoint")
        self.endpoints = tuple(e.rstrip("/") for e in endpoints)
        self.timeout = timeout
        self._tls = tls
        self._username = username
        self._password = password
        self._current = 0
        self.rotations = 0  # how often a failing endpoint was left (the watcher follows it)
        self._token: str | None = None
        self._auth_lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint requests go to first (the last one that answered)."""
        return self.endpoints[self._current]

    async def open(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=ssl_context(self._tls) or True)
            self._session = aiohttp.ClientSession(connector=connector)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _rotate(self, failed: int) -> None:
        if self._current == failed:
            self._current = (failed + 1) % len(self.endpoints)
            self.rotations += 1

    # --- requests ---------------------------------------------------------------------------------

    async def call(
        self, path: str, body: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """POST `body` to `/v3/<path>` on the first endpoint that answers; its JSON answer.

        Raises EtcdUnavailable when none answered, EtcdError when etcd refused."""
        problems: list[str] = []
        for _ in range(len(self.endpoints)):
            index = self._current
            try:
                return await self._call_one(index, path, body, timeout or self.timeout)
            except _EndpointFailed as exc:
                problems.append(f"{self.endpoints[index]}: {exc}")
                self._rotate(index)
        raise EtcdUnavailable("no etcd endpoint answered (" + "; ".join(problems) + ")")

    async def _call_one(
        self, index: int, path: str, body: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        for attempt in (1, 2):
            if self._password is not None and self._token is None:
                await self._authenticate(index, timeout)
            token = self._token
            try:
                return await self._post(index, path, body, timeout, token)
            except EtcdError as exc:
                stale = exc.code == _INVALID_TOKEN or _MISSING_TOKEN in str(exc)
                if attempt == 2 or self._password is None or not stale:
                    raise
                log.info("etcd: the auth token expired; authenticating again")
                if self._token == token:
                    self._token = None
        raise AssertionError("unreachable")

    async def _authenticate(self, index: int, timeout: float) -> None:
        async with self._auth_lock:
            if self._token is not None:
                return
            assert self._password is not None
            body = {"name": self._username or "", "password": self._password.reveal()}
            try:
                answer = await self._post(index, "auth/authenticate", body, timeout, None)
            except EtcdError as exc:
                raise EtcdError(
                    f"etcd refused user {self._username!r}: {exc}; check coordination.etcd."
                    "username and password",
                    code=exc.code,
                    status=exc.status,
                ) from None
            token = answer.get("token")
            if not isinstance(token, str) or not token:
                raise EtcdError("etcd answered the authentication without a token")
            self._token = token

    async def _post(
        self, index: int, path: str, body: dict[str, Any], timeout: float, token: str | None
    ) -> dict[str, Any]:
        if self._session is None:
            raise EtcdUnavailable("the etcd client is closed")
        url = f"{self.endpoints[index]}/v3/{path}"
        headers = {"Authorization": token} if token else {}
        try:
            async with self._session.post(
                url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            raise _EndpointFailed(f"no answer within {format_duration(timeout)}") from None
        except aiohttp.ClientError as exc:
            raise _EndpointFailed(_describe(exc)) from None
        data = _json(raw)
        if status >= 500:
            raise _EndpointFailed(f"HTTP {status} {_message(data)}".rstrip())
        if status >= 400 or "error" in data:
            code = data.get("code")
            raise EtcdError(
                f"etcd refused /v3/{path}: {_message(data) or f'HTTP {status}'}",
                code=int(code) if isinstance(code, int | str) and str(code).isdigit() else None,
                status=status,
            )
        return data

    # --- operations -------------------------------------------------------------------------------

    async def lease_grant(self, ttl: int) -> tuple[int, int]:
        """A new lease: (id, the TTL etcd granted, which may exceed the one asked)."""
        answer = await self.call("lease/grant", {"TTL": ttl})
        if answer.get("error"):
            raise EtcdError(f"etcd refused a lease: {answer['error']}")
        return int(answer["ID"]), int(answer.get("TTL", 0))

    async def lease_keepalive(self, lease: int) -> int:
        """Renew a lease; its TTL, or 0 when etcd no longer knows it (it expired or was revoked)."""
        answer = await self.call("lease/keepalive", {"ID": str(lease)})
        result = answer.get("result", {})
        return int(result.get("TTL", 0))

    async def lease_revoke(self, lease: int, *, timeout: float | None = None) -> None:
        try:
            await self.call("lease/revoke", {"ID": str(lease)}, timeout=timeout)
        except EtcdError as exc:
            if exc.code != 5:  # NOT_FOUND: already gone, which is what was wanted
                raise

    async def range(self, key: str, *, prefix: bool = False) -> tuple[list[KeyValue], int]:
        """The keys (one, or all under `prefix`) and the store's revision at the read."""
        body: dict[str, Any] = {"key": b64(key)}
        if prefix:
            body["range_end"] = _range_end_b64(key)
        answer = await self.call("kv/range", body)
        revision = int(answer.get("header", {}).get("revision", 0))
        return [KeyValue.from_json(kv) for kv in answer.get("kvs", [])], revision

    async def put(self, key: str, value: bytes | str, *, lease: int = 0) -> int:
        """The revision of the write."""
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        answer = await self.call("kv/put", body)
        return int(answer.get("header", {}).get("revision", 0))

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        """How many keys were deleted."""
        body: dict[str, Any] = {"key": b64(key)}
        if prefix:
            body["range_end"] = _range_end_b64(key)
        answer = await self.call("kv/deleterange", body)
        return int(answer.get("deleted", 0))

    async def txn(
        self,
        compare: list[dict[str, Any]],
        success: list[dict[str, Any]],
        failure: list[dict[str, Any]] | None = None,
    ) -> tuple[bool, list[dict[str, Any]]]:
        """(whether every comparison held, the responses of the branch that ran)."""
        body = {"compare": compare, "success": success, "failure": failure or []}
        answer = await self.call("kv/txn", body)
        return bool(answer.get("succeeded", False)), list(answer.get("responses", []))

    async def watch(self, key: str, *, prefix: bool = False) -> AsyncIterator[list[dict[str, Any]]]:
        """The event batches of a watch from now on (the first one, empty, says it is set up),
        on the current endpoint, until the stream breaks: then the client moves to the next
        endpoint and this raises EtcdUnavailable (the caller watches again)."""
        index = self._current
        url = f"{self.endpoints[index]}/v3/watch"
        try:
            async for events in self._watch_stream(index, url, key, prefix):
                yield events
        except EtcdError:
            self._rotate(index)
            raise
        self._rotate(index)
        raise EtcdUnavailable(f"{url}: the watch stream ended")

    async def _watch_stream(
        self, index: int, url: str, key: str, prefix: bool
    ) -> AsyncIterator[list[dict[str, Any]]]:
        if self._session is None:
            raise EtcdUnavailable("the etcd client is closed")
        create: dict[str, Any] = {"key": b64(key)}
        if prefix:
            create["range_end"] = _range_end_b64(key)
        # no read timeout: an idle watch is silent; the caller's periodic reads catch a dead one
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)
        try:
            if self._password is not None and self._token is None:
                await self._authenticate(index, self.timeout)
            headers = {"Authorization": self._token} if self._token else {}
            async with self._session.post(
                url, json={"create_request": create}, headers=headers, timeout=timeout
            ) as resp:
                if resp.status >= 400:
                    data = _json(await resp.read())
                    if resp.status == 401:
                        self._token = None
                    raise EtcdUnavailable(f"{url}: HTTP {resp.status} {_message(data)}".rstrip())
                buffer = b""
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield self._watch_events(url, line)
        except _EndpointFailed as exc:
            raise EtcdUnavailable(f"{url}: {exc}") from None
        except TimeoutError:
            raise EtcdUnavailable(f"{url}: no answer within {self.timeout}s") from None
        except aiohttp.ClientError as exc:
            raise EtcdUnavailable(f"{url}: {_describe(exc)}") from None

    def _watch_events(self, url: str, line: bytes) -> list[dict[str, Any]]:
        data = _json(line)
        if "error" in data:
            if data.get("code") == _INVALID_TOKEN:
                self._token = None
            raise EtcdUnavailable(f"{url}: {_message(data)}")
        result = data.get("result", {})
        if result.get("canceled"):
            raise EtcdUnavailable(f"{url}: watch canceled: {result.get('cancel_reason', '')}")
        return list(result.get("events", []))


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return {"error": "not JSON", "message": raw[:200].decode("utf-8", "replace")}
    return data if isinstance(data, dict) else {"error": "not a JSON object"}


def _message(data: dict[str, Any]) -> str:
    return str(data.get("message") or data.get("error") or "")


def _describe(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused"
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the member closed the connection"
    return f"{type(exc).__name__}: {exc}"
