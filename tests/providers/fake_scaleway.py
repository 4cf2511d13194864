"""A local fake of Scaleway's Domains and DNS API (`/domain/v2beta1`) for the provider tests.

It checks what the real API checks, as far as the SDKs and other tools tell:
`X-Auth-Token` (401 `denied_authentication`, 403 `permissions_denied` for read-only keys), the
PATCH payload (one known change kind per change, `id` xor `id_fields`, upper-case record types,
valid data; errors as `invalid_arguments` with `details[{argument_name, reason, help_message}]`),
pagination (`page`, `page_size` ≤ 1000, default 20, `total_count`), zone status (`pending` for
`pending_polls` status reads after a PATCH, then `active`), and it applies a PATCH to a working
copy so a rejected batch changes nothing.

Assumptions (unverified against the real service, kept as knobs): PATCH is atomic; a CNAME
`data` without a trailing dot is relative to the zone, like in a zone file; an unknown zone
answers 403 (octodns-scaleway treats 403 as "zone missing"); an empty `name` filter means no
filter; unknown JSON keys are rejected.

Fault injection: `inject(method, path_part, status=…, headers=…, body=…, hang=…, times=…)`.

Run it by hand: `python -m tests.providers.fake_scaleway --port 8767 --token T --zone example.test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import ipaddress
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API = "/domain/v2beta1"
# fmt: off
RECORD_TYPES = frozenset((
    "A", "AAAA", "CNAME", "TXT", "SRV", "TLSA", "MX", "NS", "PTR", "CAA", "ALIAS", "LOC", "SSHFP",
    "HINFO", "RP", "URI", "DS", "NAPTR", "DNAME", "SVCB", "HTTPS",
))
# fmt: on
CHANGE_KINDS = ("add", "set", "delete", "clear")
PATCH_KEYS = frozenset({"changes", "return_all_records", "disallow_new_zone_creation", "serial"})
RECORD_KEYS = frozenset({"id", "name", "type", "data", "ttl", "priority", "comment"})
DEFAULT_TTL = 3600


class ApiError(Exception):
    """An error answered in Scaleway's shape."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


def invalid(argument: str, reason: str, help_message: str) -> ApiError:
    detail = {"argument_name": argument, "reason": reason, "help_message": help_message}
    return ApiError(
        400, {"type": "invalid_arguments", "message": "invalid argument(s)", "details": [detail]}
    )


def not_found(resource: str, resource_id: str) -> ApiError:
    body = {"type": "not_found", "message": "resource is not found"}
    return ApiError(404, {**body, "resource": resource, "resource_id": resource_id})


def denied(action: str) -> ApiError:
    detail = {"resource": "dns_zone", "action": action}
    body = {"type": "permissions_denied", "message": "insufficient permissions"}
    return ApiError(403, {**body, "details": [detail]})


@dataclass
class Fault:
    method: str
    path_part: str
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    hang: bool = False
    times: int = 1


@dataclass
class Zone:
    name: str
    domain: str
    records: list[dict[str, Any]] = field(default_factory=list)
    status: str = "active"
    pending_left: int = 0
    project_id: str = "11111111-2222-3333-4444-555555555555"

    def as_json(self) -> dict[str, Any]:
        sub = self.name[: -len(self.domain) - 1] if self.name != self.domain else ""
        ns = ["ns0.dom.scw.cloud", "ns1.dom.scw.cloud"]
        message = "could not deploy the zone" if self.status == "error" else None
        return {
            "domain": self.domain, "subdomain": sub, "ns": ns, "ns_default": ns, "ns_master": [],
            "status": self.status, "message": message, "linked_products": [],
            "updated_at": "2024-01-01T00:00:00Z", "project_id": self.project_id,
        }  # fmt: skip


@dataclass(frozen=True)
class Seen:
    """One request as received (the token itself is not kept)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    authenticated: bool
    at: float


class FakeScaleway:
    def __init__(
        self,
        tokens: dict[str, str] | None = None,
        *,
        default_page_size: int = 20,
        page_cap: int | None = None,
        pending_polls: int = 1,
        missing_zone_status: int = 403,
    ) -> None:
        self.tokens = tokens or {"test-secret": "write"}  # token -> "read" | "write"
        self.default_page_size = default_page_size
        self.page_cap = page_cap  # silently serve fewer than asked, as some APIs do
        self.pending_polls = pending_polls
        self.missing_zone_status = missing_zone_status
        self.zones: dict[str, Zone] = {}
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self.commits: dict[str, float] = {}  # zone -> monotonic time of its last commit
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.host, self.port = "127.0.0.1", 0

    # -- test helpers ---------------------------------------------------------------------------

    def add_zone(self, name: str, domain: str | None = None) -> Zone:
        zone = Zone(name, domain or name)
        self.zones[name] = zone
        return zone

    def put(self, zone: str, name: str, rtype: str, data: str, ttl: int = 300) -> None:
        self.zones[zone].records.append(_record(name, rtype, data, ttl))

    def rrset(self, zone: str, name: str, rtype: str) -> tuple[int, list[str]] | None:
        found = [r for r in self.zones[zone].records if (r["name"], r["type"]) == (name, rtype)]
        if not found:
            return None
        return min(r["ttl"] for r in found), sorted(r["data"] for r in found)

    def inject(self, method: str, path_part: str, **kwargs: Any) -> Fault:
        fault = Fault(method, path_part, **kwargs)
        self.faults.append(fault)
        return fault

    def calls(self, method: str, path_part: str = "") -> list[Seen]:
        return [s for s in self.seen if s.method == method and path_part in s.path]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeScaleway:
        app = web.Application()
        app.router.add_route("*", API + "/{tail:.*}", self._dispatch)
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
        path = request.path[len(API) :]
        body: Any = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return _error(invalid("body", "format", "the body is not valid JSON"))
        token = request.headers.get("X-Auth-Token", "")
        query = dict(request.query)
        self.seen.append(
            Seen(request.method, path, query, body, token in self.tokens, time.monotonic())
        )
        for fault in self.faults:
            if fault.times > 0 and fault.method == request.method and fault.path_part in path:
                fault.times -= 1
                if fault.hang:
                    await self._release.wait()
                    return web.json_response({"message": "shutting down"}, status=503)
                payload = fault.body or {"message": "internal error", "type": "internal"}
                return web.json_response(payload, status=fault.status, headers=fault.headers)
        if not token:
            return _error(ApiError(401, _auth_denied("not_found")))
        if token not in self.tokens:
            return _error(ApiError(401, _auth_denied("invalid_argument")))
        parts = path.strip("/").split("/")
        try:
            if request.method == "GET" and parts == ["dns-zones"]:
                return web.json_response(self._list_zones(query))
            if len(parts) == 3 and parts[0] == "dns-zones" and parts[2] == "records":
                zone = parts[1]
                if request.method == "GET":
                    return web.json_response(self._list_records(zone, query))
                if request.method == "PATCH":
                    if self.tokens[token] != "write":
                        raise denied("write")
                    return web.json_response(self._patch(zone, body))
            return _error(ApiError(404, {"message": "no such route", "type": "not_found"}))
        except ApiError as exc:
            return _error(exc)

    def _zone(self, name: str) -> Zone:
        zone = self.zones.get(name)
        if zone is None:
            if self.missing_zone_status == 403:
                raise denied("read")
            raise not_found("dns_zone", name)
        return zone

    def _list_zones(self, query: dict[str, str]) -> dict[str, Any]:
        wanted = query.get("dns_zone", "")
        page, size = _paging(query, self.default_page_size, self.page_cap)
        zones = sorted(
            (
                z
                for z in self.zones.values()
                if (not wanted or z.name == wanted or z.name.endswith("." + wanted))
                and query.get("project_id", z.project_id) == z.project_id
            ),
            key=lambda z: z.name,
        )
        for zone in zones:  # each status read moves a pending zone towards active
            if zone.status == "pending":
                if zone.pending_left <= 0:
                    zone.status = "active"
                zone.pending_left -= 1
        chunk = zones[(page - 1) * size : page * size]
        return {"total_count": len(zones), "dns_zones": [z.as_json() for z in chunk]}

    def _list_records(self, zone_name: str, query: dict[str, str]) -> dict[str, Any]:
        zone = self._zone(zone_name)
        page, size = _paging(query, self.default_page_size, self.page_cap)
        rtype = query.get("type")
        if rtype is not None and rtype not in RECORD_TYPES:
            raise invalid("type", "format", f"unknown record type {rtype!r}; use A, AAAA, CNAME…")
        order = query.get("order_by", "name_asc")
        if order not in ("name_asc", "name_desc"):
            raise invalid("order_by", "format", "expected name_asc or name_desc")
        name = query.get("name", "")  # empty: no filter (proto3 default)
        matching = [
            r
            for r in zone.records
            if (not name or r["name"] == name)
            and (rtype is None or r["type"] == rtype)
            and query.get("id", r["id"]) == r["id"]
        ]
        matching.sort(key=lambda r: (r["name"], r["type"], r["data"]), reverse=order != "name_asc")
        chunk = matching[(page - 1) * size : page * size]
        return {"total_count": len(matching), "records": copy.deepcopy(chunk)}

    def _patch(self, zone_name: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise invalid("body", "format", "expected a JSON object")
        unknown = sorted(set(body) - PATCH_KEYS)
        if unknown:
            raise invalid(unknown[0], "unknown", "unknown field")
        changes = body.get("changes")
        if not isinstance(changes, list) or not changes:
            raise invalid("changes", "required", "at least one change is required")
        zone = self.zones.get(zone_name)
        if zone is None:
            if body.get("disallow_new_zone_creation"):
                raise not_found("dns_zone", zone_name)
            zone = Zone(zone_name, zone_name)  # the documented default: create it
        working = copy.deepcopy(zone.records)
        touched: list[dict[str, Any]] = []
        for i, change in enumerate(changes):
            working, added = self._change(zone_name, working, change, f"changes[{i}]")
            touched.extend(added)
        _check_zone(zone_name, working)
        zone.records = working  # atomic: all changes or none
        self.zones[zone_name] = zone
        self.commits[zone_name] = time.monotonic()
        if self.pending_polls > 0:
            zone.status, zone.pending_left = "pending", self.pending_polls
        return {"records": copy.deepcopy(working if body.get("return_all_records") else touched)}

    def _change(
        self, zone: str, records: list[dict[str, Any]], change: Any, where: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if not isinstance(change, dict) or len(change) != 1:
            raise invalid(where, "constraint", f"exactly one of {', '.join(CHANGE_KINDS)}")
        ((kind, spec),) = change.items()
        if kind not in CHANGE_KINDS:
            raise invalid(
                f"{where}.{kind}",
                "unknown",
                f"unknown change kind; one of {', '.join(CHANGE_KINDS)}",
            )
        where = f"{where}.{kind}"
        if not isinstance(spec, dict):
            raise invalid(where, "format", "expected an object")
        if kind == "clear":
            return [], []
        if kind == "add":
            new = [
                self._new_record(zone, r, f"{where}.records[{j}]", None)
                for j, r in _items(spec, where)
            ]
            for record in new:
                if any(_same(record, r) for r in records):
                    raise invalid(where, "constraint", "the record already exists")
            return records + new, new
        matches = self._select(records, spec, where)
        if kind == "delete":
            if not matches:
                raise not_found("record", str(spec.get("id") or spec.get("id_fields")))
            return [r for r in records if r not in matches], []
        fields = spec.get("id_fields") or {}
        template = {"name": fields.get("name"), "type": fields.get("type")} if fields else None
        if "id" in spec:
            if not matches:
                raise not_found("record", str(spec["id"]))
            template = {"name": matches[0]["name"], "type": matches[0]["type"]}
        new = [
            self._new_record(zone, r, f"{where}.records[{j}]", template)
            for j, r in _items(spec, where)
        ]
        return [r for r in records if r not in matches] + new, new

    def _select(
        self, records: list[dict[str, Any]], spec: dict[str, Any], where: str
    ) -> list[dict[str, Any]]:
        if ("id" in spec) == ("id_fields" in spec):
            raise invalid(where, "required", "exactly one of id or id_fields is required")
        if "id" in spec:
            return [r for r in records if r["id"] == spec["id"]]
        fields = spec["id_fields"]
        if not isinstance(fields, dict):
            raise invalid(f"{where}.id_fields", "format", "expected an object")
        for key in ("name", "type"):
            if not isinstance(fields.get(key), str):
                raise invalid(f"{where}.id_fields.{key}", "required", f"{key} is required")
        unknown = sorted(set(fields) - {"name", "type", "data", "ttl"})
        if unknown:
            raise invalid(f"{where}.id_fields.{unknown[0]}", "unknown", "unknown field")
        _check_type(fields["type"], f"{where}.id_fields.type")
        return [
            r
            for r in records
            if r["name"] == fields["name"]
            and r["type"] == fields["type"]
            and fields.get("data", r["data"]) == r["data"]
            and fields.get("ttl", r["ttl"]) == r["ttl"]
        ]

    def _new_record(
        self, zone: str, raw: Any, where: str, template: dict[str, Any] | None
    ) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise invalid(where, "format", "expected a record object")
        unknown = sorted(set(raw) - RECORD_KEYS)
        if unknown:
            raise invalid(f"{where}.{unknown[0]}", "unknown", "unknown field")
        name, rtype = raw.get("name"), raw.get("type")
        if template is not None:
            name = template["name"] if name is None else name
            rtype = template["type"] if rtype is None else rtype
            if (name, rtype) != (template["name"], template["type"]):
                raise invalid(where, "constraint", "name and type must match id_fields")
        if not isinstance(name, str):
            raise invalid(f"{where}.name", "required", "the record name is required")
        _check_type(rtype, f"{where}.type")
        data, ttl = raw.get("data"), raw.get("ttl", DEFAULT_TTL)
        if not isinstance(data, str) or not data:
            raise invalid(f"{where}.data", "required", "the record data is required")
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 <= ttl < 2**32:
            raise invalid(f"{where}.ttl", "format", "ttl is a uint32")
        return _record(name, str(rtype), _check_data(zone, str(rtype), data, f"{where}.data"), ttl)


def _items(spec: dict[str, Any], where: str) -> Iterable[tuple[int, Any]]:
    records = spec.get("records", [])
    if not isinstance(records, list):
        raise invalid(f"{where}.records", "format", "expected a list of records")
    return enumerate(records)


def _record(name: str, rtype: str, data: str, ttl: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "type": rtype,
        "data": data,
        "ttl": ttl,
        "priority": 0,
        "comment": None,
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a[k] == b[k] for k in ("name", "type", "data"))


def _check_type(rtype: Any, where: str) -> None:
    if rtype not in RECORD_TYPES:
        hint = (
            " (types are upper case)"
            if isinstance(rtype, str) and rtype.upper() in RECORD_TYPES
            else ""
        )
        raise invalid(where, "format", f"unknown record type {rtype!r}{hint}")


def _check_data(zone: str, rtype: str, data: str, where: str) -> str:
    try:
        if rtype == "A":
            return str(ipaddress.IPv4Address(data))
        if rtype == "AAAA":
            return str(ipaddress.IPv6Address(data))
    except ValueError:
        raise invalid(where, "format", f"{data!r} is not a valid {rtype} address") from None
    if rtype == "CNAME":
        labels = data.rstrip(".").split(".")
        if not all(0 < len(label) <= 63 for label in labels):
            raise invalid(where, "format", f"{data!r} is not a host name")
        return data if data.endswith(".") else f"{data}.{zone}."  # relative, like a zone file
    return data


def _check_zone(zone: str, records: list[dict[str, Any]]) -> None:
    types: dict[str, set[str]] = {}
    for r in records:
        types.setdefault(r["name"], set()).add(r["type"])
    for name, found in types.items():
        if "CNAME" in found and name == "":
            raise invalid(
                "records", "constraint", "cname can not be used in root zone, you can use alias"
            )
        if "CNAME" in found and len(found) > 1:
            raise invalid(
                "records", "constraint", f"{name}.{zone}: a CNAME cannot coexist with other records"
            )


def _paging(query: dict[str, str], default: int, cap: int | None) -> tuple[int, int]:
    try:
        page = int(query.get("page", "1"))
        size = int(query.get("page_size", str(default)))
    except ValueError:
        raise invalid("page", "format", "page and page_size are integers") from None
    if page < 1:
        raise invalid("page", "constraint", "page starts at 1")
    if not 1 <= size <= 1000:
        raise invalid("page_size", "constraint", "page_size is between 1 and 1000")
    return page, min(size, cap) if cap else size


def _auth_denied(reason: str) -> dict[str, Any]:
    body = {"message": "authentication is denied", "type": "denied_authentication"}
    return {**body, "method": "api_key", "reason": reason}


def _error(exc: ApiError) -> web.Response:
    return web.json_response(exc.body, status=exc.status)


class ThreadedFake:
    """The fake in its own thread and loop, for synchronous tests that run the daemon."""

    def __init__(self, fake: FakeScaleway) -> None:
        self.fake = fake
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> ThreadedFake:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self._loop).result(10)
        return self

    def rrset(self, zone: str, name: str, rtype: str) -> tuple[int, list[str]] | None:
        async def read() -> tuple[int, list[str]] | None:
            return self.fake.rrset(zone, name, rtype)

        return asyncio.run_coroutine_threadsafe(read(), self._loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeScaleway({args.token: "write"}, pending_polls=args.pending_polls)
    for zone in args.zone:
        fake.add_zone(zone)
    await fake.start(args.host, args.port)
    print(f"fake Scaleway API on {fake.url}{API} (zones: {', '.join(fake.zones)})", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--token", default="test-secret")
    parser.add_argument("--zone", action="append", default=[])
    parser.add_argument("--pending-polls", type=int, default=1)
    args = parser.parse_args()
    if not args.zone:
        args.zone = ["example.test"]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
