"""UPDATE messages for the rfc2136 provider: prerequisites, replacements, size-bounded parts.

Pure functions of the changes (no I/O), so the wire format can be checked without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset
import dns.update

from failover.model import Change, RecordType, canonical_values, normalize_name

UDP_MAX = 1232  # DNS flag day 2020: no IP fragmentation when TCP is unavailable
TCP_LIMIT = 65535 - 512  # size budget of an UPDATE before its TSIG record is added
UDP_LIMIT = UDP_MAX - 256
_IN, _NONE, _ANY = dns.rdataclass.IN, dns.rdataclass.NONE, dns.rdataclass.ANY


# Rdata constructors called directly: parsing text costs ~10x more, and a mass failover
# builds thousands. (Assigned to typed names: dnspython leaves these classes unannotated.)
_RDATA: dict[RecordType, Callable[..., dns.rdata.Rdata]] = {
    RecordType.A: dns.rdtypes.IN.A.A,
    RecordType.AAAA: dns.rdtypes.IN.AAAA.AAAA,
    RecordType.CNAME: dns.rdtypes.ANY.CNAME.CNAME,
}
_RDATA_SIZE = {RecordType.A: 4, RecordType.AAAA: 16}


def _rdatas(rtype: RecordType, values: Iterable[str]) -> list[dns.rdata.Rdata]:
    rdtype = dns.rdatatype.RdataType.make(rtype.value)
    make = _RDATA[rtype]
    if rtype is RecordType.CNAME:
        return [make(_IN, rdtype, dns.name.from_text(v)) for v in values]
    return [make(_IN, rdtype, v) for v in values]


def _rrset(
    name: dns.name.Name,
    rdclass: dns.rdataclass.RdataClass,
    rdtype: dns.rdatatype.RdataType,
    ttl: int = 0,
    rdatas: Iterable[dns.rdata.Rdata] = (),
    deleting: dns.rdataclass.RdataClass | None = None,
) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, rdclass, rdtype, deleting=deleting)
    for rdata in rdatas:
        rrset.add(rdata, ttl)
    return rrset


def build_update(zone: str, changes: Sequence[Change]) -> dns.update.UpdateMessage:
    """One UPDATE for `zone`: per change, 'the RRset is still `before`' then replace it.

    A creation also requires that no CNAME stands at the name (for A/AAAA) or that the name
    holds nothing (for a CNAME): servers silently ignore an add that would break the CNAME rule,
    so without this the update would succeed and change nothing. The RRsets are the ones
    `UpdateMessage.present/absent/replace` make (RFC 2136 §2.4, §2.5), built directly.
    """
    message = dns.update.UpdateMessage(dns.name.from_text(zone))
    for change in changes:
        rtype = change.key.type
        name = dns.name.from_text(normalize_name(change.key.name))
        rdtype = dns.rdatatype.RdataType.make(rtype.value)
        if change.before:  # RRset exists, value dependent: exactly these RRs, TTL 0
            before = _rdatas(rtype, canonical_values(rtype, change.before))
            message.prerequisite.append(_rrset(name, _IN, rdtype, 0, before))
        else:  # RRset does not exist, and no CNAME (or nothing) is in the way
            other = dns.rdatatype.ANY if rtype is RecordType.CNAME else dns.rdatatype.CNAME
            message.prerequisite.append(_rrset(name, _NONE, rdtype))
            message.prerequisite.append(_rrset(name, _NONE, other))
        after = _rdatas(rtype, canonical_values(rtype, change.after))
        message.update.append(_rrset(name, _IN, rdtype, deleting=_ANY))  # delete the RRset
        message.update.append(_rrset(name, _IN, rdtype, change.ttl, after))
    return message


def _size_bound(zone: dns.name.Name, change: Change) -> int:
    """Bytes `change` adds to an UPDATE of `zone`, at most: owners as their labels under the
    zone plus a pointer (the zone name at offset 12 is always reachable), rdata uncompressed.
    Exact sizes depend on position: past 16 KB, names no longer compress."""
    name = dns.name.from_text(normalize_name(change.key.name))
    owner = sum(len(label) + 1 for label in name.labels[: -len(zone.labels)]) + 2
    fixed = _RDATA_SIZE.get(change.key.type)

    def rdata(value: str) -> int:
        return fixed or len(normalize_name(value)) + 2

    before = [rdata(v) for v in change.before or ()] or [0, 0]  # or the two absence checks
    after = [0] + [rdata(v) for v in set(change.after)]  # the RRset deletion, then the adds
    return sum(owner + 10 + size for size in before + after)


def split_changes(zone: str, changes: Sequence[Change], limit: int) -> list[list[Change]]:
    """Consecutive parts whose unsigned UPDATE fits `limit` bytes; one part whenever possible."""
    origin = dns.name.from_text(zone)
    empty = len(build_update(zone, []).to_wire())
    parts: list[list[Change]] = []
    size = limit + 1
    for change in changes:
        own = _size_bound(origin, change)
        if size + own > limit:
            parts.append([])
            size = empty
        parts[-1].append(change)
        size += own
    return parts
