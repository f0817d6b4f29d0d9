"""`HeapKeeper`: live objects are frozen out of full collections; a sweep still frees cycles."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from podium.services.heap import HeapKeeper


class _Node:
    def __init__(self) -> None:
        self.me = self


@asynccontextmanager
async def _keeper(sweep_interval_s: float) -> AsyncIterator[HeapKeeper]:
    keeper = HeapKeeper(freeze_interval_s=0.01, sweep_interval_s=sweep_interval_s)
    await keeper.start()
    try:
        yield keeper
    finally:
        await keeper.close()


async def _cycle_dropped_after_a_freeze() -> weakref.ref[_Node]:
    """A reference cycle that lived across a freeze and is garbage now."""
    cyclic = _Node()
    gone = weakref.ref(cyclic)
    await asyncio.sleep(0.05)
    del cyclic
    return gone


async def test_frozen_objects_are_skipped_until_a_sweep_reclaims_their_cycles() -> None:
    async with _keeper(sweep_interval_s=3600) as keeper:
        gone = await _cycle_dropped_after_a_freeze()
        assert gc.get_freeze_count() > 0
        gc.collect()
        assert gone() is not None, "frozen: a full collection does not visit it"
        keeper.sweep()
        assert gone() is None
    assert gc.get_freeze_count() == 0


async def test_the_periodic_sweep_frees_cycles_made_after_a_freeze() -> None:
    async with _keeper(sweep_interval_s=0.02):
        gone = await _cycle_dropped_after_a_freeze()
        for _ in range(100):
            if gone() is None:
                break
            await asyncio.sleep(0.01)
        assert gone() is None
