"""Which probes are the same probe: identical ones run once per interval and feed every target
(and every service) that defines them.

Why: many services sit behind one load balancer or ingress; each defines "GET https://lb/healthz
with Host: x" and many define exactly the same request. Running it once per interval is what a
careful operator would do by hand; the answer is the same for all of them.

The identity of a probe is its kind (`type`) and every other setting of its configuration
except its `name`: for http the URL, method, headers (as written, in order), `host` (the Host
header), `tls_server_name` (SNI), expected statuses, body regex and limit, redirect policy, TLS
settings (verify, CA file, client certificate, minimum version); for tcp/tls/dns their address,
payload, expectations and TLS settings; and for all of them `interval` and `timeout`. Two probes
that differ in any of these (another Host header, another timeout) are two probes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable, Mapping
from typing import Literal

from failover.config.types import ProbeConfig

ProbeIdentity = tuple[Hashable, ...]


def identity(spec: ProbeConfig) -> ProbeIdentity:
    """The probe's identity (see the module docstring): equal identities run as one probe."""
    values: list[Hashable] = [type(spec).__name__]
    for name in _settings(type(spec)):
        value = getattr(spec, name)
        if isinstance(value, Mapping):
            value = tuple(value.items())
        values.append((name, value))
    return tuple(values)


_SETTINGS: dict[type, tuple[str, ...]] = {}


def _settings(kind: type) -> tuple[str, ...]:
    """The fields that make a probe of this kind what it is (all but `name`), looked up once
    per kind: `dataclasses.fields` per probe took most of a second for 20,000 at start-up."""
    names = _SETTINGS.get(kind)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(kind) if f.name != "name")
        _SETTINGS[kind] = names
    return names


def distinct(specs: Iterable[ProbeConfig]) -> int:
    """How many probes actually run for these configured ones."""
    return len({identity(spec) for spec in specs})


CHILD_FROM = 1500.0
"""Probes per second from which `probe_process: auto` runs them in a child process. Measured
(README, Benchmarks): 10,000 services (2,333 probes/s) fail over in 13.4-14.4 s with the child
and 16.7-17.6 s without; 1,000 services (1,200 probes/s) gain ~0.1-0.2 s; and the child costs
~50 MB, which 1,000 services x 3 targets (600 probes/s) would feel (94 -> 142 MB)."""


def rate(specs: Iterable[ProbeConfig]) -> float:
    """Probes per second that actually run for these configured ones."""
    unique = {identity(spec): spec for spec in specs}
    return sum(1.0 / spec.interval for spec in unique.values())


def in_a_child(setting: bool | Literal["auto"], specs: Iterable[ProbeConfig]) -> bool:
    """Whether the probes run in a child process (`instance.probe_process`)."""
    if setting == "auto":
        return rate(specs) >= CHILD_FROM
    return bool(setting)
