"""What one zone's changes become at Cloudflare: the operations of `dns_records/batch` calls.

Cloudflare keeps one record per value (an RRset is every record of a name and type), so a new
RRset is reached by patching records that stay or change value, posting values that are new and
deleting records that are gone. A removed value and a new one are paired into one patch of the
record's content: the common failover (one address for another) is then a single in-place
update and the name is never without an answer, whatever the batch boundaries.

A batch runs in one database transaction (deletes, then patches, puts, posts), but the plan's
limit (200 records on Free, 3,500 on paid plans) can split a zone's changes into several. Each
RRset's operations stay in one batch whenever they fit; an RRset larger than a batch is split
posts first, deletes last, so every intermediate state still answers with some of the values.
Pure functions: no I/O, tested on their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from failover.model import RecordType

AUTO_TTL = 1  # Cloudflare's "automatic" TTL, the only one a proxied record has


@dataclass(frozen=True)
class Existing:
    """A record as Cloudflare lists it (content in canonical form)."""

    id: str
    value: str
    ttl: int
    proxied: bool


@dataclass(frozen=True)
class Wanted:
    """One RRset as it must end up: full name, type, TTL, canonical values, proxied or not."""

    name: str
    type: RecordType
    ttl: int
    values: tuple[str, ...]
    proxied: bool = False


@dataclass
class Batch:
    """The body of one `dns_records/batch` call."""

    deletes: list[dict[str, Any]] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.deletes) + len(self.patches) + len(self.posts)

    def add(self, op: tuple[str, dict[str, Any]]) -> None:
        getattr(self, op[0]).append(op[1])


def content(rtype: RecordType, value: str) -> str:
    """A canonical value as Cloudflare's `content` spells it (no trailing dot)."""
    return value.rstrip(".") if rtype is RecordType.CNAME else value


def operations(wanted: Wanted, existing: Sequence[Existing]) -> list[tuple[str, dict[str, Any]]]:
    """The operations that turn `existing` into `wanted`, ordered posts, patches, deletes.
    A proxied record is sent with TTL 1 ("automatic"): Cloudflare's edge answers for it with
    its own TTL whatever is asked."""
    ttl = AUTO_TTL if wanted.proxied else wanted.ttl
    keep: dict[str, Existing] = {}
    spare: list[Existing] = []  # records whose value is no longer wanted (or duplicates)
    for record in existing:
        if record.value in wanted.values and record.value not in keep:
            keep[record.value] = record
        else:
            spare.append(record)
    new = [v for v in wanted.values if v not in keep]

    def body(value: str) -> dict[str, Any]:
        return {
            "name": wanted.name,
            "type": wanted.type.value,
            "content": content(wanted.type, value),
            "ttl": ttl,
            "proxied": wanted.proxied,
        }

    posts: list[tuple[str, dict[str, Any]]] = []
    patches: list[tuple[str, dict[str, Any]]] = []
    deletes: list[tuple[str, dict[str, Any]]] = []
    for value, record in keep.items():
        if record.ttl != ttl or record.proxied != wanted.proxied:
            patches.append(("patches", {"id": record.id, **body(value)}))
    for value in new:
        if spare:
            patches.append(("patches", {"id": spare.pop(0).id, **body(value)}))
        else:
            posts.append(("posts", body(value)))
    deletes = [("deletes", {"id": record.id}) for record in spare]
    return posts + patches + deletes


def plan_batches(
    wanted: Sequence[Wanted],
    existing: Mapping[tuple[str, RecordType], Sequence[Existing]],
    size: int,
) -> list[Batch]:
    """The batches (at most `size` operations each) that reach every `wanted` RRset; [] when
    nothing differs. One RRset's operations share a batch whenever they fit in one."""
    batches: list[Batch] = []
    current = Batch()
    for rrset in wanted:
        ops = operations(rrset, existing.get((rrset.name, rrset.type), ()))
        if not ops:
            continue
        if len(current) + len(ops) > size and len(current):
            batches.append(current)
            current = Batch()
        for op in ops:  # an RRset larger than a batch: posts first, deletes last
            if len(current) >= size:
                batches.append(current)
                current = Batch()
            current.add(op)
    if len(current):
        batches.append(current)
    return batches
