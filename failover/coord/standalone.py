"""One instance alone: always the leader; intents live in the local state file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from failover import intents
from failover.coord.base import ChangeKind, View
from failover.store import Store


class StandaloneCoordinator:
    """The default coordinator. Intents persist through the store so they survive restarts."""

    def __init__(self, instance: str, store: Store) -> None:
        self.instance = instance
        self._store = store
        self.on_change: Callable[[ChangeKind], None] | None = None

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def is_leader(self) -> bool:
        return True

    def leader_name(self) -> str | None:
        return self.instance

    def fencing_token(self) -> int:
        return 1

    def token_valid(self, token: int) -> bool:
        return token == 1

    def condition(self) -> str:
        return "leader (standalone)"

    def load_intents(self) -> dict[str, Any]:
        """Raises StoreCorruptError (StoreSchemaError) rather than starting without the pins."""
        return intents.saved_services(self._store.load_state(), self._store.state_path)

    def save_intents(self, saved: dict[str, Any]) -> None:
        self._store.save_services_state(intents.STATE_VERSION, saved)

    async def publish_view(self, view: View) -> None:
        return None

    def views(self) -> dict[str, View]:
        return {}
