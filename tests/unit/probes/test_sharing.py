"""Identical probes run once per interval and feed every job that defines them."""

from __future__ import annotations

import asyncio

import pytest
from probe_targets import Target

from failover.config.types import HostPort, HttpProbeConfig, TcpProbeConfig
from failover.model import ProbeResult
from failover.probes.scheduler import ProbeJob, ProbeScheduler
from failover.probes.sharing import CHILD_FROM, distinct, identity, in_a_child, rate


def http(url: str, name: str = "h", **kw: object) -> HttpProbeConfig:
    return HttpProbeConfig(name=name, url=url, interval=0.2, timeout=1.0, **kw)  # type: ignore[arg-type]


def test_identity_ignores_the_name_only() -> None:
    base = http("http://10.0.0.1/health", host="shop.example")
    assert identity(base) == identity(http("http://10.0.0.1/health", "other", host="shop.example"))
    for different in (
        http("http://10.0.0.1/health", host="blog.example"),  # another Host header
        http("http://10.0.0.1/health", host="shop.example", tls_server_name="x.example"),
        http("http://10.0.0.1/health", host="shop.example", method="HEAD"),
        http("http://10.0.0.1/health", host="shop.example", expect_status=(204,)),
        http("http://10.0.0.1/health", host="shop.example", headers={"X-A": "1"}),
        http("http://10.0.0.2/health", host="shop.example"),
        HttpProbeConfig(
            name="h", url="http://10.0.0.1/health", interval=1.0, timeout=1.0, host="shop.example"
        ),
    ):
        assert identity(different) != identity(base), different
    tcp = TcpProbeConfig(name="h", address=HostPort("10.0.0.1", 80), interval=0.2, timeout=1.0)
    assert (
        distinct([base, base, tcp, http("http://10.0.0.1/health", "n2", host="shop.example")]) == 2
    )


async def test_two_services_share_one_request_per_interval(target: Target) -> None:
    seen: list[tuple[str, ProbeResult]] = []
    spec = http(f"{target.url}/ok", "web")
    jobs = [
        ProbeJob("shop", "primary", spec),
        ProbeJob("blog", "edge", http(f"{target.url}/ok", "lb")),  # same probe, another name
    ]
    sched = ProbeScheduler(jobs, lambda job, r, _at: seen.append((job.service, r)), jitter=0.0)
    assert sched.distinct == 1
    async with sched:
        await asyncio.sleep(1.0)
    requests = len(target.methods)  # counted at the server
    shop = [r for service, r in seen if service == "shop"]
    blog = [r for service, r in seen if service == "blog"]
    assert 3 <= len(shop) <= requests <= len(shop) + 1  # a run cut at close was not delivered
    assert [id(r) for r in shop] == [id(r) for r in blog]  # each run fed both services
    assert all(r.ok for r in shop)


async def test_another_host_header_is_another_probe(target: Target) -> None:
    jobs = [
        ProbeJob("shop", "primary", http(f"{target.url}/ok", host="shop.example")),
        ProbeJob("blog", "primary", http(f"{target.url}/ok", host="blog.example")),
    ]
    sched = ProbeScheduler(jobs, lambda *_: None)
    assert sched.distinct == 2
    outcome = await sched.run_once()
    assert sorted(target.hosts) == ["blog.example", "shop.example"]
    assert [job.service for job, _ in outcome] == ["shop", "blog"]


async def test_run_once_asks_once_and_answers_every_job(target: Target) -> None:
    jobs = [ProbeJob(s, "primary", http(f"{target.url}/ok", s)) for s in ("a", "b", "c")]
    outcome = await ProbeScheduler(jobs, lambda *_: None).run_once()
    assert len(target.methods) == 1
    assert [job.service for job, _ in outcome] == ["a", "b", "c"]
    assert len({id(result) for _, result in outcome}) == 1 and outcome[0][1].ok


async def test_set_jobs_regroups_without_restarting_a_kept_probe(target: Target) -> None:
    seen: list[str] = []
    shared = http(f"{target.url}/ok")
    sched = ProbeScheduler(
        [ProbeJob("shop", "primary", shared)], lambda job, *_: seen.append(job.service)
    )
    async with sched:
        await asyncio.sleep(0.05)
        [task] = sched._tasks.values()
        sched.set_jobs([ProbeJob("shop", "primary", shared), ProbeJob("blog", "x", shared)])
        assert list(sched._tasks.values()) == [task]  # the same probe keeps running
        await asyncio.sleep(0.6)
    assert "blog" in seen


def tcp(port: int, interval: float) -> TcpProbeConfig:
    return TcpProbeConfig("tcp", HostPort("10.0.0.1", port), interval, min(interval, 1.0))


def test_auto_moves_the_probes_to_a_child_from_a_rate_of_probes() -> None:
    """`probe_process: auto` counts probes per second that actually run (identical ones
    once); true and false are taken as they are."""
    every_second = [tcp(port, 1.0) for port in range(int(CHILD_FROM) - 1)]
    twice = every_second + every_second  # defined twice, run once
    assert rate(twice) == CHILD_FROM - 1
    assert not in_a_child("auto", twice)
    enough = [*every_second, tcp(0, 0.5), tcp(1, 5.0)]  # 2 and 0.2 more per second
    assert rate(enough) == pytest.approx(CHILD_FROM + 1.2)
    assert in_a_child("auto", enough)
    assert in_a_child(True, []) and not in_a_child(False, enough)
