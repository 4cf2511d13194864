"""Prometheus metrics (docs/metrics.md): event counters here, live state read at scrape time.

State gauges (target health, active target, mode, leader) are produced by a collector that
reads the engine's live state on every scrape, so a metric can never drift from the state.
Each daemon owns its registry, so several daemons can run in one test process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from failover import __version__
from failover.exposition import Family, TextCache
from failover.metrics_latency import ServiceLatency
from failover.metrics_probes import ProbeCollector
from failover.model import Health, Mode, Phase, ProbeResult

TARGET_UP_VALUE = {Health.UP: 1.0, Health.DOWN: 0.0, Health.UNKNOWN: -1.0}
ALARMS = (
    "all_down",
    "drift",
    "blocked",
    "isolated",
    "no_healthy_target",
    "pinned_target_down",
    # raised by the providers' states (provider_sync.py), not by the decision core
    "not_verified",
    "change_ignored",
    "split_answer",
    "local_fault",
)
LOCAL_FAULT_REASONS = ("emfile", "enfile", "enobufs", "enomem", "loop_lag")
# Buckets sized for DNS failover: sub-second detection up to minutes of propagation.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class ProbeView:
    name: str
    success: bool | None  # None: never ran


@dataclass(frozen=True)
class TargetView:
    name: str
    health: Health
    probes: tuple[ProbeView, ...] = ()
    pool: tuple[tuple[str, str, bool], ...] = ()  # (value, health, published) of a pool target


@dataclass(frozen=True)
class ServiceView:
    name: str
    mode: Mode
    active: str | None
    targets: tuple[TargetView, ...]
    alarms: frozenset[str] = field(default_factory=frozenset)
    phase: str = "starting"
    fallback: bool | None = None  # the fallback is served (None: the service has none)


@dataclass(frozen=True)
class LiveView:
    instance: str
    leader: bool
    isolated: bool
    services: tuple[ServiceView, ...]
    # (service, target, health) -> how many live vantage points see it so (several instances)
    vantage: tuple[tuple[str, str, str, int], ...] = ()
    journal_unwritable: bool = False
    journal_pending: int = 0
    journal_lost: int = 0
    local_fault: bool = False
    drained: tuple[tuple[str, str, bool], ...] = ()  # (service, target, drained now)


# The view captured on the loop for a render in a worker thread (`Metrics.render`): the
# thread must not walk the engine's dicts while the loop changes them.
_FROZEN: ContextVar[LiveView | None] = ContextVar("frozen_live_view", default=None)


class _LiveCollector(Collector):
    def __init__(self, read: Callable[[], LiveView]) -> None:
        self._read = read

    def describe(self) -> Iterator[Metric]:
        """The families without samples: without it the registry collects the whole live
        view once to learn the names, ~7 s at start-up with 10,000 services."""
        token = _FROZEN.set(LiveView("", False, False, ()))
        try:
            families = list(self.collect())
        finally:
            _FROZEN.reset(token)
        yield from families

    def collect(self) -> Iterator[Metric]:
        view = _FROZEN.get() or self._read()
        for family in self.families(view):
            yield family.metric()

    def text(self, view: LiveView | None, out: list[str], cache: TextCache) -> None:
        for family in self.families(view or self._read()):
            family.text(out, cache)

    def families(self, view: LiveView) -> list[Family]:
        """Every live family, in the order they are exported."""
        probe_success = Family(
            "failover_probe_success",
            "1 if the last run of the probe passed, 0 if it failed.",
            "gauge",
            ["service", "target", "probe"],
        )
        target_up = Family(
            "failover_target_up",
            "Target health: 1 up, 0 down, -1 unknown.",
            "gauge",
            ["service", "target"],
        )
        active = Family(
            "failover_active_target",
            "1 on the target the DNS records currently publish, 0 on the others.",
            "gauge",
            ["service", "target"],
        )
        # Alert rules need to know which target is the primary to say "failed over".
        priority = Family(
            "failover_target_priority",
            "Position of the target in the service's priority order: 0 is the primary.",
            "gauge",
            ["service", "target"],
        )
        mode = Family(
            "failover_service_mode",
            "1 on the service's current mode.",
            "gauge",
            ["service", "mode"],
        )
        phase = Family(
            "failover_service_phase",
            "1 on the phase of the service's change cycle (steady, switching, confirming …).",
            "gauge",
            ["service", "phase"],
        )
        alarm = Family(
            "failover_service_alarm",
            "1 while the named alarm is raised for the service.",
            "gauge",
            ["service", "alarm"],
        )
        pool_up = Family(
            "failover_pool_value_up",
            "Health of one value of a pool target: 1 up, 0 down, -1 unknown.",
            "gauge",
            ["service", "target", "value"],
        )
        pool_published = Family(
            "failover_pool_value_published",
            "1 while DNS serves this value of the active pool target, 0 otherwise.",
            "gauge",
            ["service", "target", "value"],
        )
        pool_count = Family(
            "failover_pool_published_values",
            "How many values of the pool target DNS serves now (0 when it is not active).",
            "gauge",
            ["service", "target"],
        )
        fallback = Family(
            "failover_fallback_active",
            "1 while the service serves its all-down fallback (services with a fallback only).",
            "gauge",
            ["service"],
        )
        for service in view.services:
            if service.fallback is not None:
                fallback.add([service.name], float(service.fallback))
            for target in service.targets:
                if target.pool:
                    pool_count.add(
                        [service.name, target.name], float(sum(p for _, _, p in target.pool))
                    )
                for value, health, published in target.pool:
                    labels = [service.name, target.name, value]
                    pool_up.add(labels, TARGET_UP_VALUE[Health(health)])
                    pool_published.add(labels, float(published))
            for index, target in enumerate(service.targets):
                priority.add([service.name, target.name], float(index))
                target_up.add([service.name, target.name], TARGET_UP_VALUE[target.health])
                active.add(
                    [service.name, target.name], 1.0 if target.name == service.active else 0.0
                )
                for probe in target.probes:
                    if probe.success is not None:
                        probe_success.add(
                            [service.name, target.name, probe.name], float(probe.success)
                        )
            for each in Mode:
                mode.add([service.name, each.value], float(each is service.mode))
            for each_phase in Phase:
                phase.add(
                    [service.name, each_phase.value], float(each_phase.value == service.phase)
                )
            for name in ALARMS:
                alarm.add([service.name, name], float(name in service.alarms))
        leader = Family(
            "failover_leader", "1 while this instance may write DNS.", "gauge", ["instance"]
        )
        leader.add([view.instance], float(view.leader))
        isolated = Family(
            "failover_vantage_isolated",
            "1 while this instance believes it is cut off and casts no DOWN vote.",
            "gauge",
            ["instance"],
        )
        isolated.add([view.instance], float(view.isolated))
        vantage = Family(
            "failover_vantage_views",
            "How many live vantage points (instances) see the target in this health.",
            "gauge",
            ["service", "target", "health"],
        )
        for service_name, target_name, health, count in view.vantage:
            vantage.add([service_name, target_name, health], float(count))
        unwritable = Family(
            "failover_journal_unwritable",
            "1 while the state directory refuses writes: journal entries and state wait in memory.",
            "gauge",
            ["instance"],
        )
        unwritable.add([view.instance], float(view.journal_unwritable))
        pending = Family(
            "failover_journal_pending_entries",
            "Journal entries made but not on disk yet (waiting in memory while the disk refuses).",
            "gauge",
            ["instance"],
        )
        pending.add([view.instance], float(view.journal_pending))
        lost = Family(
            "failover_journal_lost_entries",
            "Journal entries dropped from memory (oldest first) while the disk refused writes.",
            "counter",
            ["instance"],
        )
        lost.add([view.instance], float(view.journal_lost))
        local_fault = Family(
            "failover_local_fault",
            "1 while probes fail for a local reason (no file descriptors, buffers or memory, a "
            "stalled event loop): automatic decisions are held.",
            "gauge",
            ["instance"],
        )
        local_fault.add([view.instance], float(view.local_fault))
        drained = Family(
            "failover_target_drained",
            "1 while the target is drained (failover drain, or a maintenance window): decisions "
            "treat it as unavailable while its probes go on.",
            "gauge",
            ["service", "target"],
        )
        for service_name, target_name, is_drained in view.drained:
            drained.add([service_name, target_name], float(is_drained))
        return [
            drained,
            probe_success,
            target_up,
            active,
            priority,
            mode,
            phase,
            alarm,
            leader,
            isolated,
            vantage,
            unwritable,
            pending,
            lost,
            local_fault,
            pool_up,
            pool_published,
            pool_count,
            fallback,
        ]


class _Events(Collector):
    """The event metrics' registry, seen by the main one as one collector."""

    def __init__(self, events: CollectorRegistry) -> None:
        self._events = events

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names are checked in the events' own registry

    def collect(self) -> Iterator[Metric]:
        yield from self._events.collect()


class Metrics:
    """The daemon's registry and the event metrics the engine and probes update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Per-probe figures live in one compact collector: prometheus_client's children (a
        # lock and an object per bucket) cost ~4 KB per probe, most of the per-target RSS.
        self.probes = ProbeCollector()
        self.registry.register(self.probes)
        # The event metrics (few series) in their own registry, exported through the main one
        # in this place: `render` writes the big per-service families itself (exposition.py)
        # and only these through prometheus_client.
        self.events = CollectorRegistry(auto_describe=True)
        self.registry.register(_Events(self.events))
        self._live: _LiveCollector | None = None
        r = self.events
        self.scheduling_lag = Histogram(
            "failover_probe_scheduling_lag_seconds",
            "Planned start of a probe run -> actual start (includes waiting for a slot).",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.probe_process_restarts = Counter(
            "failover_probe_process_restarts",
            "Times the probe process (instance.probe_process) died and was started again.",
            registry=r,
        )
        self.switches = Counter(
            "failover_switches",
            "Switches of a service's published target.",
            ["service", "from", "to", "trigger"],
            registry=r,
        )
        self.dns_changes = Counter(
            "failover_dns_changes",
            "DNS change submissions per provider and result (ok, error).",
            ["provider", "result"],
            registry=r,
        )
        self.dns_change_duration = Histogram(
            "failover_dns_change_duration_seconds",
            "Submit -> provider reports the change in sync.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.dns_propagation = Histogram(
            "failover_dns_propagation_seconds",
            "Submit -> every authoritative server answers the new values.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.detection_to_publish = ServiceLatency(
            "failover_detection_to_publish_seconds",
            "First failed probe of the failing target -> DNS change accepted.",
            LATENCY_BUCKETS,
        )
        r.register(self.detection_to_publish)
        self.provider_errors = Counter(
            "failover_provider_errors",
            "Provider call errors by kind.",
            ["provider", "kind"],
            registry=r,
        )
        self.last_drill_timestamp = Gauge(
            "failover_last_drill_timestamp_seconds",
            "When the last drill of the service ended (unix time).",
            ["service"],
            registry=r,
        )
        self.last_drill_success = Gauge(
            "failover_last_drill_success",
            "1 if the last drill of the service succeeded, 0 if it failed or was aborted.",
            ["service"],
            registry=r,
        )
        self.notifications = Counter(
            "failover_notifications",
            "Notifications per destination (a name, never the URL) and result (ok, failed, "
            "dropped: queue full).",
            ["destination", "result"],
            registry=r,
        )
        self.reload_ok = Gauge(
            "failover_config_last_reload_successful",
            "1 if the last configuration load succeeded.",
            registry=r,
        )
        self.reload_ok.set(1)
        self.reload_success_time = Gauge(
            "failover_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully (start or reload; unix time).",
            registry=r,
        )
        self.reload_success_time.set_to_current_time()
        self.local_faults = Counter(
            "failover_local_faults",
            "Probe runs that failed for a local reason and were not counted against the target.",
            ["reason"],
            registry=r,
        )
        for reason in LOCAL_FAULT_REASONS:
            self.local_faults.labels(reason)
        self.listener_resets = Counter(
            "failover_listener_reset_connections",
            "Connections reset because a new one arrived while their listener was at its cap "
            "(the oldest goes).",
            ["listener"],
            registry=r,
        )
        self.build_info = Gauge(
            "failover_build_info",
            "Always 1; the version label says which build.",
            ["version"],
            registry=r,
        )
        self.build_info.labels(__version__).set(1)

    def observe_probe(self, job: Any, result: ProbeResult) -> None:
        """Per-run probe figures, in the spirit of blackbox_exporter. Labels stay bounded:
        service, target, probe, plus a phase from a fixed set."""
        self.probes.observe((job.service, job.target, job.spec.name), result)

    def render(self, view: LiveView | None = None) -> bytes:
        """The exposition text, as `generate_latest(self.registry)` writes it; with `view`,
        the live gauges come from it (safe off the loop)."""
        out: list[str] = []
        cache = TextCache()
        self.probes.text(out, cache)
        out.append(generate_latest(self.events).decode())
        if self._live is not None:
            self._live.text(view, out, cache)
        return "".join(out).encode()

    def attach_live(self, read: Callable[[], LiveView]) -> None:
        """Register the scrape-time collector over the engine's live state."""
        live = _LiveCollector(read)
        self.registry.register(live)
        self._live = live

    def prime(self, services: Iterable[tuple[str, Iterable[tuple[str, Iterable[str]]]]]) -> None:
        """Create zero-valued probe histogram series so dashboards see every probe at once."""
        for service, targets in services:
            for target, probes in targets:
                for probe in probes:
                    self.probes.series((service, target, probe))
