"""`HeapKeeper`: live objects are frozen out of full collections; a sweep still frees cycles."""

from __future__ import annotations

import asyncio
import gc
import weakref

from podium.services.heap import HeapKeeper


class _Node:
    def __init__(self) -> None:
        self.me = self


async def test_frozen_objects_are_skipped_until_a_sweep_reclaims_their_cycles() -> None:
    keeper = HeapKeeper(freeze_interval_s=0.01, sweep_interval_s=3600)
    await keeper.start()
    try:
        cyclic = _Node()
        gone = weakref.ref(cyclic)
        await asyncio.sleep(0.05)
        assert gc.get_freeze_count() > 0
        del cyclic
        gc.collect()
        assert gone() is not None, "frozen: a full collection does not visit it"
        keeper.sweep()
        assert gone() is None
    finally:
        await keeper.close()
    assert gc.get_freeze_count() == 0


async def test_the_periodic_sweep_frees_cycles_made_after_a_freeze() -> None:
    keeper = HeapKeeper(freeze_interval_s=0.01, sweep_interval_s=0.02)
    await keeper.start()
    try:
        cyclic = _Node()
        gone = weakref.ref(cyclic)
        await asyncio.sleep(0.03)
        del cyclic
        for _ in range(100):
            if gone() is None:
                break
            await asyncio.sleep(0.01)
        assert gone() is None
    finally:
        await keeper.close()
