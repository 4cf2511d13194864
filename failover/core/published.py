"""What DNS serves for a service, classified against its targets (pure): a target, missing
records, drift (values no target has), or unknown (not read yet). The decision reads only this."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from failover.config.types import ServiceConfig
from failover.core.values import FALLBACK, is_fallback, serves
from failover.model import RecordKey, RecordSet, canonical_values


@dataclass(frozen=True)
class Published:
    """What DNS serves now for a service, classified against its targets."""

    kind: Literal["target", "missing", "drift", "unknown", "fallback"]
    target: str | None = None  # set when kind == "target" (FALLBACK when kind == "fallback")
    detail: str = ""  # one line, e.g. "ovh:shop.example.com/A serves 192.0.2.99 (no target)"
    missing: tuple[RecordKey, ...] = ()  # records absent while others match `target`
    # every target consistent with all present records, priority order (targets may share values)
    matches: tuple[str, ...] = ()


def _matching_targets(service: ServiceConfig, key: RecordKey, rs: RecordSet) -> list[str] | None:
    """Targets whose values equal what `rs` serves; None when the values do not parse."""
    try:
        served = canonical_values(key.type, rs.values)
    except ValueError:
        return None
    return [t.name for t in service.targets if serves(t, key.type, served)]


def classify_published(
    service: ServiceConfig, current: Mapping[RecordKey, RecordSet | None] | None
) -> Published:
    """Map the records read from the providers to a target, drift, missing, or unknown (None).

    A record key absent from `current` counts as unread, hence "unknown".
    """
    if current is None:
        return Published("unknown")
    keys = [r.key for r in service.records]
    unread = [k for k in keys if k not in current]
    if unread:
        return Published("unknown", detail=f"no reading for {', '.join(map(str, unread))}")
    missing = tuple(k for k in keys if current[k] is None)
    if len(missing) == len(keys):
        return Published("missing", detail="no record exists yet", missing=missing)

    present = [k for k in keys if current[k] is not None]
    if all(is_fallback(service, k.type, _canonical(current[k], k)) for k in present):
        detail = "the fallback is served (every target was DOWN)"
        if missing:
            detail += f"; missing: {', '.join(map(str, missing))}"
        return Published("fallback", target=FALLBACK, detail=detail, missing=missing)

    per_record: list[tuple[RecordKey, list[str]]] = []
    for key in keys:
        rs = current[key]
        if rs is None:
            continue
        names = _matching_targets(service, key, rs)
        if not names:
            served = ", ".join(rs.values) or "(empty)"
            return Published("drift", detail=f"{key} serves {served} (no target)")
        per_record.append((key, names))

    common = [t.name for t in service.targets if all(t.name in names for _, names in per_record)]
    if not common:
        parts = ", ".join(f"{key} serves {'|'.join(names)}" for key, names in per_record)
        return Published("drift", detail=f"records disagree: {parts}")
    serve = "1 record serves" if len(per_record) == 1 else f"{len(per_record)} records serve"
    detail = f"{serve} {common[0]}"
    if missing:
        detail += f"; missing: {', '.join(map(str, missing))}"
    return Published(
        "target", target=common[0], detail=detail, missing=missing, matches=tuple(common)
    )


def classify_changing(
    service: ServiceConfig,
    current: Mapping[RecordKey, RecordSet | None] | None,
    pending: str | None,
    pending_from: str | None,
) -> Published:
    """`classify_published`, with a change in progress (to `pending`, from `pending_from`)
    counted as that change. Records split between the old and the new target while the change
    reaches every provider are the change, not drift; so are records still all on the old
    target while the change is owed (a provider accepted it and kept the old answer): the
    retry path completes it, with its backoff, instead of a new decision (which would count
    against the flap guard)."""
    published = classify_published(service, current)
    if (
        pending is None
        or published.kind not in ("drift", "target")
        or pending in published.matches
        or current is None
    ):
        return published
    allowed = {t for t in (pending, pending_from) if t is not None}
    if not serve_only(service, current, allowed):
        return published
    detail = f"change to {pending} in progress"
    if pending == FALLBACK:  # the change to the fallback counts as the fallback
        return Published("fallback", FALLBACK, detail=detail)
    return Published("target", pending, detail=detail, matches=(pending,))


def _canonical(rs: RecordSet | None, key: RecordKey) -> tuple[str, ...] | None:
    if rs is None:
        return None
    try:
        return canonical_values(key.type, rs.values)
    except ValueError:
        return None


def serve_only(
    service: ServiceConfig,
    current: Mapping[RecordKey, RecordSet | None],
    allowed: Collection[str],
) -> bool:
    """Whether every present record serves one of the `allowed` targets (or the fallback, when
    allowed): a change between them in progress, not drift."""
    for record in service.records:
        rs = current.get(record.key)
        if rs is None:
            continue
        if not any(
            serves(t, record.type, rs.values) for t in service.targets if t.name in allowed
        ) and not (FALLBACK in allowed and is_fallback(service, record.type, rs.values)):
            return False
    return True


def serves_no_target(
    service: ServiceConfig,
    keys: Collection[RecordKey],
    found: Mapping[RecordKey, RecordSet | None],
) -> bool:
    """Does one of these records serve values that match no target at all (a hand edit)?"""
    for record in service.records:
        served = found.get(record.key) if record.key in keys else None
        if served is None:
            continue
        try:
            values = canonical_values(record.type, served.values)
        except ValueError:
            return True
        if not any(serves(t, record.type, values) for t in service.targets) and not (
            is_fallback(service, record.type, values)
        ):
            return True
    return False


def served_by(
    service: ServiceConfig, provider: str, current: Mapping[RecordKey, RecordSet | None]
) -> str | None:
    """The target whose values this provider's records serve, if any."""
    records = [r for r in service.records if r.provider == provider]
    for target in service.targets:
        if all(
            (rs := current.get(r.key)) is not None and serves(target, r.type, rs.values)
            for r in records
        ):
            return target.name
    return None
