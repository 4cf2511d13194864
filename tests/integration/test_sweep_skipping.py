"""Timer sweeps that skip quiet services decide exactly as sweeps of every service would.

The same scripted run (probe results, operator commands, time passing on a fake clock) is
played twice on a real daemon with the builtin provider: once as shipped, once with every
timer sweep deciding every service, as before skipping existed. After each step every
service's outcome (action, target, alarms, kept state, phase) must be the same in both, and
so must the journal. A timer the skip rule misses shows up as a step where they differ."""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from failover import heap
from failover.config.loader import load_config
from failover.daemon import Daemon
from failover.engine import CommandError
from failover.engine import actor as actor_module
from failover.engine import sweeps as sweeps_module
from failover.model import ProbeResult
from failover.probes.scheduler import ProbeJob
from failover.runtime import ServiceRuntime

T0 = 1_000_000.0
TARGETS = ("a", "b", "c")
# (cooldown, failback, failback_after, max_auto_switches, flap_window, startup_grace, all_down)
POLICIES = [
    ("0s", "auto", "0s", 3, "1m", "0s", "fallback"),
    ("30s", "auto", "20s", 2, "10m", "10s", "hold"),
    ("5s", "auto", "8s", 1, "1m", "0s", "hold"),
    ("0s", "manual", "0s", 3, "30s", "30s", "fallback"),
    ("12s", "auto", "3s", 2, "45s", "5s", "hold"),
    ("2s", "auto", "40s", 4, "2m", "0s", "fallback"),
]


def write_config(tmp: Path, copies: int = 2) -> Path:
    services = ""
    for i, (cooldown, failback, after, most, window, grace, down) in enumerate(POLICIES * copies):
        targets = "".join(
            f"""
      - {{name: {t}, location: {t}, values: [10.{n}.{i // 250}.{i % 250 + 1}],
         probes: [{{type: tcp, address: "127.0.0.1:9"}}]}}"""
            for n, t in enumerate(TARGETS)
        )
        services += f"""
  s{i:03d}:
    records: [{{provider: lab, zone: example.test, name: s{i:03d}.example.test, type: A}}]
    policy: {{cooldown: {cooldown}, failback: {failback}, failback_after: {after},
              max_auto_switches: {most}, flap_window: {window}, startup_grace: {grace},
              all_down: {down}}}
    fallback: {{values: [198.51.{i // 250}.{i % 250 + 1}], location: cdn}}
    targets:{targets}"""
    tmp.mkdir(exist_ok=True)
    path = tmp / "failover.yaml"
    path.write_text(
        f"""
instance: {{name: sweeps, state_dir: "{tmp / "state"}"}}
admin: {{socket: "{tmp / "admin.sock"}"}}
metrics: {{listen: null}}
providers:
  lab: {{type: builtin, listen: "127.0.0.1:0", verify: false}}
defaults:
  probe: {{interval: 1s, timeout: 500ms}}
  health: {{fall: 2, rise: 2}}
services:{services}
"""
    )
    return path


@dataclass
class Step:
    advance: float
    results: list[tuple[str, str, bool]]  # service, target, ok
    command: tuple[str, ...] | None


def script(seed: int, steps: int = 150) -> list[Step]:
    rng = random.Random(seed)
    names = [f"s{i:03d}" for i in range(len(POLICIES) * 2)]
    # each target fails for stretches: its chance of a failed probe drifts per stretch
    failing = {(s, t): t != "a" and rng.random() < 0.2 for s in names for t in TARGETS}
    out = []
    for _ in range(steps):
        for key in failing:
            if rng.random() < 0.04:
                failing[key] = not failing[key]
        results = [
            (s, t, not failing[(s, t)]) for s in names for t in TARGETS if rng.random() < 0.6
        ]
        command: tuple[str, ...] | None = None
        roll = rng.random()
        service, target = rng.choice(names), rng.choice(TARGETS)
        if roll < 0.02:
            command = ("pause", service)
        elif roll < 0.05:
            command = ("resume", service)
        elif roll < 0.08:
            command = ("ack", service)
        elif roll < 0.10:
            command = ("promote", service, target)
        elif roll < 0.13:
            command = ("release", service)
        elif roll < 0.16:
            command = ("drain", service, target, str(rng.choice([2.0, 6.0, 15.0])))
        elif roll < 0.18:
            command = ("undrain", service, target)
        advance = rng.choice([0.2, 0.5, 1.0, 1.0, 1.5, 3.0, 7.0])
        out.append(Step(advance, results, command))
    return out


async def settle(engine: Any) -> None:
    """Until no change, confirmation or recorded outcome is in flight, and every change task
    has left the switcher's count (real time, short)."""
    for _ in range(1000):
        runtimes = engine.ctx.services.values()
        if not any(rt.busy or rt.inflight or rt.confirming for rt in runtimes) and not (
            engine.ctx._waves or engine.switcher.in_flight
        ):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("changes still in flight after 5 s")


async def command(engine: Any, words: tuple[str, ...]) -> None:
    verb, service, *rest = words
    try:
        if verb == "promote":
            await engine.promote(service, rest[0], "test", "op", force=False, dry_run=False)
        elif verb == "drain":
            await engine.drains.drain(
                service, rest[0], "test", "op", seconds=float(rest[1]), force=False
            )
        elif verb == "undrain":
            await engine.drains.undrain(service, rest[0], "op")
        else:
            await engine.simple_command(service, verb, "op")
    except CommandError:
        pass  # refused (not blocked, not pinned, the last UP target): part of the run


def outcomes(services: Mapping[str, ServiceRuntime]) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for name, rt in sorted(services.items()):
        d = rt.decision
        seen = None if d is None else (d.action, d.target, d.trigger, d.alarms, d.values)
        out[name] = (seen, rt.state, rt.phase, rt.pending, rt.published.target)
    return out


async def play(tmp: Path, steps: list[Step]) -> tuple[list[object], list[tuple[object, ...]]]:
    now = [T0]
    daemon = Daemon(load_config(write_config(tmp)))
    await daemon.start(schedule_probes=False)
    try:
        engine = daemon.engine
        assert engine is not None
        engine.ctx.clock = lambda: now[0]
        engine.started_at = T0
        trace: list[object] = []
        for number, step in enumerate(steps):
            now[0] += step.advance
            for service, target, ok in step.results:
                spec = engine.services[service].config.target(target).probes[0]
                engine.on_probe_result(
                    ProbeJob(service, target, spec),
                    ProbeResult(ok, "ok" if ok else "refused", 0.01),
                    now[0],
                )
            if step.command is not None:
                await command(engine, step.command)
                await settle(engine)
            await engine.cycle()
            await settle(engine)
            trace.append((number, now[0], outcomes(engine.ctx.services)))
        journal = [
            (e["ts"], e["service"], e["kind"], e.get("to"), e.get("result"), e.get("alarm"))
            for e in daemon.store.history(None, 100_000)
        ]
        return trace, sorted(journal, key=lambda e: (e[0], e[1], e[2]))
    finally:
        await daemon.stop()


def patch_chosen(
    monkeypatch: pytest.MonkeyPatch, *, skip_quiet: bool | None = None
) -> list[list[str]]:
    """Wrap the actor's `chosen`: the services of each cycle are recorded in the list
    returned; `skip_quiet` given replaces the actor's own (False: every timer sweep decides
    every service, as before skipping existed)."""
    decided: list[list[str]] = []
    real_chosen, forced = actor_module.chosen, skip_quiet

    def wrapped(*args: Any, skip_quiet: bool = True) -> Collection[ServiceRuntime]:
        picked = real_chosen(*args, skip_quiet=skip_quiet if forced is None else forced)
        decided.append([rt.name for rt in picked])
        return picked

    monkeypatch.setattr(actor_module, "chosen", wrapped)
    return decided


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_skipping_sweeps_decide_as_full_sweeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    steps = script(seed)
    monkeypatch.setattr(sweeps_module, "FULL_SWEEP_EVERY", float("inf"))  # skip all it can
    monkeypatch.setattr(sweeps_module, "SWEEP_SHARE", 0)  # sweeps on the fake clock alone
    skipped = await play(tmp_path / "skipping", steps)

    patch_chosen(monkeypatch, skip_quiet=False)
    full = await play(tmp_path / "full", steps)
    for (number, at, got), (_, _, want) in zip(skipped[0], full[0], strict=True):
        assert got == want, f"step {number} at T0+{at - T0:.1f}s differs"
    assert skipped[1] == full[1]
    kinds = {entry[2] for entry in full[1]}
    assert {"switch", "drain", "undrain", "pause", "resume", "alarm"} <= kinds, kinds
    assert "fallback" in kinds, kinds  # every target DOWN at once, now and then


async def test_a_quiet_service_is_skipped_by_timer_sweeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The skip happens: a steady service on its primary is not decided by timer sweeps."""
    monkeypatch.setattr(sweeps_module, "FULL_SWEEP_EVERY", float("inf"))
    decided = patch_chosen(monkeypatch)
    steps = [Step(1.0, [(s, t, True) for s in ("s000", "s003") for t in TARGETS], None)] * 4
    steps += [Step(1.0, [], None)] * 3
    await play(tmp_path, steps)
    # s000 and s003 are steady on `a`; the others have no health yet, and those whose
    # start-up grace (10 s, 30 s) still runs wait for it: decided every second, for its count
    assert decided[-1] == ["s001", "s007", "s009"]


def feed(engine: Any, service: str, target: str, ok: bool) -> None:
    """One probe result for `target` of `service`, as the scheduler delivers it."""
    spec = engine.services[service].config.target(target).probes[0]
    result = ProbeResult(ok, "ok" if ok else "refused", 0.01)
    engine.on_probe_result(ProbeJob(service, target, spec), result, engine.ctx.clock())


async def publish_on_a(engine: Any) -> None:
    """Every target UP twice, every grace over: every service published on `a`, steady."""
    for _ in range(2):
        for name in engine.services:
            for target in TARGETS:
                feed(engine, name, target, True)
    for _ in range(3):
        engine.started_at -= 60.0
        await engine.cycle()
        await settle(engine)
    assert all(rt.published.target == "a" for rt in engine.ctx.services.values())


async def test_a_target_found_down_mid_cycle_is_decided_in_that_cycle(tmp_path: Path) -> None:
    """A cycle of hundreds of services (the ends of a mass failover's switches) decides a
    service whose primary went DOWN meanwhile ahead of the rest, not in the next cycle."""
    daemon = Daemon(load_config(write_config(tmp_path, copies=70)))  # 420 services
    await daemon.start(schedule_probes=False)
    try:
        engine = daemon.engine
        assert engine is not None
        names = sorted(engine.services)
        late = names[-1]

        await publish_on_a(engine)
        await engine.cycle()  # a cycle of nothing but the last ones woken
        for name in names[:-1]:
            engine.ctx.wake_service(name)  # e.g. their switches ended
        cycle = asyncio.create_task(engine.cycle())

        def late_fails_twice() -> None:
            feed(engine, late, "a", False)
            feed(engine, late, "a", False)

        asyncio.get_running_loop().call_soon(late_fails_twice)
        await cycle
        rt = engine.ctx.services[late]
        assert rt.decision is not None and rt.decision.target == "b", rt.decision
        assert late not in engine.ctx.dirty  # decided: not again in the next cycle
        await settle(engine)
        assert rt.published.target == "b"
    finally:
        await daemon.stop()


async def test_a_mass_failover_is_not_collected_until_its_changes_end(tmp_path: Path) -> None:
    """420 services switch at once: no cyclic collection walks their changes while they are
    in flight (`heap.BurstHold`); once they end, what they left is frozen (never walked) and
    collection resumes."""
    daemon = Daemon(load_config(write_config(tmp_path, copies=70)))
    await daemon.start(schedule_probes=False)
    try:
        engine = daemon.engine
        assert engine is not None
        await publish_on_a(engine)
        await engine.cycle()  # the publication's burst, if any, is over
        assert gc.isenabled() and engine.burst.since is None
        holds, frozen = engine.burst.holds, gc.get_freeze_count()
        for _ in range(2):
            for name in engine.services:
                feed(engine, name, "a", False)
        seen: list[bool] = []  # the collector's state at each change that started
        track = engine.switcher._tracked

        def tracked(task: Any) -> Any:
            tracked_task = track(task)
            seen.append(gc.isenabled())
            return tracked_task

        engine.switcher._tracked = tracked  # type: ignore[method-assign]
        await engine.cycle()
        assert engine.burst.holds == holds + 1
        burst = heap.BURST_CHANGES
        assert all(seen[: burst - 1]) and not any(seen[burst - 1 :]), "held from the 50th"
        await settle(engine)
        assert not engine.switcher.in_flight
        await engine.cycle()  # the first cycle after the last change ends the hold
        assert gc.isenabled() and engine.burst.since is None
        assert gc.get_freeze_count() > frozen  # the survivors: runtimes' new state, journal
        assert all(rt.published.target == "b" for rt in engine.ctx.services.values())
    finally:
        await daemon.stop()  # the collector's state is restored by conftest's `own_heap`
