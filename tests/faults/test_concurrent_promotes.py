"""Concurrent operator commands are serialized and truthful.

Before: 50 concurrent promotes of one service to alternating targets all answered 200, and five
parallel CLI promotes all printed "DNS now serves it" although only the last pin held. Now a
promote superseded by another before its change is carried out answers 409 `superseded`,
naming the winner, and the CLI exits 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from failover.client import AdminClient
from tests.support import Lab

PRIMARY, SECONDARY = "127.0.0.71", "127.0.0.72"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with Lab(tmp_path, addresses=(PRIMARY, SECONDARY)) as lab:
        lab.start()
        lab.wait_answer(PRIMARY)
        lab.wait_health("secondary", "up")
        yield lab


def test_fifty_concurrent_promotes_answer_truthfully(lab: Lab) -> None:
    async def promote(i: int) -> tuple[int, Any]:
        target = ("primary", "secondary")[i % 2]
        body = {"target": target, "reason": f"race {i}", "actor": "test", "force": False}
        client = AdminClient(socket=lab.socket)
        return await client.call("POST", "/v1/services/shop/promote", body)

    async def all_of_them() -> list[tuple[int, Any]]:
        return await asyncio.gather(*(promote(i) for i in range(50)))

    answers = asyncio.run(all_of_them())
    won = [body for status, body in answers if status == 200]
    lost = [body for status, body in answers if status == 409]
    assert len(won) + len(lost) == 50, answers
    assert lost, "every promote claimed success although they superseded each other"
    assert all(b["error"] == "superseded" and b["winner"] in ("primary", "secondary") for b in lost)
    pin = lab.service()["pin"]
    final = {"primary": PRIMARY, "secondary": SECONDARY}[pin["target"]]
    assert lab.answer() == [final]
    assert any(b["target"] == pin["target"] for b in won)  # the pin in force was answered 200
