"""Probe kinds by their config `type`. A new kind is one module plus one line here."""

from __future__ import annotations

from typing import cast

from failover.probes import dns, http, tcp, tls
from failover.probes.base import ProbeFn

# Each probe is typed on its own config class; the scheduler looks it up by `spec.type`, so the
# spec it passes always has the matching class (hence the casts to the common signature).
PROBES: dict[str, ProbeFn] = {
    "http": cast(ProbeFn, http.probe),
    "tcp": cast(ProbeFn, tcp.probe),
    "dns": cast(ProbeFn, dns.probe),
    "tls": cast(ProbeFn, tls.probe),
}
