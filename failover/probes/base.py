"""The probe signature. A probe never enforces its own deadline: the caller owns timeouts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from failover.config_types import ProbeConfig
from failover.model import ProbeResult


@dataclass
class ProbeContext:
    """Shared resources handed to every probe run (one per scheduler)."""

    http: aiohttp.ClientSession


ProbeFn = Callable[[ProbeConfig, ProbeContext], Awaitable[ProbeResult]]
