"""A local fake of the OVH API v1 DNS routes that checks what the real API checks.

Used by the ovh provider tests through the real python-ovh client, on 127.0.0.1 only:
- `GET /auth/time` answers a bare integer (with a configurable clock skew);
- application-key calls must carry X-Ovh-Application, X-Ovh-Consumer, X-Ovh-Timestamp and a
  `$1$` SHA-1 signature over `AS+CK+METHOD+full URL with query+body+timestamp`; a bad one gets
  OVH's 400 INVALID_SIGNATURE body and an X-Ovh-Queryid header, like every answer;
- OAuth2: `POST /auth/oauth2/token` (client_credentials, HTTP Basic client auth) issues Bearer
  tokens that API calls must carry instead of a signature;
- records: ids list with fieldType/subDomain filters, GET/PUT/POST/DELETE by id. Writes are
  staged: `live(zone)` (what the DNS servers would serve) changes only on
  `POST /domain/zone/{zone}/refresh`, and `/status` says `isDeployed` after `deploy_delay`;
- fault injection per method and path: an HTTP error (429, 500, a refresh 403…) or a hang.

Assumed where no documentation or SDK says: the timestamp tolerance and its error body
(QUERY_TIME_OUT), the 429 body, and that a CNAME target without a trailing dot is relative
to the zone (why ExternalDNS adds the dot).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import itertools
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

APP_KEY = "fake-application-key"
APP_SECRET = "fake-application-secret-never-logged"
CONSUMER_KEY = "fake-consumer-key"
CLIENT_ID = "fake-oauth2-client"
CLIENT_SECRET = "fake-oauth2-secret-never-logged"
TYPES = ("A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA")


def signature(secret: str, consumer: str, method: str, url: str, body: str, ts: str) -> str:
    """OVH's `$1$` request signature (python-ovh `Client.raw_call`)."""
    text = "+".join([secret, consumer, method.upper(), url, body, ts])
    return "$1$" + hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    body: dict[str, Any]
    times: int | None  # None: forever
    hang: float  # seconds to stall before answering (0: answer at once)


class OvhError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        reason = web.Response(status=status).reason
        self.status = status
        self.body: dict[str, Any] = {"message": message, "httpCode": f"{status} {reason}"}
        if code:
            self.body["errorCode"] = code


class FakeOvh:
    def __init__(
        self,
        *,
        skew: int = 0,
        tolerance: int = 180,
        deploy_delay: float = 0.0,
        token_ttl: int = 3600,
        status_route: bool = True,
        loose_filters: bool = False,
        default_ttl: int = 3600,
    ) -> None:
        self.skew = skew
        self.tolerance = tolerance
        self.deploy_delay = deploy_delay
        self.token_ttl = token_ttl
        self.status_route = status_route
        self.loose_filters = loose_filters  # "like" filters: subDomain matched as a substring
        self.default_ttl = default_ttl
        self.apps = {APP_KEY: APP_SECRET}
        self.consumers = {CONSUMER_KEY}
        self.oauth_clients = {CLIENT_ID: CLIENT_SECRET}
        self.tokens: dict[str, float] = {}  # bearer token -> expiry (time.time())
        self.staged: dict[str, dict[int, dict[str, Any]]] = {}
        self.published: dict[str, dict[int, dict[str, Any]]] = {}
        self.deployed_at: dict[str, float] = {}
        self.calls: list[tuple[str, str]] = []  # (method, path with query), in arrival order
        self.faults: list[Fault] = []
        self._ids = itertools.count(100_000_001)
        self._query_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None
        self.url = ""

    # -- test helpers ---------------------------------------------------------------------------

    def add_zone(self, zone: str) -> None:
        self.staged.setdefault(zone, {})
        self.published.setdefault(zone, {})

    def add_record(self, zone: str, sub: str, field_type: str, target: str, ttl: int = 0) -> int:
        """A record already live (as if made in the OVH manager and refreshed)."""
        self.add_zone(zone)
        record_id = next(self._ids)
        record = {"id": record_id, "zone": zone, "subDomain": sub, "fieldType": field_type}
        record.update(target=target, ttl=ttl)
        self.staged[zone][record_id] = record
        self.published[zone][record_id] = dict(record)
        return record_id

    def live(self, zone: str) -> dict[tuple[str, str], list[str]]:
        """What the zone's DNS servers serve: (subDomain, type) -> sorted absolute values."""
        return self._view(zone, self.published.get(zone, {}))

    def stored(self, zone: str) -> dict[tuple[str, str], list[str]]:
        """What the API holds (refreshed or not), in the same shape as `live`."""
        return self._view(zone, self.staged.get(zone, {}))

    def fault(
        self,
        method: str,
        path: str,
        status: int = 500,
        *,
        times: int | None = 1,
        code: str | None = None,
        message: str = "Internal server error",
        hang: float = 0.0,
    ) -> None:
        """Make the next `times` calls whose path matches the regex `path` fail or hang."""
        body = OvhError(status, message, code).body
        self.faults.append(Fault(method.upper(), re.compile(path), status, body, times, hang))

    def hang(self, method: str, path: str, seconds: float, *, times: int | None = 1) -> None:
        """Make the next `times` matching calls stall `seconds` (or until close) and then
        be answered normally."""
        self.faults.append(Fault(method.upper(), re.compile(path), 0, {}, times, seconds))

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.calls if m == method and re.search(path, p))

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1") -> str:
        self._release = asyncio.Event()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/1.0/auth/time", self._time)
        app.router.add_post("/auth/oauth2/token", self._token)
        zone = "/1.0/domain/zone/{zone}"
        app.router.add_get(zone + "/record", self._list)
        app.router.add_post(zone + "/record", self._create)
        app.router.add_get(zone + "/record/{id}", self._get)
        app.router.add_put(zone + "/record/{id}", self._update)
        app.router.add_delete(zone + "/record/{id}", self._delete)
        app.router.add_post(zone + "/refresh", self._refresh)
        app.router.add_get(zone + "/status", self._status)
        app.router.add_get(zone + "/soa", self._soa)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{host}:{port}/1.0"
        return self.url

    async def close(self) -> None:
        if self._release is not None:
            self._release.set()  # end every injected hang
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- middleware: faults, authentication, error bodies ---------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.calls.append((request.method, request.path_qs))
        query_id = f"FAKE.ws-1.{next(self._query_ids):08x}"
        try:
            await self._inject_fault(request)
            if request.path not in ("/1.0/auth/time", "/auth/oauth2/token"):
                await self._authenticate(request)
            response = await handler(request)
        except OvhError as exc:
            response = web.json_response(exc.body, status=exc.status)
        response.headers["X-Ovh-Queryid"] = query_id
        return response

    async def _inject_fault(self, request: web.Request) -> None:
        for fault in self.faults:
            if fault.method != request.method or not fault.path.search(request.path):
                continue
            if fault.times is not None:
                if fault.times <= 0:
                    continue
                fault.times -= 1
            if fault.hang and self._release is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._release.wait(), fault.hang)
            if fault.status:
                error = OvhError(fault.status, "")
                error.body = fault.body
                raise error
            return

    async def _authenticate(self, request: web.Request) -> None:
        authorization = request.headers.get("Authorization", "")
        if authorization:
            token = authorization.removeprefix("Bearer ")
            if token == authorization or self.tokens.get(token, 0) < time.time():
                raise OvhError(401, "Invalid or expired token", "INVALID_CREDENTIAL")
            return
        app_key = request.headers.get("X-Ovh-Application", "")
        if app_key not in self.apps:
            raise OvhError(403, "Invalid application key", "INVALID_KEY")
        consumer = request.headers.get("X-Ovh-Consumer", "")
        if consumer not in self.consumers:
            raise OvhError(403, "This credential does not exist", "NOT_CREDENTIAL")
        stamp = request.headers.get("X-Ovh-Timestamp", "")
        if not stamp.isdigit() or abs(int(stamp) - self._now()) > self.tolerance:
            raise OvhError(400, "Query out of time", "QUERY_TIME_OUT")
        body = await request.text()
        url = f"{request.scheme}://{request.host}{request.raw_path}"  # query as sent
        expected = signature(self.apps[app_key], consumer, request.method, url, body, stamp)
        if request.headers.get("X-Ovh-Signature") != expected:
            raise OvhError(400, "Invalid signature", "INVALID_SIGNATURE")

    def _now(self) -> int:
        return int(time.time()) + self.skew

    # -- handlers -------------------------------------------------------------------------------

    async def _time(self, request: web.Request) -> web.Response:
        return web.Response(text=str(self._now()), content_type="application/json")

    async def _token(self, request: web.Request) -> web.Response:
        """client_credentials with HTTP Basic client authentication (RFC 6749 §2.3.1, §4.4)."""
        form = await request.post()
        try:
            scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
            client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            scheme = client_id = client_secret = ""
        if scheme != "Basic" or self.oauth_clients.get(client_id) != client_secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + self.token_ttl
        body = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_ttl,
            "scope": str(form.get("scope", "all")),
        }
        return web.json_response(body)

    def _zone(self, request: web.Request) -> tuple[str, dict[int, dict[str, Any]]]:
        zone = request.match_info["zone"]
        if zone not in self.staged:
            raise OvhError(404, "This service does not exist")
        return zone, self.staged[zone]

    def _record(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        zone, records = self._zone(request)
        raw = request.match_info["id"]
        record = records.get(int(raw)) if raw.isdigit() else None
        if record is None:
            raise OvhError(404, f"The requested object (id = {raw}) does not exist")
        return zone, record

    async def _list(self, request: web.Request) -> web.Response:
        _, records = self._zone(request)
        field_type = request.query.get("fieldType")
        sub = request.query.get("subDomain")
        if field_type is not None and field_type not in TYPES:
            raise OvhError(400, f"Invalid value for fieldType: {field_type}")
        ids = []
        for record in records.values():
            if field_type is not None and record["fieldType"] != field_type:
                continue
            if sub is not None:
                have, want = record["subDomain"].lower(), sub.lower()
                if not (want in have if self.loose_filters else want == have):
                    continue
            ids.append(record["id"])
        return web.json_response(sorted(ids))

    async def _get(self, request: web.Request) -> web.Response:
        return web.json_response(self._record(request)[1])

    async def _create(self, request: web.Request) -> web.Response:
        zone, records = self._zone(request)
        body = await _json_body(request, {"fieldType", "target", "subDomain", "ttl"})
        for required in ("fieldType", "target"):
            if required not in body:
                raise OvhError(400, f"Missing parameter(s): {required}")
        record = {"id": next(self._ids), "zone": zone, "subDomain": "", "ttl": 0}
        record.update(body)
        _validate(record)
        records[record["id"]] = record
        return web.json_response(record)

    async def _update(self, request: web.Request) -> web.Response:
        _, record = self._record(request)
        body = await _json_body(request, {"subDomain", "target", "ttl"})
        updated = {**record, **body}
        _validate(updated)
        record.update(updated)
        return web.json_response(None)

    async def _delete(self, request: web.Request) -> web.Response:
        zone, record = self._record(request)
        del self.staged[zone][record["id"]]
        return web.json_response(None)

    async def _refresh(self, request: web.Request) -> web.Response:
        zone, records = self._zone(request)
        self.published[zone] = {i: dict(r) for i, r in records.items()}
        self.deployed_at[zone] = time.monotonic() + self.deploy_delay
        return web.json_response(None)

    async def _status(self, request: web.Request) -> web.Response:
        zone, _ = self._zone(request)
        if not self.status_route:
            raise OvhError(404, "Got an invalid (or empty) URL")
        deployed = time.monotonic() >= self.deployed_at.get(zone, 0.0)
        body = {"isDeployed": deployed, "errors": [], "warnings": [], "infos": []}
        return web.json_response(body)

    async def _soa(self, request: web.Request) -> web.Response:
        zone, _ = self._zone(request)
        body = {"email": f"hostmaster.{zone}", "expire": 604800, "nxDomainTtl": 60}
        body.update(refresh=3600, serial=1, server=f"dns1.{zone}.", ttl=self.default_ttl)
        return web.json_response(body)

    @staticmethod
    def _view(zone: str, records: dict[int, dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
        view: dict[tuple[str, str], list[str]] = {}
        for record in records.values():
            target = str(record["target"])
            if record["fieldType"] == "CNAME":  # zone-file semantics: no dot means relative
                target = target[:-1] if target.endswith(".") else f"{target}.{zone}"
            view.setdefault((record["subDomain"], record["fieldType"]), []).append(target)
        return {key: sorted(values) for key, values in view.items()}


async def _json_body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    text = await request.text()
    if not text:
        return {}
    try:
        body = json.loads(text)
    except ValueError:
        raise OvhError(400, "Invalid JSON body") from None
    if not isinstance(body, dict):
        raise OvhError(400, "Invalid JSON body")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise OvhError(400, f"Invalid parameter(s): {', '.join(unknown)}")
    return body


def _validate(record: dict[str, Any]) -> None:
    field_type, target, ttl = record["fieldType"], record["target"], record["ttl"]
    if field_type not in TYPES:
        raise OvhError(400, f"Invalid value for fieldType: {field_type}")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0:
        raise OvhError(400, "Invalid value for ttl")
    if not isinstance(target, str) or not isinstance(record["subDomain"], str):
        raise OvhError(400, "Invalid value for target or subDomain")
    try:
        if field_type == "A":
            ipaddress.IPv4Address(target)
        elif field_type == "AAAA":
            ipaddress.IPv6Address(target)
    except ValueError:
        raise OvhError(400, f"Invalid target {target!r} for a {field_type} record") from None
    if field_type == "CNAME" and (not target or record["subDomain"] == ""):
        raise OvhError(400, "A CNAME needs a target and cannot be at the zone apex")


class FakeOvhThread:
    """The fake in its own thread and loop, for synchronous tests driving a daemon process."""

    def __init__(self, fake: FakeOvh) -> None:
        self.fake = fake
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> str:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.fake.start(), self._loop).result(10)

    def live(self, zone: str) -> dict[tuple[str, str], list[str]]:
        async def read() -> dict[tuple[str, str], list[str]]:
            return self.fake.live(zone)

        return asyncio.run_coroutine_threadsafe(read(), self._loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@contextlib.contextmanager
def daemon_fake(monkeypatch: Any, home: Any, zone: str, **options: Any) -> Iterator[FakeOvhThread]:
    """The fake in its own thread for a daemon subprocess: no stray OVH_* variable or
    ~/.ovh.conf of the developer's, and the credentials in FAILOVER_TEST_OVH_{AK,AS,CK} for
    `${...}` in the daemon's config."""
    for name in list(os.environ):
        if name.startswith("OVH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("FAILOVER_TEST_OVH_AK", APP_KEY)
    monkeypatch.setenv("FAILOVER_TEST_OVH_AS", APP_SECRET)
    monkeypatch.setenv("FAILOVER_TEST_OVH_CK", CONSUMER_KEY)
    fake = FakeOvh(**options)
    fake.add_zone(zone)
    server = FakeOvhThread(fake)
    server.start()
    try:
        yield server
    finally:
        server.close()
