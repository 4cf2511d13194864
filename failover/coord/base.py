"""The coordination seam (HA.md): leadership, fencing and shared intents behind one interface."""

from __future__ import annotations

from typing import Any, Protocol


class Coordinator(Protocol):
    instance: str

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def is_leader(self) -> bool:
        """True while this instance may write DNS (checked before every write)."""

    def leader_name(self) -> str | None: ...

    def fencing_token(self) -> int:
        """Monotonic token of the current leadership; a plan built under an older one is stale."""

    def load_intents(self) -> dict[str, Any]:
        """Pins, pauses and acks per service, as saved by `save_intents`."""

    def save_intents(self, intents: dict[str, Any]) -> None: ...
