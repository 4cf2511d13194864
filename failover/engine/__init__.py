"""The engine: one actor that decides (actor), reads records back (reader), makes changes
(switcher) and carries out operator commands (commands), sharing one context and one lock."""

from failover.engine.actor import Engine
from failover.engine.context import CommandError
from failover.engine.inputs import CANARY

__all__ = ["CANARY", "CommandError", "Engine"]
