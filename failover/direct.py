"""`failover promote --direct`: switch through the providers when the daemon is down.

An incident must never be blocked by the orchestrator being down. This path does what the
daemon would do for one promote, in-process: it takes the state-dir lock (so it can never race a
running daemon), probes the target once, checks the plan against the same safety rules, applies
it through the same per-provider queues, waits for in-sync and verification, journals it, and
leaves the pin in the state file where the daemon honours it when it comes back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from failover import intents, views
from failover.apply import Confirmation, ProviderQueue, submit_plan
from failover.config.types import Config
from failover.core import decide as core
from failover.core.health import ProbeState, TargetHealth, observe, target_health
from failover.core.plan import build_plan, check_plan, refusal
from failover.daemon import probe_jobs, provider_zones
from failover.journal import Journal
from failover.metrics import Metrics
from failover.model import Health, RecordKey, RecordSet, Trigger
from failover.probes.scheduler import ProbeScheduler
from failover.providers.base import Provider, ProviderError
from failover.providers.registry import create_provider
from failover.store import Store, StoreLockedError


class DirectError(Exception):
    """A refusal or failure of the direct path; `code` is the CLI exit code."""

    def __init__(self, message: str, code: int, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = body or {}


async def _target_health(config: Config, service: str) -> dict[str, TargetHealth]:
    """One probe round for the service: in direct mode one result decides (fall = rise = 1)."""
    jobs = [job for job in probe_jobs(config) if job.service == service]
    scheduler = ProbeScheduler(jobs, lambda *_: None)
    try:
        results = await scheduler.run_once()
    finally:
        await scheduler.aclose()
    now = time.time()
    states: dict[str, dict[str, ProbeState]] = {}
    for job, result in results:
        states.setdefault(job.target, {})[job.spec.name] = observe(
            ProbeState(), result.ok, result.reason, now, 1, 1
        )
    health: dict[str, TargetHealth] = {}
    for target in config.services[service].targets:
        if target.probes:
            health[target.name] = target_health(states.get(target.name, {}), None, now)
        else:
            health[target.name] = TargetHealth(Health.UNKNOWN, None, None, "no probes configured")
    return health


async def promote_direct(
    config: Config,
    service: str,
    target: str,
    reason: str,
    actor: str,
    *,
    force: bool,
    dry_run: bool,
    confirm: Callable[[dict[str, Any]], Awaitable[bool]],
) -> dict[str, Any]:
    svc = config.services.get(service)
    if svc is None:
        raise DirectError(f"no service {service!r} in the config", 2)
    if svc.target(target) is None:
        names = ", ".join(t.name for t in svc.targets)
        raise DirectError(f"{service} has no target {target!r} ({names})", 2)
    store = Store(config.instance.state_dir)
    try:
        store.lock()
    except StoreLockedError as exc:
        raise DirectError(
            f"{exc}; a daemon is running on this state dir: use `failover promote` through it, "
            "or stop it first (--direct never races a running daemon)",
            3,
        ) from exc
    providers: dict[str, Provider] = {}
    try:
        used = {r.provider for r in svc.records}
        zones = provider_zones(config)
        for name in sorted(used):
            provider = create_provider(config.providers[name], zones[name], store)
            await provider.start()
            providers[name] = provider
        health = await _target_health(config, service)
        current = await _read(providers, [r.key for r in svc.records])
        plan = build_plan(svc, target, current, Trigger.MANUAL, reason)
        violations = check_plan(plan, svc, health, current)
        body: dict[str, Any] = {
            "service": service,
            "target": target,
            "direct": True,
            "plan": [views.change_json(c) for c in plan.changes],
            "violations": [views.violation_json(v) for v in violations],
            "health": {name: h.health.value for name, h in health.items()},
        }
        refused = refusal(violations, force)
        if refused:
            raise DirectError(refused.for_operator(), 3, body)
        approved = await confirm(body)  # shows the plan; asks unless dry-run or --yes
        if dry_run or not approved:
            return {**body, "result": "dry-run" if dry_run else "aborted"}
        return await _apply(config, store, providers, svc.name, plan, body, actor, reason, force)
    finally:
        for provider in providers.values():
            await provider.aclose()
        store.unlock()


async def _read(
    providers: dict[str, Provider], keys: list[RecordKey]
) -> dict[RecordKey, RecordSet | None]:
    current: dict[RecordKey, RecordSet | None] = {}
    for name, provider in providers.items():
        mine = [k for k in keys if k.provider == name]
        try:
            current.update(await provider.read(mine))
        except (ProviderError, OSError, TimeoutError) as exc:
            raise DirectError(f"{name}: cannot read the current records: {exc}", 1) from exc
    return current


async def _apply(
    config: Config,
    store: Store,
    providers: dict[str, Provider],
    service: str,
    plan: Any,
    body: dict[str, Any],
    actor: str,
    reason: str,
    force: bool,
) -> dict[str, Any]:
    metrics = Metrics()
    queues = {n: ProviderQueue(n, p, config.providers[n], metrics) for n, p in providers.items()}
    journal = Journal(store, config.instance.name)
    now = time.time()
    try:
        subs = submit_plan(queues, plan.changes)
        accepted = await asyncio.gather(*(s.accepted for s in subs))
        confirmed: list[Confirmation] = []
        ok = [o for o in accepted if o.ok]
        if ok:
            confirmed = list(
                await asyncio.gather(
                    *(s.confirmed for s, o in zip(subs, accepted, strict=True) if o.ok)
                )
            )
    finally:
        for queue in queues.values():
            await queue.aclose()
    result = "ok" if len(ok) == len(accepted) else ("partial" if ok else "error")
    unverified = [c for c in confirmed if not c.in_sync or c.verified is False]
    states = intents.saved_services(store.load_state(), store.state_path)
    svc = config.services[service]
    state = intents.decode_state(states.get(service), svc)
    state = core.pin(state, core.Pin(body["target"], reason, actor, now, force))
    states[service] = intents.encode_state(state)
    saved = {"version": intents.STATE_VERSION, "services": states}
    # Through the journal, like the daemon: a full disk must not hide that DNS changed.
    journal.mark_state(lambda: saved, store.save_state)
    await journal.write(
        service, "pin", Trigger.MANUAL, reason, now, to=body["target"], actor=actor, direct=True
    )
    await journal.write(
        service,
        "switch",
        Trigger.MANUAL,
        f"direct promote by {actor}: {reason}",
        now,
        to=body["target"],
        actor=actor,
        result=result,
        direct=True,
        changes=body["plan"],
        providers=[o.as_json() for o in accepted],
        verification=[c.as_json() for c in confirmed],
    )
    await journal.close()  # what the disk refused is logged in full before this process ends
    behind = journal.health()
    outcome = {
        **body,
        "result": result,
        "providers": [o.as_json() for o in accepted],
        "verified": not unverified,
        "verification": [c.as_json() for c in confirmed],
    }
    if behind.unwritable:
        raise DirectError(
            f"the DNS change was {result}, but the pin and the journal entries could not be "
            f"saved ({behind.reason()}); they are in this command's log output",
            1,
            outcome,
        )
    if result != "ok" or unverified:
        raise DirectError(
            "the change failed or was not verified: "
            + "; ".join(
                [f"{o.provider}: {o.error}" for o in accepted if not o.ok]
                + [c.verify_reason for c in unverified]
            )
            + " (the pin is recorded; the daemon retries when it starts)",
            1,
            outcome,
        )
    return outcome
