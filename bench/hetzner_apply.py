"""How long does a mass failover take through the Hetzner Cloud API, and what bounds it?

The hetzner provider sets each RRSet with its own API call and waits for each action (the API
has no batch endpoint for RRSets), all through the synchronous hcloud SDK in the provider's
thread pool of `max_concurrency`. Against the local fake API (tests/providers/fake_hetzner.py)
with a fixed answer latency, one `apply` of N changed RRSets is timed for several
`max_concurrency` values, with the requests it took: a listing of the zone (50 RRSets a page),
then per RRSet one set_records (and one change_ttl when the TTL changes) and one poll of each
action.

    python bench/hetzner_apply.py [--records 200] [--latency 0.03] [--concurrency 1 4 8 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from failover.config.types import HetznerProviderConfig, RetryConfig, Secret
from failover.model import Change, RecordKey, RecordType
from failover.providers.hetzner import HetznerProvider
from tests.providers.fake_hetzner import FakeHetzner, ThreadedFake

TOKEN = "bench-token"
ZONE = "bench.test"


async def trial(url: str, records: int, concurrency: int, ttl: int) -> float:
    config = HetznerProviderConfig(
        "hz",
        api_endpoint=url,
        token=Secret(TOKEN),
        max_concurrency=concurrency,
        timeout=30.0,
        retry=RetryConfig(attempts=3, initial=0.05, deadline=60.0),
    )
    provider = HetznerProvider(config, [ZONE])
    provider.poll_initial = 0.05
    await provider.start()
    try:
        changes = [
            Change(RecordKey("hz", ZONE, f"s{n}.{ZONE}", RecordType.A), ttl, None, ("192.0.2.2",))
            for n in range(records)
        ]
        started = time.perf_counter()
        await provider.apply(changes)
        return time.perf_counter() - started
    finally:
        await provider.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.03, help="seconds per API answer")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    args = parser.parse_args()
    print(f"{args.records} RRSets switched in one apply, API latency {args.latency * 1000:.0f} ms")
    print(f"{'max_concurrency':>15}  {'values only':>12}  {'+ ttl':>12}  requests/RRSet")
    for concurrency in args.concurrency:
        times = []
        per_rrset = []
        for ttl in (300, 60):  # the second round changes values and TTL: one more action
            fake = FakeHetzner(TOKEN, running_polls=1, updating_polls=0, latency=args.latency)
            fake.add_zone(ZONE)
            for n in range(args.records):
                fake.put(ZONE, f"s{n}", "A", ["192.0.2.1"], ttl=300)
            api = ThreadedFake(fake).start()
            try:
                times.append(asyncio.run(trial(fake.url, args.records, concurrency, ttl)))
                per_rrset.append(api.run(lambda f=fake: len(f.seen)) / args.records)
            finally:
                api.close()
        print(
            f"{concurrency:>15}  {times[0]:>11.2f}s  {times[1]:>11.2f}s"
            f"  {per_rrset[0]:.1f} / {per_rrset[1]:.1f}"
        )


if __name__ == "__main__":
    main()
