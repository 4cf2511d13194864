"""The builtin provider's zone data file (`state_dir/builtin-NAME.json`): load, dump, save.

Why its own saver: a full state disk must not keep a dead target in DNS. When the disk refuses
a save, the provider serves the new answer anyway and this file saves the latest data later,
with backoff; its own lock orders the saves, so an older one never lands after a newer one.
Until then a restart would serve the data last saved (and the daemon would correct it), which
is why the failure is logged once and counted as a provider error of kind `state`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from failover.model import RecordSet, RecordType, canonical_values, normalize_name
from failover.store import Store, StoreCorruptError

log = logging.getLogger("failover.providers.builtin")

FILE_VERSION = 1
RETRY_FIRST, RETRY_MAX = 0.25, 2.0  # seconds between saves the disk refused


@dataclass
class Zone:
    """Stored data of one zone: SOA serial and the managed RRsets by (name, type)."""

    serial: int
    rrsets: dict[tuple[str, RecordType], RecordSet]

    def copy(self) -> Zone:
        return Zone(self.serial, dict(self.rrsets))


class ZoneFile:
    """One provider's data file. `save` never raises for the disk's sake: it says whether the
    data is on disk, and keeps trying in the background when it is not."""

    def __init__(self, store: Store, provider: str, on_error: Callable[[str], None]) -> None:
        self.store = store
        self.provider = provider
        self.name = f"builtin-{provider}.json"
        self._on_error = on_error
        self._lock = asyncio.Lock()
        self._unsaved: dict[str, Zone] | None = None  # newer than the file: the disk refused it
        self._saver: asyncio.Task[None] | None = None

    def load(self) -> dict[str, Zone]:
        """The saved zones ({} when absent); StoreCorruptError when unreadable."""
        raw = self.store.read_json(self.name)
        if raw is None:
            return {}
        try:
            if raw["version"] != FILE_VERSION:
                raise ValueError(f"unsupported version {raw['version']!r}")
            data: dict[str, Zone] = {}
            for zone, content in raw["zones"].items():
                rrsets: dict[tuple[str, RecordType], RecordSet] = {}
                for raw_name, by_type in content["records"].items():
                    name = normalize_name(raw_name)  # the file may have been edited by hand
                    for type_name, rrset in by_type.items():
                        rtype = RecordType(type_name)
                        ttl = rrset["ttl"]
                        if not isinstance(ttl, int):
                            raise ValueError(f"{name}/{type_name}: bad TTL {ttl!r}")
                        values = canonical_values(rtype, rrset["values"])
                        rrsets[(name, rtype)] = RecordSet(name, rtype, ttl, values)
                data[normalize_name(zone)] = Zone(int(content["serial"]), rrsets)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            path = self.store.state_dir / self.name
            raise StoreCorruptError(path, f"unexpected content: {exc!r}") from None
        return data

    @staticmethod
    def dump(data: dict[str, Zone]) -> dict[str, Any]:
        zones: dict[str, Any] = {}
        for zone, stored in sorted(data.items()):
            records: dict[str, dict[str, Any]] = {}
            for (name, rtype), rrset in sorted(stored.rrsets.items()):
                records.setdefault(name, {})[rtype.value] = {
                    "ttl": rrset.ttl,
                    "values": list(rrset.values),
                }
            zones[zone] = {"serial": stored.serial, "records": records}
        return {"version": FILE_VERSION, "zones": zones}

    async def save(self, data: dict[str, Zone]) -> bool:
        """Save `data` atomically; False when the disk refused it (it is saved later)."""
        async with self._lock:
            try:
                await asyncio.to_thread(self.store.write_json, self.name, self.dump(data))
            except OSError as exc:
                self._later(data, exc)
                return False
            self._unsaved = None
            return True

    def _later(self, data: dict[str, Zone], exc: OSError) -> None:
        if self._unsaved is None:
            log.error(
                "builtin provider %s: cannot save %s (%s); serving the new answer from memory "
                "and saving it once the disk accepts writes (a restart before then serves the "
                "data last saved, and the daemon corrects it)",
                self.provider,
                self.name,
                exc.strerror or exc,
            )
            self._on_error("state")
        self._unsaved = data
        if self._saver is None or self._saver.done():
            self._saver = asyncio.create_task(self._retry(), name=f"save-{self.provider}")

    async def _retry(self) -> None:
        delay = RETRY_FIRST
        while True:
            await asyncio.sleep(delay)
            if await self._save_pending():
                return
            delay = min(RETRY_MAX, delay * 2)

    async def _save_pending(self) -> bool:
        """Save what the disk refused before, if anything; False while it still refuses."""
        async with self._lock:
            data = self._unsaved
            if data is None:
                return True
            try:
                await asyncio.to_thread(self.store.write_json, self.name, self.dump(data))
            except OSError:
                return False
            self._unsaved = None
        log.warning("builtin provider %s: %s saved again", self.provider, self.name)
        return True

    async def aclose(self) -> None:
        """Stop retrying; one last attempt, and say so when the file stays behind."""
        if self._saver is not None:
            self._saver.cancel()
            await asyncio.gather(self._saver, return_exceptions=True)
        if not await self._save_pending():
            log.error(
                "builtin provider %s: stopping with %s unsaved: the next start serves the data "
                "last saved until the daemon re-applies its decision",
                self.provider,
                self.name,
            )
