"""A small, faithful Route 53 REST/XML API on loopback, for what moto cannot show.

moto's server always answers INSYNC, is not atomic and never throttles. This stub
keeps zones in memory with Route 53's semantics (atomic batches, UPSERT counted twice against
1,000 records and 32,000 characters, sorted listing with NextRecord* tokens, PENDING then INSYNC)
and can inject the real error shapes (`<ErrorResponse><Error><Type>Sender</Type><Code>…`),
5xx answers and hangs, per operation. Requests must carry an AWS SigV4 Authorization header.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

NS = "https://route53.amazonaws.com/doc/2013-04-01/"
_Q = f"{{{NS}}}"
HANG = "hang"


@dataclass(frozen=True)
class Fault:
    """An error answer; `code == HANG` never answers (until the stub closes)."""

    status: int
    code: str
    message: str = ""


THROTTLING = Fault(400, "Throttling", "Rate exceeded")
PRIOR = Fault(
    400,
    "PriorRequestNotComplete",
    "The request was rejected because Route 53 was still processing a prior request.",
)
UNAVAILABLE = Fault(503, "ServiceUnavailable", "Service Unavailable")
HUNG = Fault(0, HANG)


@dataclass
class Zone:
    id: str
    name: str  # with the trailing dot, as Route 53 spells it
    private: bool = False
    rrsets: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)


def _order(key: tuple[str, str, str]) -> tuple[list[str], str, str]:
    name, rtype, ident = key
    return list(reversed(name.rstrip(".").split("."))), rtype, ident


class InvalidChangeBatch(Exception):
    pass


class Route53Stub:
    def __init__(self) -> None:
        self.zones: dict[str, Zone] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.calls: list[str] = []  # operation names, in arrival order
        self.arrivals: list[float] = []  # time.monotonic() of each call, in arrival order
        self.batches: list[list[dict[str, Any]]] = []  # accepted change batches
        self.pending_polls = 0  # GetChange answers PENDING this many times per change
        self.pending_for = 0.0  # ... or for this many seconds after the change (as Route 53)
        self.changes: dict[str, int] = {}  # change id -> PENDING answers left
        self.insync_at: dict[str, float] = {}  # change id -> when `pending_for` ends
        self.key_ids: set[str] = set()  # access key ids seen in Authorization headers
        self.hung_zones: set[str] = set()  # zone ids whose changes never get an answer
        self.called = asyncio.Event()  # set by every request
        self.changed = asyncio.Event()  # set by every accepted change batch
        self._ids = itertools.count(1)
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- set-up ---------------------------------------------------------------------------------

    def add_zone(self, name: str, *, private: bool = False, zone_id: str | None = None) -> str:
        zone_id = zone_id or f"Z{next(self._ids):013d}"
        self.zones[zone_id] = Zone(zone_id, name.rstrip(".") + ".", private)
        return zone_id

    def put(self, zone_id: str, rrset: dict[str, Any]) -> None:
        """Store a record set as is (alias or routing-policy records for read tests)."""
        key = (rrset["Name"], rrset["Type"], rrset.get("SetIdentifier", ""))
        self.zones[zone_id].rrsets[key] = rrset

    def fail(self, operation: str, *faults: Fault) -> None:
        """The next calls of `operation` get these answers, in order."""
        self.faults.setdefault(operation, []).extend(faults)

    def count(self, operation: str) -> int:
        return self.calls.count(operation)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/2013-04-01/hostedzonesbyname", self._list_zones)
        app.router.add_get("/2013-04-01/hostedzone/{id}", self._get_zone)
        app.router.add_get("/2013-04-01/hostedzone/{id}/rrset", self._list_rrsets)
        app.router.add_post("/2013-04-01/hostedzone/{id}/rrset/", self._change)
        app.router.add_get("/2013-04-01/change/{id}", self._get_change)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- plumbing -------------------------------------------------------------------------------

    async def _gate(self, operation: str, request: web.Request) -> web.Response | None:
        """Record the call, check the signature header, play an injected fault if any."""
        self.calls.append(operation)
        self.arrivals.append(time.monotonic())
        self.called.set()
        auth = request.headers.get("Authorization", "")
        match = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/", auth)
        if match is None:
            return _error(403, "MissingAuthenticationToken", "Missing Authentication Token")
        self.key_ids.add(match.group(1))
        queue = self.faults.get(operation)
        if not queue:
            return None
        fault = queue.pop(0)
        if fault.code == HANG:
            await self._release.wait()
            raise web.HTTPServiceUnavailable()
        # Like AWS's "security token … is invalid" errors, echo what the client sent.
        message = fault.message.format(
            key_id=match.group(1), token=request.headers.get("X-Amz-Security-Token", "")
        )
        return _error(fault.status, fault.code, message)

    def _zone(self, request: web.Request) -> Zone | web.Response:
        zone_id = request.match_info["id"]
        zone = self.zones.get(zone_id)
        if zone is None:
            return _error(404, "NoSuchHostedZone", f"No hosted zone found with ID: {zone_id}")
        return zone

    # -- operations -----------------------------------------------------------------------------

    async def _list_zones(self, request: web.Request) -> web.Response:
        if (failed := await self._gate("ListHostedZonesByName", request)) is not None:
            return failed
        dnsname = request.query.get("dnsname", "").rstrip(".").lower()
        zones = sorted(self.zones.values(), key=lambda z: (_order((z.name, "", ""))[0], z.id))
        picked = [z for z in zones if _order((z.name, "", ""))[0] >= dnsname.split(".")[::-1]]
        limit = int(request.query.get("maxitems", "100"))
        body = "".join(_zone_xml(z) for z in picked[:limit])
        more = len(picked) > limit
        tail = (
            f"<NextDNSName>{picked[limit].name}</NextDNSName>"
            f"<NextHostedZoneId>{picked[limit].id}</NextHostedZoneId>"
            if more
            else ""
        )
        return _ok(
            "ListHostedZonesByNameResponse",
            f"<HostedZones>{body}</HostedZones><DNSName>{escape(dnsname)}.</DNSName>"
            f"<IsTruncated>{str(more).lower()}</IsTruncated>{tail}<MaxItems>{limit}</MaxItems>",
        )

    async def _get_zone(self, request: web.Request) -> web.Response:
        if (failed := await self._gate("GetHostedZone", request)) is not None:
            return failed
        zone = self._zone(request)
        if isinstance(zone, web.Response):
            return zone
        ns = "".join(f"<NameServer>ns-{i}.awsdns.test</NameServer>" for i in range(2))
        return _ok(
            "GetHostedZoneResponse",
            f"{_zone_xml(zone)}<DelegationSet><NameServers>{ns}</NameServers></DelegationSet>",
        )

    async def _list_rrsets(self, request: web.Request) -> web.Response:
        if (failed := await self._gate("ListResourceRecordSets", request)) is not None:
            return failed
        zone = self._zone(request)
        if isinstance(zone, web.Response):
            return zone
        q = request.query
        if q.get("type") and not q.get("name"):
            return _error(400, "InvalidInput", "The input is not valid")
        keys = sorted(zone.rrsets, key=_order)
        if q.get("name"):
            start = _order((q["name"].lower(), q.get("type", ""), q.get("identifier", "")))
            keys = [k for k in keys if _order(k) >= start]
        limit = int(q.get("maxitems", "300"))
        body = "".join(_rrset_xml(zone.rrsets[k]) for k in keys[:limit])
        tail = ""
        if len(keys) > limit:
            name, rtype, ident = keys[limit]
            tail = (
                f"<NextRecordName>{name}</NextRecordName><NextRecordType>{rtype}</NextRecordType>"
            )
            tail += f"<NextRecordIdentifier>{ident}</NextRecordIdentifier>" if ident else ""
        return _ok(
            "ListResourceRecordSetsResponse",
            f"<ResourceRecordSets>{body}</ResourceRecordSets>"
            f"<IsTruncated>{str(len(keys) > limit).lower()}</IsTruncated>{tail}"
            f"<MaxItems>{limit}</MaxItems>",
        )

    async def _change(self, request: web.Request) -> web.Response:
        if (failed := await self._gate("ChangeResourceRecordSets", request)) is not None:
            return failed
        zone = self._zone(request)
        if isinstance(zone, web.Response):
            return zone
        changes = _parse_changes(await request.read())
        if zone.id in self.hung_zones:
            await self._release.wait()
            raise web.HTTPServiceUnavailable()
        try:
            zone.rrsets = _applied(zone, changes)
        except InvalidChangeBatch as exc:
            return _error(400, "InvalidChangeBatch", str(exc))
        self.batches.append(changes)
        self.changed.set()
        change_id = f"C{next(self._ids):013d}"
        self.changes[change_id] = self.pending_polls
        self.insync_at[change_id] = time.monotonic() + self.pending_for
        status = "PENDING" if self.pending_polls or self.pending_for else "INSYNC"
        return _ok("ChangeResourceRecordSetsResponse", _change_xml(change_id, status))

    async def _get_change(self, request: web.Request) -> web.Response:
        if (failed := await self._gate("GetChange", request)) is not None:
            return failed
        change_id = request.match_info["id"]
        if change_id not in self.changes:
            return _error(
                404,
                "NoSuchChange",
                f"A change with the specified change ID does not exist: {change_id}",
            )
        left = self.changes[change_id]
        self.changes[change_id] = max(0, left - 1)
        pending = left or time.monotonic() < self.insync_at[change_id]
        return _ok("GetChangeResponse", _change_xml(change_id, "PENDING" if pending else "INSYNC"))


# -- XML and batch semantics ----------------------------------------------------------------------


def _ok(root: str, inner: str) -> web.Response:
    text = f'<?xml version="1.0"?>\n<{root} xmlns="{NS}">{inner}</{root}>'
    return web.Response(text=text, content_type="text/xml")


def _error(status: int, code: str, message: str) -> web.Response:
    kind = "Receiver" if status >= 500 else "Sender"
    text = (
        f'<?xml version="1.0"?>\n<ErrorResponse xmlns="{NS}"><Error><Type>{kind}</Type>'
        f"<Code>{code}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    )
    return web.Response(status=status, text=text, content_type="text/xml")


def _zone_xml(zone: Zone) -> str:
    return (
        f"<HostedZone><Id>/hostedzone/{zone.id}</Id><Name>{zone.name}</Name>"
        f"<CallerReference>stub-{zone.id}</CallerReference>"
        f"<Config><PrivateZone>{str(zone.private).lower()}</PrivateZone></Config>"
        f"<ResourceRecordSetCount>{len(zone.rrsets)}</ResourceRecordSetCount></HostedZone>"
    )


def _change_xml(change_id: str, status: str) -> str:
    return (
        f"<ChangeInfo><Id>/change/{change_id}</Id><Status>{status}</Status>"
        f"<SubmittedAt>2024-01-01T00:00:00.000Z</SubmittedAt></ChangeInfo>"
    )


def _rrset_xml(rrset: dict[str, Any]) -> str:
    parts = [f"<Name>{escape(rrset['Name'])}</Name><Type>{rrset['Type']}</Type>"]
    if "SetIdentifier" in rrset:
        parts.append(f"<SetIdentifier>{escape(rrset['SetIdentifier'])}</SetIdentifier>")
        parts.append(f"<Weight>{rrset.get('Weight', 1)}</Weight>")
    if "AliasTarget" in rrset:
        alias = rrset["AliasTarget"]
        parts.append(
            f"<AliasTarget><HostedZoneId>{alias['HostedZoneId']}</HostedZoneId>"
            f"<DNSName>{alias['DNSName']}</DNSName>"
            f"<EvaluateTargetHealth>false</EvaluateTargetHealth></AliasTarget>"
        )
    else:
        values = "".join(
            f"<ResourceRecord><Value>{escape(r['Value'])}</Value></ResourceRecord>"
            for r in rrset["ResourceRecords"]
        )
        parts.append(f"<TTL>{rrset['TTL']}</TTL><ResourceRecords>{values}</ResourceRecords>")
    return f"<ResourceRecordSet>{''.join(parts)}</ResourceRecordSet>"


def _parse_changes(body: bytes) -> list[dict[str, Any]]:
    root = ET.fromstring(body)
    changes = []
    for change in root.iter(f"{_Q}Change"):
        rrset = change.find(f"{_Q}ResourceRecordSet")
        assert rrset is not None
        parsed: dict[str, Any] = {
            "Name": rrset.findtext(f"{_Q}Name", "").lower(),
            "Type": rrset.findtext(f"{_Q}Type", ""),
            "TTL": int(rrset.findtext(f"{_Q}TTL", "0")),
            "ResourceRecords": [{"Value": v.text or ""} for v in rrset.iter(f"{_Q}Value")],
        }
        if not parsed["Name"].endswith("."):
            parsed["Name"] += "."
        changes.append({"Action": change.findtext(f"{_Q}Action"), "ResourceRecordSet": parsed})
    return changes


def _applied(zone: Zone, changes: list[dict[str, Any]]) -> dict[tuple[str, str, str], Any]:
    """The zone's record sets after the batch, or InvalidChangeBatch (nothing applied)."""
    records = chars = 0
    for change in changes:
        values = [r["Value"] for r in change["ResourceRecordSet"]["ResourceRecords"]]
        weight = 2 if change["Action"] == "UPSERT" else 1
        records += weight * len(values)
        chars += weight * sum(map(len, values))
    if records > 1000:
        raise InvalidChangeBatch("Number of records limit of 1000 exceeded.")
    if chars > 32000:
        raise InvalidChangeBatch("Number of characters in values limit of 32000 exceeded.")
    rrsets = dict(zone.rrsets)
    seen: set[tuple[str, str]] = set()
    for change in changes:
        rrset, action = change["ResourceRecordSet"], change["Action"]
        name, rtype = rrset["Name"], rrset["Type"]
        if (name, rtype) in seen:
            raise InvalidChangeBatch(
                f"The request contains an invalid set of changes for a resource record set "
                f"'{rtype} {name}'"
            )
        seen.add((name, rtype))
        if name != zone.name and not name.endswith("." + zone.name):
            raise InvalidChangeBatch(
                f"RRSet with DNS name {name} is not permitted in zone {zone.name}"
            )
        key = (name, rtype, "")
        if action == "CREATE" and key in rrsets:
            raise InvalidChangeBatch(
                f"Tried to create resource record set [name='{name}', type='{rtype}'] but it "
                "already exists"
            )
        if action == "DELETE":
            if rrsets.get(key) != rrset:
                raise InvalidChangeBatch(
                    f"Tried to delete resource record set [name='{name}', type='{rtype}'] but "
                    "it was not found"
                )
            del rrsets[key]
        else:
            rrsets[key] = rrset
    names: dict[str, set[str]] = {}
    for name, rtype, _ in rrsets:
        names.setdefault(name, set()).add(rtype)
    for name, types in names.items():
        if "CNAME" in types and len(types) > 1:
            raise InvalidChangeBatch(
                f"RRSet of type CNAME with DNS name {name} is not permitted as it conflicts "
                "with other records with the same DNS name in zone " + zone.name
            )
    return rrsets


def isolate_aws_env(monkeypatch: Any) -> None:
    """No real AWS from tests: no profile, no ~/.aws files, no instance-metadata probe
    (169.254.169.254), no proxy between botocore and the loopback peers; dummy keys for the
    default credential chain."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_ROUTE_53",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
