"""What the daemon says about itself: `/healthz` (alive), `/readyz` (ready) and the one-line
status systemd shows. Kept apart from the wiring so each answer reads in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from failover.config.types import Config

if TYPE_CHECKING:
    from failover.engine import Engine


def healthz(engine: Engine | None, *, running: bool) -> tuple[int, str]:
    """Alive while the decision loop makes progress, judged like the systemd watchdog: a
    slow provider during an outage is not a reason for a container restart."""
    if engine is not None and not running:  # `run --once`: no loop to judge
        return 200, "ok\n"
    if engine is None or not engine.alive():
        return 503, "decision loop not cycling\n"
    return 200, "ok\n"


def readyz(engine: Engine | None) -> tuple[int, str]:
    """Ready once every service's published records have been read back (until then, say
    which providers are still being read: each service is decided as soon as its own are),
    while a leader exists, and while the state directory accepts writes (a journal that is
    behind is not a healthy daemon, but it stays alive: `/healthz` is 200, a restart would
    lose what waits in memory)."""
    if engine is None:
        return 503, "not ready: starting\n"
    condition = engine.coord.condition()
    if condition.startswith("no leader"):  # etcd lost: nobody may write DNS
        return 503, f"not ready: {condition}\n"
    if not engine.ready:
        waiting = engine.unread_providers()
        detail = ", ".join(f"{p} ({n} services)" for p, n in sorted(waiting.items()))
        return 503, f"not ready: published records not read yet from {detail or 'the providers'}\n"
    journal = engine.journal.health()
    if journal.unwritable:
        return 503, f"not ready: {journal.reason()}\n"
    return 200, "ready\n"


def status_line(engine: Engine | None, config: Config, *, dry_run: bool) -> str:
    """`3 services, 1 failed over, 0 alarms`, plus what is wrong when something is."""
    if engine is None:
        return "starting"
    runtimes = list(engine.services.values())
    alarms = sum(len(rt.decision.alarms) for rt in runtimes if rt.decision is not None)
    moved = sum(
        1
        for rt in runtimes
        if rt.published.target is not None and rt.published.target != rt.config.targets[0].name
    )
    unread = sum(1 for rt in runtimes if rt.current is None)
    parts = [f"{len(runtimes)} services", f"{moved} failed over", f"{alarms} alarms"]
    if unread:
        waiting = ", ".join(sorted(engine.unread_providers()))
        parts.append(f"{unread} not read back (reading {waiting})")
    if config.coordination is not None:
        parts.append(engine.coord.condition())
    if engine.journal.health().unwritable:
        parts.append("JOURNAL UNWRITABLE")
    if dry_run:
        parts.append("dry-run")
    return ", ".join(parts)
