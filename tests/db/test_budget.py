"""The hot path's admission (hub.db.budget): at most the pool's size of hot units at
once, and hot units plus the other pool's checked-out connections within size +
overflow; past that a unit waits, then fails as a pool would (503 database_busy)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import exc as sa_exc

from hub.db.budget import ConnectionBudget
from hub.db.engine import busy_reason


def test_at_most_size_units_run_and_a_waiter_goes_in_when_one_leaves() -> None:
    async def scenario() -> list[str]:
        budget = ConnectionBudget(size=2, limit=30, timeout=30, others_in_use=lambda: 0)
        order: list[str] = []
        release = asyncio.Event()

        async def unit(name: str) -> None:
            async with budget:
                order.append(f"in {name}")
                assert budget.admitted <= 2
                if name != "c":
                    await release.wait()
                order.append(f"out {name}")

        tasks = [asyncio.create_task(unit(n)) for n in "abc"]
        while len(order) < 2:
            await asyncio.sleep(0)
        assert order == ["in a", "in b"]  # c waits: the pool's size is taken
        release.set()
        await asyncio.gather(*tasks)
        return order

    order = asyncio.run(scenario())
    assert order.index("in c") > min(order.index("out a"), order.index("out b"))


def test_the_other_pools_connections_count_against_the_limit() -> None:
    held = [3]

    async def scenario() -> None:
        budget = ConnectionBudget(size=5, limit=3, timeout=0.05, others_in_use=lambda: held[0])
        with pytest.raises(sa_exc.TimeoutError) as err:
            async with budget:
                pass
        assert busy_reason(err.value) == "database_busy"
        held[0] = 2  # one given back: there is room again
        async with budget:
            assert budget.admitted == 1
        assert budget.admitted == 0

    asyncio.run(scenario())
