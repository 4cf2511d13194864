"""The provider peers of a run: a real BIND, or moto behind a counting proxy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.mass.config import bind_block, route53_block, service_name, values
from bench.mass_peers import BENCH_ZONE, BenchBind, MotoPeer


class Peer:
    """What the run needs from a provider's peer: a config block, call counters, a poll of
    "every new value is there", and a full read-back."""

    name = ""

    def block(self, workdir: Path) -> str:
        raise NotImplementedError

    def counters(self) -> dict[str, Any]:
        raise NotImplementedError

    def delta(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def changed_at(self, expected_serial_bumps: int | None = None) -> float | None:
        raise NotImplementedError

    def read_back(self, n: int, which: int) -> str:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class BindPeer(Peer):
    name = "bind"

    def __init__(self, workdir: Path, zone_transfer: bool = True) -> None:
        self.server = BenchBind(workdir / "bind").start()
        self.zone_transfer = zone_transfer
        self.own_queries = 0  # SOA polls and read-backs by this bench, not the daemon's
        self._serial = self._poll_serial()
        self._quiet_since = time.time()
        self._changed = time.time()

    def block(self, workdir: Path) -> str:
        return bind_block(self.server, workdir, self.zone_transfer)

    def _poll_serial(self) -> int:
        self.own_queries += 1
        return self.server.soa_serial()

    def counters(self) -> dict[str, Any]:
        stats = self.server.stats()
        return {
            "serial": self._poll_serial(),
            "UPDATE": stats.get("opcodes", {}).get("UPDATE", 0),
            "QUERY": stats.get("opcodes", {}).get("QUERY", 0),
            "UpdateDone": stats.get("nsstats", {}).get("UpdateDone", 0),
            "UpdateFail": stats.get("nsstats", {}).get("UpdateFail", 0)
            + stats.get("nsstats", {}).get("UpdateRej", 0)
            + stats.get("nsstats", {}).get("UpdateBadPrereq", 0),
            "ReqTCP": stats.get("nsstats", {}).get("ReqTCP", 0),
            "own_queries": self.own_queries,
        }

    def delta(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        own = after["own_queries"] - before["own_queries"] - 1  # the counters() poll itself
        return {
            "UPDATE msgs": after["UPDATE"] - before["UPDATE"],
            "updates done": after["UpdateDone"] - before["UpdateDone"],
            "updates failed": after["UpdateFail"] - before["UpdateFail"],
            "SOA serial +": after["serial"] - before["serial"],
            "daemon QUERY msgs": after["QUERY"] - before["QUERY"] - own,
            "requests over TCP": after["ReqTCP"] - before["ReqTCP"],
        }

    def track(self) -> None:
        """Poll the SOA serial (cheap, one UDP query): remember when it last moved."""
        serial = self._poll_serial()
        if serial != self._serial:
            self._serial = serial
            self._changed = time.time()

    def changed_at(self, expected_serial_bumps: int | None = None) -> float | None:
        return self._changed

    def read_back(self, n: int, which: int) -> str:
        names = [f"{service_name(i)}.{BENCH_ZONE}" for i in range(1, n + 1)]
        got = self.server.answers(names)
        self.own_queries += len(names)
        bad = [name for i, name in enumerate(names, 1) if got[name] != ([values(i)[which]], True)]
        if bad:
            return f"{len(bad)}/{n} names wrong, e.g. {bad[0]}: {got[bad[0]]}"
        return f"all {n} names answer the {'secondary' if which else 'primary'} value (AA)"

    def close(self) -> None:
        self.server.stop()


class MotoPeerAdapter(Peer):
    name = "route53"

    def __init__(self, moto: MotoPeer) -> None:
        self.moto = moto
        moto.reset()

    def block(self, workdir: Path) -> str:
        return route53_block(self.moto)

    def counters(self) -> dict[str, Any]:
        ops, sizes, _ = self.moto.counts.snapshot()
        return {"ops": ops, "sizes": sizes}

    def delta(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        ops = after["ops"] - before["ops"]
        sizes = after["sizes"][len(before["sizes"]) :]
        out: dict[str, Any] = {"HTTP requests": sum(ops.values())}
        out.update(sorted(ops.items()))
        out["changes per ChangeResourceRecordSets"] = sizes
        return out

    def track(self) -> None:
        return None

    def changed_at(self, expected_serial_bumps: int | None = None) -> float | None:
        return self.moto.counts.snapshot()[2] or None

    def read_back(self, n: int, which: int) -> str:
        records = self.moto.records()
        bad = [
            name
            for i in range(1, n + 1)
            if records.get(name := f"{service_name(i)}.{BENCH_ZONE}") != [values(i)[which]]
        ]
        if bad:
            return f"{len(bad)}/{n} record sets wrong, e.g. {bad[0]}: {records.get(bad[0])}"
        return f"all {n} record sets hold the {'secondary' if which else 'primary'} value"

    def close(self) -> None:
        return None
