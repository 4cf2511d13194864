"""How long the cloudflare provider takes to flip N records of one zone, and in how many API
calls, at the Free plan's batch limit (200) and a paid plan's (3,500), against the local fake
of the Cloudflare API (in its own thread, on loopback).

    PYTHONPATH=. .venv/bin/python bench/cloudflare_batch.py [--records 1000] [--rounds 3]

Prints, per batch size: the calls of one flip (listing pages, batch calls) and the median
wall time of a flip (read the zone, send the batches). The fake does little work, so this
measures the provider and the SDK, not Cloudflare.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from failover.config.types import CloudflareProviderConfig, RetryConfig, Secret
from failover.model import Change, RecordKey, RecordType
from failover.providers.cloudflare import CloudflareProvider
from tests.providers.fake_cloudflare import FakeCloudflare, ThreadedFake

TOKEN = "bench-token"
ZONE = "bench.test"


async def flip_rounds(url: str, records: int, batch_size: int, rounds: int) -> list[float]:
    config = CloudflareProviderConfig(
        "cf",
        base_url=url,
        api_token=Secret(TOKEN),
        batch_size=batch_size,
        page_size=1000,
        timeout=30.0,
        retry=RetryConfig(attempts=1),
    )
    provider = CloudflareProvider(config, [ZONE], environ={})
    await provider.start()
    keys = [RecordKey("cf", ZONE, f"r{i}.{ZONE}", RecordType.A) for i in range(records)]
    values = [("192.0.2.1",), ("198.51.100.1",)]
    times = []
    try:
        await provider.apply([Change(k, 60, None, values[0]) for k in keys])
        for round_ in range(rounds):
            before, after = values[round_ % 2], values[(round_ + 1) % 2]
            started = time.perf_counter()
            await provider.apply([Change(k, 60, before, after) for k in keys])
            times.append(time.perf_counter() - started)
    finally:
        await provider.aclose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.records} A records in one zone, one flip = one apply of every record")
    print(f"{'batch_size':>10} {'list calls':>10} {'batch calls':>11} {'median flip':>12}")
    for size in (200, 3500):
        fake = FakeCloudflare(TOKEN, batch_limit=size)
        fake.add_zone(ZONE)
        api = ThreadedFake(fake).start()
        try:
            times = asyncio.run(flip_rounds(fake.url, args.records, size, args.rounds))
            lists = len(fake.calls("GET", "/dns_records")) // (args.rounds + 1)
            batches = len(fake.calls("POST", "/batch")) // (args.rounds + 1)
        finally:
            api.close()
        print(f"{size:>10} {lists:>10} {batches:>11} {statistics.median(times) * 1000:>10.0f}ms")


if __name__ == "__main__":
    main()
