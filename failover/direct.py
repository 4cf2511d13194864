"""`failover promote --direct`: switch through the providers when the daemon is down.

An incident must never be blocked by the orchestrator being down. This path does what the
daemon would do for one promote, in-process: it takes the state-dir lock (so it can never race a
running daemon), probes the target once, checks the plan against the same safety rules, applies
it through the same per-provider queues, waits for in-sync and verification, journals it, and
leaves the pin in the state file where the daemon honours it when it comes back.

With `coordination:` (several instances) the pin must reach etcd, where every instance
reads its intents, and the DNS write must never race a leader:

- etcd answers and an instance leads: the pin is written to etcd (the shared intents) and the
  leader applies it; this command reads DNS back through the providers until it serves the
  target, as a follower does for a promote it received.
- etcd answers and nobody leads (every daemon down): this command campaigns like an instance,
  under the name `<instance> (promote --direct)`, writes the pin to etcd, applies the plan
  itself under the leadership's fencing token, then revokes its lease so a daemon may lead at
  once. If a leader appears meanwhile (a crashed leader's key expiring first), it defers to it.
- etcd does not answer: an instance that still reaches it may be leading, and a write from here
  could race it, or be undone by it since its intents would not have the pin. Refused (exit 3),
  unless the operator states that etcd is down for every instance (`--etcd-down`): then no
  leader can renew its lease, so after waiting out one `lease_ttl` nobody else can still be
  writing, and the change goes through as without coordination (the pin stays in this host's
  state file only, which the output says).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from failover import intents, views
from failover.apply import ProviderQueue, submit_plan
from failover.config.types import Config, EtcdConfig, ServiceConfig
from failover.coord.etcd import CoordinationError, EtcdCoordinator
from failover.coord.etcd_client import EtcdClient, EtcdError
from failover.coord.shared_journal import SharedJournal
from failover.core import decide as core
from failover.core import drain as drain_rules
from failover.core.health import ProbeState, TargetHealth, observe, target_health
from failover.core.plan import build_plan, check_plan, refusal
from failover.core.pool import fold_members, pool_health, pool_values
from failover.core.published import classify_published
from failover.journal import Journal
from failover.metrics import Metrics
from failover.model import Health, RecordKey, RecordSet, Trigger
from failover.probes.scheduler import ProbeScheduler
from failover.providers.base import Provider, ProviderError
from failover.providers.registry import create_provider
from failover.store import Store, StoreLockedError
from failover.submission import Confirmation
from failover.wiring import probe_jobs, provider_zones

LEADER_WAIT = 30.0  # seconds to wait for the leader to publish the pin (as a follower does)
POLL = 0.5  # seconds between two read-backs while waiting


class DirectError(Exception):
    """A refusal or failure of the direct path; `code` is the CLI exit code."""

    def __init__(self, message: str, code: int, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = body or {}


async def _target_health(
    config: Config, service: str, members: dict[str, dict[str, TargetHealth]] | None = None
) -> dict[str, TargetHealth]:
    """One probe round for the service: in direct mode one result decides (fall = rise = 1).
    A pool's values are judged one by one, into `members` when given."""
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
        if target.pool is not None:
            mine = fold_members(target, states.get(target.name, {}), {}, now)
            health[target.name] = pool_health(target, mine, None, now)
            if members is not None:
                members[target.name] = mine
        elif target.probes:
            health[target.name] = target_health(states.get(target.name, {}), None, now)
        else:
            health[target.name] = TargetHealth(Health.UNKNOWN, None, None, "no probes configured")
    return health


def _serves(svc: ServiceConfig, target: str, current: Mapping[RecordKey, RecordSet | None]) -> bool:
    """Do the records serve `target` (for a pool: some of its values, whichever are UP)?"""
    t = svc.target(target)
    if t is None or t.pool is None:
        return not build_plan(svc, target, current, Trigger.MANUAL, "").changes
    pub = classify_published(svc, current)
    return pub.kind == "target" and target in pub.matches and not pub.missing


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
    etcd_down: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """`etcd_down`: with coordination, the operator states etcd is down for every instance
    (see the module doc). `say` prints progress lines while waiting."""
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
        etcd = config.coordination.etcd if config.coordination is not None else None
        leader = await _etcd_leader(etcd, etcd_down) if etcd is not None else None
        used = {r.provider for r in svc.records}
        zones = provider_zones(config)
        for name in sorted(used):
            provider = create_provider(config.providers[name], zones[name], store)
            await provider.start()
            providers[name] = provider
        members: dict[str, dict[str, TargetHealth]] = {}
        health = await _target_health(config, service, members)
        # a drained target is not UP here either: the drains saved by the daemon (the state
        # file, etcd's copy included) and the maintenance windows open now
        saved = intents.saved_services(store.load_state(), store.state_path)
        drains = drain_rules.drained(
            svc, intents.decode_state(saved.get(service), svc), time.time()
        )
        health = drain_rules.effective_health(health, drains)
        current = await _read(providers, [r.key for r in svc.records])
        values = pool_values(svc, target, members)  # a pool: only its UP values
        plan = build_plan(svc, target, current, Trigger.MANUAL, reason, values)
        violations = check_plan(plan, svc, health, current)
        body: dict[str, Any] = {
            "service": service,
            "target": target,
            "direct": True,
            "plan": [views.change_json(c) for c in plan.changes],
            "violations": [views.violation_json(v) for v in violations],
            "health": {name: h.health.value for name, h in health.items()},
            "coordination": _coordination_text(etcd, leader),
        }
        refused = refusal(violations, force)
        if refused:
            raise DirectError(refused.for_operator(), 3, body)
        approved = await confirm(body)  # shows the plan; asks unless dry-run or --yes
        if dry_run or not approved:
            return {**body, "result": "dry-run" if dry_run else "aborted"}
        if etcd is not None and leader is not _UNREACHABLE:
            return await _coordinated(
                config, etcd, store, providers, plan, body, actor, reason, force, say
            )
        if etcd is not None:
            say(
                f"etcd is down for every instance (--etcd-down): waiting {etcd.lease_ttl:g}s, "
                "one lease_ttl, so that no leader can still be writing"
            )
            await asyncio.sleep(etcd.lease_ttl)
        return await _apply(config, store, providers, svc.name, plan, body, actor, reason, force)
    finally:
        for provider in providers.values():
            await provider.aclose()
        store.unlock()


class _Unreachable:
    """etcd did not answer (and the operator said it is down for every instance)."""


_UNREACHABLE = _Unreachable()


async def _etcd_leader(etcd: EtcdConfig, etcd_down: bool) -> str | _Unreachable | None:
    """Who leads now (None: nobody), read once before anything else is done; refuses when etcd
    does not answer unless `etcd_down`."""
    client = EtcdClient(
        etcd.endpoints,
        timeout=etcd.timeout,
        tls=etcd.tls,
        username=etcd.username,
        password=etcd.password,
    )
    await client.open()
    try:
        kvs, _ = await client.range(etcd.prefix.rstrip("/") + "/leader")
    except EtcdError as exc:
        if etcd_down:
            return _UNREACHABLE
        raise DirectError(
            f"etcd does not answer ({exc}): an instance that still reaches it may be leading, "
            "and a DNS change from here could race it or be undone by it (its shared intents "
            "would not have the pin), so --direct refuses. Use `failover promote` through any "
            "running instance; or, if etcd is down for every instance (its quorum lost), run "
            "again with --etcd-down: the change is then applied after one lease_ttl, when no "
            "leader can still be writing, and the pin is kept in this host's state file only",
            3,
        ) from None
    finally:
        await client.aclose()
    return kvs[0].value.decode("utf-8", "replace") if kvs else None


def _coordination_text(etcd: EtcdConfig | None, leader: str | _Unreachable | None) -> str | None:
    if etcd is None:
        return None
    if leader is _UNREACHABLE:
        return "etcd unreachable (--etcd-down): applied here without coordination"
    if leader is not None:
        return f"{leader} leads: the pin goes to etcd and {leader} applies it"
    return "nobody leads: the pin goes to etcd and this command applies it as leader"


async def _coordinated(
    config: Config,
    etcd: EtcdConfig,
    store: Store,
    providers: dict[str, Provider],
    plan: Any,
    body: dict[str, Any],
    actor: str,
    reason: str,
    force: bool,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The pin goes to etcd first (whoever leads now or later honours it); then either the
    leader publishes it, or this command leads and applies it under its fencing token."""
    service, target = body["service"], body["target"]
    svc = config.services[service]
    coord = EtcdCoordinator(f"{config.instance.name} (promote --direct)", store, etcd)
    shared = SharedJournal(etcd, config.instance.name)  # `history` on every instance shows it
    journal = Journal(store, config.instance.name, on_entry=shared.publish)
    await shared.start()
    await coord.start()
    try:
        now = time.time()
        saved = coord.load_intents()
        state = intents.decode_state(saved.get(service), svc)
        saved[service] = intents.encode_state(
            core.pin(state, core.Pin(target, reason, actor, now, force))
        )
        try:  # etcd, then this host's state file
            await asyncio.to_thread(coord.save_intents, saved)
        except (CoordinationError, OSError) as exc:
            raise DirectError(f"the pin was not saved, nothing changed: {exc}", 1, body) from None
        await journal.write(
            service, "pin", Trigger.MANUAL, reason, now, to=target, actor=actor, direct=True
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LEADER_WAIT + etcd.lease_ttl
        told: str | None = None
        while True:
            if coord.is_leader():
                say("no instance leads: this command leads and applies the change")
                return await _apply(
                    config,
                    store,
                    providers,
                    service,
                    plan,
                    body,
                    actor,
                    reason,
                    force,
                    coord=coord,
                    journal=journal,
                )
            leader = coord.leader_name()
            if leader is not None and leader != told:
                say(f"pinned in etcd; waiting for the leader ({leader}) to publish {target}")
                told = leader
            current = await _read(providers, [r.key for r in svc.records])
            if _serves(svc, target, current):
                outcome = {
                    **body,
                    "result": "ok",
                    "leader": leader,
                    "reason": f"pinned in etcd; the leader ({leader or 'another instance'}) "
                    f"published {target} (read back by this command)",
                }
                return outcome
            if loop.time() > deadline:
                raise DirectError(
                    f"pinned in etcd, but the leader ({leader or 'none'}) has not published "
                    f"{target} after {LEADER_WAIT:g}s: see `failover status` on any instance",
                    1,
                    {**body, "result": "pending", "leader": leader},
                )
            await asyncio.sleep(POLL)
    finally:
        await journal.close()
        await shared.aclose()
        await coord.aclose()


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
    *,
    coord: EtcdCoordinator | None = None,
    journal: Journal | None = None,
) -> dict[str, Any]:
    """Send the plan; with `coord` (this command leads) under its fencing token, the pin being
    already saved in etcd and the state file."""
    metrics = Metrics()
    fence = coord.token_valid if coord is not None else None
    token = coord.fencing_token() if coord is not None else 0
    queues = {
        n: ProviderQueue(n, p, config.providers[n], metrics, fence=fence)
        for n, p in providers.items()
    }
    journal = journal or Journal(store, config.instance.name)
    now = time.time()
    try:
        subs = submit_plan(queues, plan.changes, token=token)
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
    if coord is None:
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
