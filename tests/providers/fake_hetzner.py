"""A local fake of the Hetzner Cloud API's DNS part (`/zones`, RRSets, actions) for the tests.

Shapes follow what hcloud 2.27 sends and parses (hcloud/zones/client.py, actions/client.py,
_client.py): `Authorization: Bearer <token>` (401 `unauthorized` otherwise); errors as
`{"error": {"code", "message", "details"}}` with the HTTP status of the Cloud API docs;
pagination in `meta.pagination` (`page`, `per_page`, `next_page`…); RRSets addressed as
`/zones/{id_or_name}/rrsets/{name}/{type}`, names relative to the zone (`@` at the apex);
mutations answer an action (`running`) that `GET /actions/{id}` moves to `success` (or `error`)
after `running_polls` reads. A created RRSet exists at once (the answer carries it); a change
to an existing one is applied when its action succeeds, so an `error` action changes nothing.
A zone is `updating` for `updating_polls` reads after a change, then `ok`. A zone in
`secondary` mode answers 422 `incorrect_zone_mode` to every RRSet mutation.

Every applied change is also given to `mirror(zone, name, type, ttl, values)`, so a test can
keep an authoritative server in step (tests/faults/dnsserver.py) and verification can run.

Fault injection: `inject(method, path_part, status=…, code=…, hang=…, raw=…, after=…)`
(`after`: the request is carried out, its answer lost); `fail_next_action(message)` makes
the next action end in `error`.

Run it by hand: `python -m tests.providers.fake_hetzner --port 8768 --token T --zone example.test`
(then `api_endpoint: http://127.0.0.1:8768/v1`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Mirror = Callable[[str, str, str, int, list[str]], None]
TYPES = frozenset({"A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA", "PTR", "TLSA", "DS"})
STATUS = {
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "invalid_input": 400,
    "json_error": 400,
    "uniqueness_error": 409,
    "conflict": 409,
    "incorrect_zone_mode": 422,
    "rate_limit_exceeded": 429,
    "server_error": 500,
    "unavailable": 503,
}


class ApiError(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or {}


@dataclass
class Fault:
    method: str
    path_part: str
    status: int = 500
    code: str = "server_error"
    message: str = "internal server error"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    raw: bool = False  # a proxy's HTML page instead of the API's JSON error
    after: bool = False  # the request is carried out, then its answer is this error (lost)
    times: int = 1


@dataclass
class RRSet:
    name: str
    type: str
    ttl: int | None
    records: list[str]

    def as_json(self, zone: Zone) -> dict[str, Any]:
        return {
            "id": f"{self.name}/{self.type}",
            "name": self.name,
            "type": self.type,
            "ttl": self.ttl,
            "labels": {},
            "protection": {"change": False},
            "records": [{"value": v, "comment": None} for v in self.records],
            "zone": zone.id,
        }


@dataclass
class Zone:
    id: int
    name: str
    mode: str = "primary"
    ttl: int = 3600
    rrsets: dict[tuple[str, str], RRSet] = field(default_factory=dict)
    updating_left: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created": "2026-01-01T00:00:00Z",
            "mode": self.mode,
            "ttl": self.ttl,
            "labels": {},
            "protection": {"delete": False},
            "status": "updating" if self.updating_left > 0 else "ok",
            "record_count": sum(len(r.records) for r in self.rrsets.values()),
            "registrar": "other",
            "primary_nameservers": [],
            "authoritative_nameservers": {
                "assigned": ["hydrogen.ns.hetzner.com."],
                "delegated": [],
                "delegation_last_check": None,
                "delegation_status": "unknown",
            },
        }


@dataclass
class Action:
    id: int
    command: str
    apply: Callable[[], None]
    polls_left: int
    error: str | None = None
    status: str = "running"

    def as_json(self) -> dict[str, Any]:
        error = {"code": "action_failed", "message": self.error} if self.status == "error" else None
        return {
            "id": self.id,
            "command": self.command,
            "status": self.status,
            "progress": 100 if self.status != "running" else 0,
            "started": "2026-01-01T00:00:00Z",
            "finished": None if self.status == "running" else "2026-01-01T00:00:01Z",
            "resources": [],
            "error": error,
        }


@dataclass(frozen=True)
class Seen:
    """One request as received (the token itself is not kept)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    authenticated: bool


class FakeHetzner:
    def __init__(
        self,
        token: str,
        *,
        running_polls: int = 1,
        updating_polls: int = 1,
        mirror: Mirror | None = None,
        latency: float = 0.0,
    ) -> None:
        self.token = token
        self.latency = latency  # seconds every answer takes, like a distant API
        self.running_polls = running_polls
        self.updating_polls = updating_polls
        self.mirror = mirror
        self.zones: dict[str, Zone] = {}
        self.actions: dict[int, Action] = {}
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self.failing: list[str] = []  # messages of the next actions to end in error
        self._ids = itertools.count(1001)
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.host, self.port = "127.0.0.1", 0

    # -- test helpers ---------------------------------------------------------------------------

    def add_zone(self, name: str, *, mode: str = "primary") -> Zone:
        zone = Zone(next(self._ids), name, mode)
        self.zones[name] = zone
        return zone

    def put(
        self, zone: str, name: str, rtype: str, values: list[str], ttl: int | None = 300
    ) -> None:
        self.zones[zone].rrsets[(name, rtype)] = RRSet(name, rtype, ttl, list(values))
        self._mirror(self.zones[zone], name, rtype)

    def rrset(self, zone: str, name: str, rtype: str) -> tuple[int | None, list[str]] | None:
        found = self.zones[zone].rrsets.get((name, rtype))
        return None if found is None else (found.ttl, sorted(found.records))

    def inject(self, method: str, path_part: str, **kwargs: Any) -> Fault:
        fault = Fault(method, path_part, **kwargs)
        self.faults.append(fault)
        return fault

    def fail_next_action(self, message: str) -> None:
        self.failing.append(message)

    def calls(self, method: str, path_part: str = "") -> list[Seen]:
        return [s for s in self.seen if s.method == method and path_part in s.path]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeHetzner:
        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.host, self.port = host, int(self._runner.addresses[0][1])
        return self

    async def close(self) -> None:
        self._release.set()  # hung handlers answer 503 and end
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- HTTP -----------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body: Any = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return _error(ApiError("json_error", "invalid JSON body"))
        if self.latency:
            await asyncio.sleep(self.latency)
        auth = request.headers.get("Authorization", "")
        authenticated = auth == f"Bearer {self.token}"
        self.seen.append(Seen(request.method, path, dict(request.query), body, authenticated))
        for fault in self.faults:
            if fault.times > 0 and fault.method == request.method and fault.path_part in path:
                fault.times -= 1
                if fault.after and authenticated:
                    with contextlib.suppress(ApiError):
                        self._route(request.method, path, request.query, body)
                if fault.hang:
                    await self._release.wait()
                    return _error(ApiError("unavailable", "shutting down"))
                if fault.raw:
                    return web.Response(text="<html>bad gateway</html>", status=fault.status)
                payload = {"error": {"code": fault.code, "message": fault.message, "details": {}}}
                return web.json_response(payload, status=fault.status, headers=fault.headers)
        if not authenticated:
            return _error(ApiError("unauthorized", "unable to authenticate"))
        try:
            payload, status = self._route(request.method, path, request.query, body)
            return web.json_response(payload, status=status)
        except ApiError as exc:
            return _error(exc)

    def _route(self, method: str, path: str, query: Any, body: Any) -> tuple[Any, int]:
        parts = path.strip("/").split("/")
        if parts[0] == "actions" and len(parts) == 2 and method == "GET":
            return {"action": self._poll(parts[1])}, 200
        if parts[0] != "zones":
            raise ApiError("not_found", "not found")
        if len(parts) == 1 and method == "GET":
            return self._list_zones(query), 200
        zone = self._zone(parts[1])
        if len(parts) == 2 and method == "GET":
            zone.updating_left = max(0, zone.updating_left - 1)
            return {"zone": zone.as_json()}, 200
        if len(parts) == 3 and parts[2] == "rrsets":
            if method == "GET":
                return self._list_rrsets(zone, query), 200
            if method == "POST":
                return self._create(zone, body), 201
        if len(parts) == 5 and parts[2] == "rrsets" and method == "GET":
            return {"rrset": self._get(zone, parts[3], parts[4]).as_json(zone)}, 200
        if len(parts) == 7 and parts[2] == "rrsets" and parts[5] == "actions" and method == "POST":
            return {"action": self._rrset_action(zone, parts[3], parts[4], parts[6], body)}, 201
        raise ApiError("not_found", "not found")

    def _zone(self, id_or_name: str) -> Zone:
        for zone in self.zones.values():
            if id_or_name in (zone.name, str(zone.id)):
                return zone
        raise ApiError("not_found", f"zone with ID or name '{id_or_name}' not found")

    def _list_zones(self, query: Any) -> dict[str, Any]:
        zones = [z for z in self.zones.values() if query.get("name") in (None, z.name)]
        items, meta = _page([z.as_json() for z in zones], query)
        return {"zones": items, "meta": meta}

    def _list_rrsets(self, zone: Zone, query: Any) -> dict[str, Any]:
        types = set(query.getall("type", []))
        found = [
            r.as_json(zone)
            for (name, rtype), r in sorted(zone.rrsets.items())
            if query.get("name") in (None, name) and (not types or rtype in types)
        ]
        items, meta = _page(found, query)
        return {"rrsets": items, "meta": meta}

    def _get(self, zone: Zone, name: str, rtype: str) -> RRSet:
        found = zone.rrsets.get((name, rtype))
        if found is None:
            raise ApiError("not_found", f"rrset {name}/{rtype} not found")
        return found

    def _create(self, zone: Zone, body: Any) -> dict[str, Any]:
        _writable(zone)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise ApiError("invalid_input", "invalid input in field 'name'")
        name, rtype, ttl = body["name"], body.get("type"), body.get("ttl")
        _check_name(zone, name)
        if rtype not in TYPES:
            raise ApiError("invalid_input", "invalid input in field 'type'")
        if ttl is not None and (not isinstance(ttl, int) or ttl < 0):
            raise ApiError("invalid_input", "invalid input in field 'ttl'")
        values = _values(zone, rtype, body.get("records"))
        if (name, rtype) in zone.rrsets:
            raise ApiError("uniqueness_error", f"rrset {name}/{rtype} already exists")
        # the RRSet exists at once (the answer carries it); its action publishes it
        rrset = zone.rrsets[(name, rtype)] = RRSet(name, rtype, ttl, values)
        action = self._action(zone, f"create_rrset {name}/{rtype}", lambda: None)
        return {"rrset": rrset.as_json(zone), "action": action}

    def _rrset_action(
        self, zone: Zone, name: str, rtype: str, command: str, body: Any
    ) -> dict[str, Any]:
        _writable(zone)
        rrset = self._get(zone, name, rtype)
        if not isinstance(body, dict):
            raise ApiError("json_error", "expected a JSON object")
        if command == "set_records":
            values = _values(zone, rtype, body.get("records"))

            def apply() -> None:
                rrset.records = values

        elif command == "change_ttl":
            ttl = body.get("ttl")
            if ttl is not None and (not isinstance(ttl, int) or ttl < 0):
                raise ApiError("invalid_input", "invalid input in field 'ttl'")

            def apply() -> None:
                rrset.ttl = ttl

        else:
            raise ApiError("not_found", f"no action {command} in this fake")
        return self._action(zone, f"{command} {name}/{rtype}", apply)

    def _action(self, zone: Zone, command: str, apply: Callable[[], None]) -> dict[str, Any]:
        key = command.rsplit(" ", 1)[1].split("/")

        def done() -> None:
            apply()
            zone.updating_left = self.updating_polls
            self._mirror(zone, key[0], key[1])

        error = self.failing.pop(0) if self.failing else None
        action = Action(next(self._ids), command, done, self.running_polls, error)
        self.actions[action.id] = action
        if action.polls_left <= 0:
            self._finish(action)
        return action.as_json()

    def _poll(self, raw: str) -> dict[str, Any]:
        action = self.actions.get(int(raw)) if raw.isdigit() else None
        if action is None:
            raise ApiError("not_found", f"action with ID '{raw}' not found")
        if action.status == "running":
            action.polls_left -= 1
            if action.polls_left <= 0:
                self._finish(action)
        return action.as_json()

    def _finish(self, action: Action) -> None:
        if action.error is not None:
            action.status = "error"
            return
        action.apply()
        action.status = "success"

    def _mirror(self, zone: Zone, name: str, rtype: str) -> None:
        if self.mirror is None:
            return
        rrset = zone.rrsets.get((name, rtype))
        fqdn = zone.name if name == "@" else f"{name}.{zone.name}"
        if rrset is None:
            return
        values = [v.rstrip(".") if rtype == "CNAME" else v for v in rrset.records]
        self.mirror(zone.name, fqdn, rtype, rrset.ttl or zone.ttl, values)


def _writable(zone: Zone) -> None:
    if zone.mode != "primary":
        raise ApiError(
            "incorrect_zone_mode", f"zone {zone.name} is in {zone.mode} mode, rrsets are read-only"
        )


def _check_name(zone: Zone, name: str) -> None:
    if name == "@":
        return
    if not name or name != name.lower() or name.endswith(".") or name.endswith(zone.name):
        raise ApiError("invalid_input", "invalid input in field 'name' (relative, lower case)")


def _values(zone: Zone, rtype: str, records: Any) -> list[str]:
    if not isinstance(records, list) or not records:
        raise ApiError("invalid_input", "invalid input in field 'records'")
    values: list[str] = []
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("value"), str):
            raise ApiError("invalid_input", "invalid input in field 'records'")
        value = record["value"]
        try:
            if rtype == "A":
                ipaddress.IPv4Address(value)
            elif rtype == "AAAA":
                ipaddress.IPv6Address(value)
            elif rtype == "CNAME" and (not value.endswith(".") or len(records) > 1):
                raise ValueError("a CNAME holds one absolute name, with its final dot")
        except ValueError as exc:
            raise ApiError("invalid_input", f"invalid record value {value!r}: {exc}") from None
        values.append(value)
    return values


def _page(items: list[dict[str, Any]], query: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    page = int(query.get("page", 1))
    per_page = min(int(query.get("per_page", 25)), 50)
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    pagination = {
        "page": page,
        "per_page": per_page,
        "previous_page": page - 1 if page > 1 else None,
        "next_page": page + 1 if page < last else None,
        "last_page": last,
        "total_entries": len(items),
    }
    return chunk, {"pagination": pagination}


def _error(exc: ApiError) -> web.Response:
    body = {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}
    return web.json_response(body, status=STATUS.get(exc.code, 400))


class ThreadedFake:
    """The fake in its own thread and loop, for synchronous tests that run the daemon."""

    def __init__(self, fake: FakeHetzner) -> None:
        self.fake = fake
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> ThreadedFake:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self._loop).result(10)
        return self

    def run(self, call: Callable[[], Any]) -> Any:
        """`call()` on the fake's loop: reads and changes of its state without races."""

        async def inside() -> Any:
            return call()

        return asyncio.run_coroutine_threadsafe(inside(), self._loop).result(10)

    def close(self) -> None:
        deadline = time.monotonic() + 10
        asyncio.run_coroutine_threadsafe(self.fake.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(max(0.1, deadline - time.monotonic()))
        self._loop.close()


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeHetzner(args.token, running_polls=args.running_polls)
    for zone in args.zone or ["example.test"]:
        fake.add_zone(zone)
    await fake.start(args.host, args.port)
    print(f"fake Hetzner Cloud API on {fake.url} (zones: {', '.join(fake.zones)})", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8768)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--zone", action="append", default=[])
    parser.add_argument("--running-polls", type=int, default=1)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
