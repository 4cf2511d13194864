"""`type: filedns`: a DNS provider plugin that keeps its record sets in a JSON file.

It uses only the public provider interface (docs/providers.md): `create(config, zones, store)`
gets a `PluginProviderConfig` whose unknown keys are `config.options` (`path`, and `token`,
which arrives as a `Secret` because it was written `${…}`); the shared rules of
`failover.providers.base` validate keys and values; errors are `ProviderError`s with a kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from failover.config.types import PluginProviderConfig, Secret
from failover.model import Change, RecordKey, RecordSet, canonical_values
from failover.providers.base import ProviderError, Receipt, check_key, check_values


class FileDnsProvider:
    def __init__(self, config: PluginProviderConfig, zones: Iterable[str]) -> None:
        self.name = config.name
        self.location = config.location
        self.on_error: Callable[[str], None] = lambda kind: None
        self._zones = frozenset(zones)
        path, token = config.options.get("path"), config.options.get("token")
        if not isinstance(path, str):
            raise ProviderError(f"filedns {self.name}: `path` (a file) is required", kind="config")
        if not isinstance(token, Secret):
            raise ProviderError(f"filedns {self.name}: `token` must be a ${{…}}", kind="config")
        self._path = Path(path)
        self._token = token

    async def start(self) -> None:
        if not self._path.exists():
            self._path.write_text("{}")

    async def aclose(self) -> None:
        pass

    def _load(self) -> dict[str, list[object]]:
        data: dict[str, list[object]] = json.loads(self._path.read_text())
        return data

    async def read(self, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordSet | None]:
        data = self._load()
        out: dict[RecordKey, RecordSet | None] = {}
        for key in keys:
            _, name = check_key(self.name, key, self._zones)
            found = data.get(f"{name}/{key.type}")
            if found is None:
                out[key] = None
            else:
                ttl, values = found
                assert isinstance(ttl, int) and isinstance(values, list)
                out[key] = RecordSet(key.name, key.type, ttl, canonical_values(key.type, values))
        return out

    async def apply(self, changes: Sequence[Change]) -> Receipt:
        data = self._load()
        for change in changes:
            zone, name = check_key(self.name, change.key, self._zones)
            data[f"{name}/{change.key.type}"] = [change.ttl, list(check_values(change, zone))]
        self._path.write_text(json.dumps(data, sort_keys=True))
        return Receipt(provider=self.name)

    async def wait_in_sync(self, receipt: Receipt, timeout: float) -> None:
        pass


def create(config: PluginProviderConfig, zones: Iterable[str], store: object) -> FileDnsProvider:
    return FileDnsProvider(config, zones)
