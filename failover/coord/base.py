"""The coordination seam: leadership, fencing, shared views and shared intents.

The engine talks to one `Coordinator`; `standalone` (the default: one instance, always the
leader, intents in the local state file) and `etcd` (several instances, one leader elected on
a lease) implement it. Reads are synchronous and answer from what the coordinator last learnt
(the engine calls them on every decision); network work happens in the coordinator's own tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Health = Literal["up", "down", "unknown"]
ChangeKind = Literal["leader", "intents", "views"]


@dataclass(frozen=True)
class View:
    """One instance's judgement of every target (its vantage point), published under its lease.

    An `isolated` instance still publishes, but the leader counts none of its DOWNs."""

    instance: str
    location: str | None
    isolated: bool
    at: float  # wall-clock time it was published
    targets: Mapping[str, Mapping[str, Health]] = field(default_factory=dict)  # service→target→

    def as_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "location": self.location,
            "isolated": self.isolated,
            "at": self.at,
            "targets": {s: dict(t) for s, t in self.targets.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> View:
        """Raises KeyError/TypeError/ValueError on a body that is not a view."""
        targets = {
            str(service): {str(t): _health(h) for t, h in dict(per).items()}
            for service, per in dict(data["targets"]).items()
        }
        location = data.get("location")
        return cls(
            str(data["instance"]),
            str(location) if location is not None else None,
            bool(data["isolated"]),
            float(data["at"]),
            targets,
        )


def _health(value: object) -> Health:
    if value in ("up", "down", "unknown"):
        return value
    raise ValueError(f"not a health: {value!r}")


class Coordinator(Protocol):
    instance: str
    # called on the event loop when the leadership, the shared intents or the views change
    on_change: Callable[[ChangeKind], None] | None

    async def start(self) -> None:
        """Connect and start campaigning; returns without waiting to win."""

    async def aclose(self) -> None:
        """Stop; a leader revokes its lease so another instance takes over at once."""

    def is_leader(self) -> bool:
        """True while this instance may write DNS: it holds the leadership and its local lease
        deadline (minus a safety margin) has not passed, whether or not etcd answers."""

    def leader_name(self) -> str | None:
        """The instance that leads now, as last seen (None: nobody, or unknown)."""

    def fencing_token(self) -> int:
        """The token of this instance's current leadership (the leader key's revision);
        0 when it does not lead. A plan carries the token it was built under."""

    def token_valid(self, token: int) -> bool:
        """May a plan built under `token` still be sent? (checked before each provider call)"""

    def condition(self) -> str:
        """One line for `status`, `/readyz` and logs: `leader`, `follower of fo-b`,
        `no leader: etcd unreachable (…)`."""

    def load_intents(self) -> dict[str, Any]:
        """Pins, pauses, acks and flap counters per service, as last saved by any instance."""

    def save_intents(self, intents: dict[str, Any]) -> None:
        """Persist every service's intents. Blocking: called from a worker thread."""

    async def publish_view(self, view: View) -> None:
        """Publish this instance's view under its own lease (no-op when alone)."""

    def views(self) -> dict[str, View]:
        """The fresh views of the live instances, this one's included (empty when alone)."""
