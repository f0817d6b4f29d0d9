"""Keeping Python's cycle collector from stopping the server for a second at a time.

A full collection (generation 2) visits every object the collector tracks.
With 10,000 listeners connected that is a few million objects: measured with
`gc.callbacks` during `bench/audience.py` on the development machine, full
collections took 0.5-1.4 s each and came every 5-15 s while the audience was
joining, and every frame to every listener waited that long.

What a server holds for long (connections, feeds, sessions) is freed by
reference counting when it goes; those full collections found only a few
hundred cyclic objects each. So `HeapKeeper` freezes (`gc.freeze`) what is
alive every `freeze_interval_s`: frozen objects are not visited again, and a
full collection costs only what appeared since the last freeze. Cyclic
garbage among frozen objects is reclaimed every `sweep_interval_s`, when
everything is unfrozen and collected once: one full pause per sweep instead
of one every few seconds (its length is `podium_gc_sweep_seconds`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

from podium.services import metrics

log = logging.getLogger("podium.heap")

FREEZE_INTERVAL_S = 2.0
SWEEP_INTERVAL_S = 600.0


class HeapKeeper:
    def __init__(
        self,
        *,
        freeze_interval_s: float = FREEZE_INTERVAL_S,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
    ) -> None:
        self.freeze_interval_s = freeze_interval_s
        self.sweep_interval_s = sweep_interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.sweep()
        self._task = asyncio.create_task(self._run(), name="podium-heap")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        gc.unfreeze()

    def sweep(self) -> None:
        """Unfreeze, collect everything once, freeze what is left."""
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        took = time.perf_counter() - started
        metrics.GC_SWEEP_SECONDS.set(took)
        log.debug("heap sweep: %d unreachable objects, %.3f s", found, took)

    async def _run(self) -> None:
        last_sweep = time.monotonic()
        while True:
            await asyncio.sleep(self.freeze_interval_s)
            if time.monotonic() - last_sweep >= self.sweep_interval_s:
                self.sweep()
                last_sweep = time.monotonic()
            else:
                gc.freeze()
