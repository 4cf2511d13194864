"""The value types every configuration section uses: a secret that never prints, a host:port."""

from __future__ import annotations

from dataclasses import dataclass


class Secret:
    """A credential read from `${ENV}` or `${file:…}`; it never prints its value.

    `clear_text` records that the file held the value itself rather than a `${…}` reference,
    so `failover audit` can flag it; it is not part of equality.
    """

    __slots__ = ("_value", "clear_text")

    def __init__(self, value: str, *, clear_text: bool = False) -> None:
        self._value = value
        self.clear_text = clear_text

    def reveal(self) -> str:
        """The clear value, for the one call that sends it to a provider."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
