"""Alarms into the journal: each one once per episode, as it is raised (and logged cleared)."""

from __future__ import annotations

import logging

from failover.core import decide as core
from failover.journal import Journal
from failover.logs import fields
from failover.model import Trigger
from failover.runtime import ServiceRuntime

log = logging.getLogger("failover.engine")

INSTANCE_WIDE = frozenset({core.ALARM_ISOLATED, core.ALARM_LOCAL_FAULT})


async def journal_decision_alarms(
    journal: Journal,
    rt: ServiceRuntime,
    previous: core.Decision | None,
    decision: core.Decision,
    now: float,
) -> None:
    """The decision's alarms that were not raised by the previous decision. Instance-wide
    alarms (isolation, a local fault) are journalled once for the instance, not once per
    service: a thousand services must not write a thousand lines for one cause."""
    before = previous.alarms if previous else frozenset()
    for alarm in sorted(decision.alarms - before - INSTANCE_WIDE):
        kind = "drift" if alarm == "drift" else "alarm"
        log.warning("%s: alarm %s: %s", rt.name, alarm, decision.reason, extra=fields(rt.name))
        journal.enqueue(rt.name, kind, Trigger.AUTO, decision.reason, now, alarm=alarm)


async def journal_provider_alarms(journal: Journal, rt: ServiceRuntime, now: float) -> None:
    """Alarms raised by the providers' states, once per episode; `not_verified` has its
    own `verify` entries."""
    raised = rt.alarms()
    new, cleared = rt.alarms_told(raised)
    for alarm in sorted(new - {"not_verified"}):
        log.error("%s: alarm %s: %s", rt.name, alarm, raised[alarm], extra=fields(rt.name))
        journal.enqueue(rt.name, "alarm", Trigger.AUTO, raised[alarm], now, alarm=alarm)
    for alarm in sorted(cleared):
        log.warning("%s: alarm %s cleared", rt.name, alarm, extra=fields(rt.name))
