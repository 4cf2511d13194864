"""Findings about the traffic policies of a service: pools and the all-down fallback. Pure."""

from __future__ import annotations

from failover.audit.model import Finding, Severity
from failover.config.types import ServiceConfig


def policy_findings(svc: ServiceConfig) -> list[Finding]:
    """A pool that any one value takes down; a fallback in the primary's failure domain; a
    fallback configured but never used."""
    out: list[Finding] = []
    for i, target in enumerate(svc.targets):
        pool = target.pool
        if pool is None or pool.min_up != len(target.values):
            continue
        path = f"services.{svc.name}.targets[{i}].pool.min_up"
        out.append(
            Finding(
                Severity.WARNING,
                "pool-min-up-is-size",
                path,
                f"{svc.name} target {target.name}: min_up equals the pool's size",
                f"min_up is {pool.min_up} and the pool has {len(target.values)} values: one "
                "value DOWN takes the whole target DOWN and switches the service away, so the "
                "pool never serves a subset.",
                f"Lower {path} to the number of values that can carry the load "
                f"(at most {len(target.values) - 1}).",
            )
        )
    fb = svc.fallback
    if fb is None or not svc.targets:
        return out
    primary = svc.targets[0]
    path = f"services.{svc.name}.fallback"
    if fb.location is not None and fb.location == primary.location:
        out.append(
            Finding(
                Severity.WARNING,
                "fallback-in-primary-location",
                path,
                f"{svc.name}'s fallback is in {fb.location}, like its primary {primary.name}",
                f"The fallback is published when every target is DOWN; an outage of "
                f"{fb.location} that takes {primary.name} down can take the fallback down too.",
                f"Host the fallback page elsewhere (another cloud, a CDN) and set {path}.location.",
            )
        )
    shared = sorted(set(fb.values) & {v for t in svc.targets for v in t.values})
    if shared:
        out.append(
            Finding(
                Severity.WARNING,
                "fallback-shares-target-values",
                path,
                f"{svc.name}'s fallback serves addresses of its targets",
                f"{', '.join(shared)} belong to a target too: when every target is DOWN, "
                "the fallback sends clients to an address that is already failing.",
                f"List in {path}.values addresses that do not serve any target.",
            )
        )
    if svc.policy.all_down != "fallback":
        out.append(
            Finding(
                Severity.INFO,
                "fallback-unused",
                path,
                f"{svc.name} has a fallback but policy.all_down is hold",
                "With all_down: hold the last answer is kept when every target is DOWN; the "
                "fallback is never published.",
                f"Set services.{svc.name}.policy.all_down: fallback to use it, or remove {path}.",
            )
        )
    return out
