"""A local fake of the Cloudflare API v4 (the parts the cloudflare provider uses), on aiohttp.

Faithful where the provider depends on it (the official SDK 5.9 is the client):
- `Authorization: Bearer <token>` checked on every call; errors in Cloudflare's envelope
  `{"success": false, "errors": [{"code", "message"}], "messages": [], "result": null}`.
- `GET /zones?name=`; `GET /zones/{id}/dns_records` with `name.exact`/`name`, `type`, `page`,
  `per_page` and `result_info`; `POST` (create), `PATCH`/`DELETE /zones/{id}/dns_records/{rid}`.
- `POST /zones/{id}/dns_records/batch`: deletes, then patches, puts, posts, in one transaction
  (any failure leaves the zone as it was), at most `batch_limit` operations (200 on Free).
- An identical record (same name, type, content) is refused (81058); a CNAME shares its name
  with nothing (81053); TTL is 1 (automatic) or `min_ttl`..86400.
- 429 with Retry-After and error 971 on demand (`inject`).
- A proxied record's TTL is 1 ("automatic") whatever was asked, as Cloudflare documents.
Assumed, not checked against the live service: the error codes of a batch over the limit and
of a bad token.

`mirror` (optional) is awaited after each committed write with the RRsets it touched, so an
authoritative server (BIND, through RFC 2136) serves what the API holds, as Cloudflare's name
servers do; a proxied RRset is mirrored as Cloudflare's edge address, not as its content.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ipaddress
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

EDGE = "104.16.0.1"  # what a proxied A record answers with, instead of its content
Mirror = Callable[[str, dict[tuple[str, str], tuple[int, list[str]]]], Awaitable[None]]


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Fault:
    """An injected answer for `times` calls matching method and path part."""

    method: str
    path_part: str
    status: int = 500
    code: int = 10000
    message: str = "Internal server error"
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    hang: float = 0.0  # seconds to wait before answering (a hung API)
    commit: bool = False  # carry the call out, then answer the error (a lost answer)
    after: int = 0  # matching calls let through before the fault applies


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authenticated: bool
    other_credentials: tuple[str, ...] = ()  # legacy auth headers sent too (X-Auth-Key…)


@dataclass
class Zone:
    id: str
    name: str
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> record


class FakeCloudflare:
    def __init__(
        self,
        token: str,
        *,
        batch_limit: int = 200,
        min_ttl: int = 30,
        mirror: Mirror | None = None,
    ) -> None:
        self.token = token
        self.batch_limit = batch_limit
        self.min_ttl = min_ttl
        self.mirror = mirror
        self.zones: dict[str, Zone] = {}
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._lock = asyncio.Lock()
        self._closing = asyncio.Event()

    # -- for tests ------------------------------------------------------------------------------

    def add_zone(self, name: str) -> Zone:
        zone = Zone(uuid.uuid4().hex, name)
        self.zones[zone.id] = zone
        return zone

    def zone(self, name: str) -> Zone:
        return next(z for z in self.zones.values() if z.name == name)

    def rrset(self, zone: str, name: str, rtype: str = "A") -> tuple[int, list[str]] | None:
        """(TTL, sorted contents) of `name` (a full name) and type, or None."""
        found = [
            r for r in self.zone(zone).records.values() if r["name"] == name and r["type"] == rtype
        ]
        if not found:
            return None
        return min(r["ttl"] for r in found), sorted(r["content"] for r in found)

    def put(
        self, zone: str, name: str, rtype: str, content: str, *, ttl: int = 300, **kw: Any
    ) -> str:
        """A record added behind the provider's back (the dashboard); returns its id."""
        record = self._new(
            self.zone(zone), {"name": name, "type": rtype, "content": content, "ttl": ttl, **kw}
        )
        self.zone(zone).records[record["id"]] = record
        return str(record["id"])

    def inject(self, method: str, path_part: str, **kwargs: Any) -> Fault:
        fault = Fault(method, path_part, **kwargs)
        self.faults.append(fault)
        return fault

    def throttle(
        self, method: str, path_part: str, retry_after: float = 1, times: int = 1
    ) -> Fault:
        """Cloudflare's answer past its rate limit (1,200 requests per 5 minutes per user):
        429, error 971, and a Retry-After in seconds."""
        return self.inject(
            method,
            path_part,
            status=429,
            code=971,
            message="Please wait and consider throttling your request speed",
            headers={"Retry-After": f"{retry_after:g}"},
            times=times,
        )

    def calls(self, method: str, path_part: str = "") -> list[Seen]:
        return [s for s in self.seen if s.method == method and path_part in s.path]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/client/v4"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeCloudflare:
        app = web.Application()
        app.router.add_route("*", "/client/v4/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the API --------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body = await request.json() if request.can_read_body else None
        authenticated = request.headers.get("Authorization") == f"Bearer {self.token}"
        legacy = ("X-Auth-Email", "X-Auth-Key", "X-Auth-User-Service-Key")
        others = tuple(h for h in legacy if h in request.headers)
        authenticated = authenticated and not others  # Cloudflare reads those first
        seen = Seen(request.method, path, dict(request.query), body, authenticated, others)
        self.seen.append(seen)
        fault = next(
            (
                f
                for f in self.faults
                if f.times and f.method == request.method and f.path_part in path
            ),
            None,
        )
        if fault is not None and fault.after:
            fault.after -= 1
            fault = None
        if fault is not None:
            fault.times -= 1
            if fault.hang:  # until then, or until the fake closes
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), fault.hang)
            if not fault.commit:
                return _error(ApiError(fault.status, fault.code, fault.message), fault.headers)
        if not authenticated:
            return _error(ApiError(403, 10000, "Authentication error"))
        try:
            async with self._lock:
                result, info = await self._route(request.method, path.split("/")[1:], request, body)
        except ApiError as exc:
            return _error(exc)
        if fault is not None:  # committed, but the answer is lost
            return _error(ApiError(fault.status, fault.code, fault.message), fault.headers)
        out: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
        if info is not None:
            out["result_info"] = info
        return web.json_response(out)

    async def _route(
        self, method: str, parts: list[str], request: web.Request, body: Any
    ) -> tuple[Any, dict[str, int] | None]:
        query = request.query
        if parts == ["zones"] and method == "GET":
            zones = [z for z in self.zones.values() if query.get("name") in (None, z.name)]
            items = [{"id": z.id, "name": z.name, "status": "active"} for z in zones]
            return _page(items, query)
        if len(parts) < 3 or parts[0] != "zones" or parts[2] != "dns_records":
            raise ApiError(404, 7003, "Could not route to " + "/".join(parts))
        zone = self.zones.get(parts[1])
        if zone is None:
            raise ApiError(404, 7003, "Could not route to /zones/" + parts[1])
        rest = parts[3:]
        if not rest and method == "GET":
            name = query.get("name.exact", query.get("name"))
            found = [
                r
                for r in zone.records.values()
                if (name is None or r["name"] == name.lower())
                and (query.get("type") is None or r["type"] == query["type"])
            ]
            return _page(sorted(found, key=lambda r: (r["name"], r["type"], r["id"])), query)
        if not rest and method == "POST":
            return await self._transaction(zone, {"posts": [body]}), None
        if rest == ["batch"] and method == "POST":
            return await self._transaction(zone, body or {}), None
        if len(rest) == 1 and method == "PATCH":
            return await self._transaction(zone, {"patches": [{**body, "id": rest[0]}]}), None
        if len(rest) == 1 and method == "DELETE":
            return await self._transaction(zone, {"deletes": [{"id": rest[0]}]}), None
        raise ApiError(405, 10000, f"{method} not allowed here")

    async def _transaction(self, zone: Zone, body: dict[str, Any]) -> dict[str, Any]:
        """deletes → patches → puts → posts on a copy, committed only if all succeed."""
        ops = {k: list(body.get(k) or []) for k in ("deletes", "patches", "puts", "posts")}
        count = sum(map(len, ops.values()))
        if count > self.batch_limit:
            raise ApiError(
                400,
                81063,
                f"Batch request exceeds the limit of {self.batch_limit} records for this plan",
            )
        records = copy.deepcopy(zone.records)
        result: dict[str, list[dict[str, Any]]] = {k: [] for k in ops}
        touched: set[tuple[str, str]] = set()
        for op in ops["deletes"]:
            gone = records.pop(str(op.get("id")), None)
            if gone is None:
                raise ApiError(404, 81044, "Record does not exist.")
            touched.add((gone["name"], gone["type"]))
            result["deletes"].append(gone)
        for kind, merge in (("patches", True), ("puts", False)):
            for op in ops[kind]:
                old = records.get(str(op.get("id")))
                if old is None:
                    raise ApiError(404, 81044, "Record does not exist.")
                fields = {**old, **op} if merge else {"id": old["id"], **op}
                new = self._new(zone, fields, record_id=old["id"])
                touched |= {(old["name"], old["type"]), (new["name"], new["type"])}
                records[old["id"]] = new
                result[kind].append(new)
        for op in ops["posts"]:
            new = self._new(zone, op)
            records[new["id"]] = new
            touched.add((new["name"], new["type"]))
            result["posts"].append(new)
        _check_conflicts(records.values())
        zone.records = records
        if self.mirror is not None and touched:
            await self.mirror(zone.name, {t: self._served(zone, *t) for t in sorted(touched)})
        return result

    def _served(self, zone: Zone, name: str, rtype: str) -> tuple[int, list[str]]:
        found = [r for r in zone.records.values() if r["name"] == name and r["type"] == rtype]
        values = sorted({EDGE if r["proxied"] and rtype == "A" else r["content"] for r in found})
        return (min((r["ttl"] for r in found), default=0), values)

    def _new(self, zone: Zone, op: dict[str, Any], record_id: str | None = None) -> dict[str, Any]:
        name, rtype = str(op.get("name", "")).lower().rstrip("."), op.get("type")
        content, ttl, proxied = op.get("content"), op.get("ttl"), bool(op.get("proxied", False))
        if not name or not (name == zone.name or name.endswith("." + zone.name)):
            raise ApiError(400, 81032, f"Record name {name!r} is not in zone {zone.name}")
        if rtype not in ("A", "AAAA", "CNAME", "TXT", "MX"):
            raise ApiError(400, 9005, f"Invalid or unsupported record type {rtype!r}")
        if not isinstance(content, str) or not _valid(rtype, content):
            raise ApiError(400, 9005, f"Content for {rtype} record is invalid.")
        if not isinstance(ttl, int) or not (ttl == 1 or self.min_ttl <= ttl <= 86400):
            raise ApiError(
                400,
                9021,
                f"Invalid TTL. Must be between {self.min_ttl} and 86400 or 1 for automatic.",
            )
        if proxied and rtype not in ("A", "AAAA", "CNAME"):
            raise ApiError(400, 9004, "This record type cannot be proxied.")
        return {
            "id": record_id or uuid.uuid4().hex,
            "zone_id": zone.id,
            "zone_name": zone.name,
            "name": name,
            "type": rtype,
            "content": content.lower().rstrip(".") if rtype == "CNAME" else content,
            "ttl": 1 if proxied else ttl,
            "proxied": proxied,
            "proxiable": rtype in ("A", "AAAA", "CNAME"),
            "comment": op.get("comment"),
            "tags": op.get("tags") or [],
            "settings": {},
            "meta": {},
            "created_on": "2026-12-05T00:00:00.000000Z",
            "modified_on": "2026-12-05T00:00:00.000000Z",
        }


def _valid(rtype: str, content: str) -> bool:
    try:
        if rtype == "A":
            return ipaddress.ip_address(content).version == 4
        if rtype == "AAAA":
            return ipaddress.ip_address(content).version == 6
    except ValueError:
        return False
    return bool(content)


def _check_conflicts(records: Any) -> None:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_name.setdefault(record["name"], []).append(record)
    for name, found in by_name.items():
        if any(r["type"] == "CNAME" for r in found) and len(found) > 1:
            raise ApiError(400, 81053, f"A CNAME record cannot share its name {name} with others.")
        seen = set()
        for r in found:
            ident = (r["type"], r["content"])
            if ident in seen:
                raise ApiError(400, 81058, "An identical record already exists.")
            seen.add(ident)


def _page(items: list[dict[str, Any]], query: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
    page = max(1, int(query.get("page", 1)))
    per_page = max(1, min(5000, int(query.get("per_page", 100))))
    chunk = items[(page - 1) * per_page : page * per_page]
    total_pages = max(1, -(-len(items) // per_page))
    info = {
        "page": page,
        "per_page": per_page,
        "count": len(chunk),
        "total_count": len(items),
        "total_pages": total_pages,
    }
    return chunk, info


def _error(exc: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    body = {
        "success": False,
        "errors": [{"code": exc.code, "message": exc.message}],
        "messages": [],
        "result": None,
    }
    return web.json_response(body, status=exc.status, headers=headers)


class ThreadedFake:
    """The fake in its own thread and loop, for synchronous tests that run the daemon."""

    def __init__(self, fake: FakeCloudflare) -> None:
        self.fake = fake
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> ThreadedFake:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self._loop).result(10)
        return self

    def rrset(self, zone: str, name: str, rtype: str = "A") -> tuple[int, list[str]] | None:
        async def read() -> tuple[int, list[str]] | None:
            return self.fake.rrset(zone, name, rtype)

        return asyncio.run_coroutine_threadsafe(read(), self._loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
