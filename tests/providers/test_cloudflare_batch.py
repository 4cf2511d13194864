"""The batches a zone's changes become at Cloudflare: whatever the records there and the batch
limit, they reach the wanted record sets, stay within the limit, and never leave a record set
that had an answer without one between two batches (each batch is its own transaction)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from failover.model import RecordType
from failover.providers.cloudflare_batch import Batch, Existing, Wanted, plan_batches

NAMES = ("a.example.test", "b.example.test", "c.example.test")
VALUES = tuple(f"192.0.2.{i}" for i in range(1, 9))

Record = tuple[str, str, int, bool]  # name, value, ttl, proxied


def apply(state: dict[str, Record], batch: Batch, ids: itertools.count[int]) -> None:
    """A batch as Cloudflare runs it: deletes, patches, posts."""
    for op in batch.deletes:
        del state[op["id"]]
    for op in batch.patches:
        state[op["id"]] = _record(op)
    for op in batch.posts:
        state[f"new{next(ids)}"] = _record(op)


def _record(op: dict[str, Any]) -> Record:
    return (op["name"], op["content"], op["ttl"], op["proxied"])


def rrsets(state: dict[str, Record]) -> dict[str, set[tuple[str, int]]]:
    out: dict[str, set[tuple[str, int]]] = {}
    for name, value, ttl, _ in state.values():
        out.setdefault(name, set()).add((value, ttl))
    return out


existing_st = st.lists(
    st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES), st.sampled_from((30, 60))),
    max_size=12,
)
wanted_st = st.dictionaries(
    st.sampled_from(NAMES),
    st.tuples(st.sets(st.sampled_from(VALUES), min_size=1, max_size=6), st.sampled_from((30, 60))),
    min_size=1,
)


@settings(max_examples=300, deadline=None)
@given(existing=existing_st, wanted=wanted_st, size=st.integers(1, 6))
def test_batches_reach_the_wanted_sets_and_never_empty_one(
    existing: list[tuple[str, str, int]],
    wanted: dict[str, tuple[set[str], int]],
    size: int,
) -> None:
    state = {f"id{i}": (name, value, ttl, False) for i, (name, value, ttl) in enumerate(existing)}
    found: dict[tuple[str, RecordType], list[Existing]] = {}
    for record_id, (name, value, ttl, proxied) in state.items():
        found.setdefault((name, RecordType.A), []).append(Existing(record_id, value, ttl, proxied))
    sets = [
        Wanted(name, RecordType.A, ttl, tuple(sorted(values)))
        for name, (values, ttl) in sorted(wanted.items())
    ]
    batches = plan_batches(sets, found, size)
    had_answer = {name for name, _, _, _ in state.values()}
    ids = itertools.count()
    for batch in batches:
        assert 0 < len(batch) <= size
        apply(state, batch, ids)
        live = rrsets(state)
        for name in had_answer & set(wanted):
            assert live.get(name), f"{name} left without an answer between batches"
    live = rrsets(state)
    for name, (values, ttl) in wanted.items():
        assert live[name] == {(v, ttl) for v in values}
    # nothing to do once there: no batch at all
    again: dict[tuple[str, RecordType], list[Existing]] = {}
    for record_id, (name, value, ttl, proxied) in state.items():
        again.setdefault((name, RecordType.A), []).append(Existing(record_id, value, ttl, proxied))
    assert plan_batches(sets, again, size) == []


def test_an_rrset_that_fits_is_never_split() -> None:
    one = Wanted("a.example.test", RecordType.A, 60, ("192.0.2.1",))
    three = Wanted("b.example.test", RecordType.A, 60, VALUES[:3])
    batches = plan_batches([one, three], {}, 3)
    assert [sorted({p["name"] for p in b.posts}) for b in batches] == [
        ["a.example.test"],
        ["b.example.test"],
    ]
