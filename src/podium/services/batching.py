"""Group commit: requests on one key that arrive together are handled in one go.

A join costs about ten statements whatever else happens in the call, and at
10,000 listeners joins arrive by the hundred per second, all on the same
call and all queued on that call's write lock. `KeyedBatcher` lets each
one wait for the batch in progress on its key to end, then hands every
request that queued meanwhile to one `handle(key, items)`: one transaction,
one read of the call, one insert for all, instead of one of each per request.
A request alone on its key is handled at once, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class KeyedBatcher(Generic[T, R]):
    """`await submit(key, item)` → the item's result from `handle(key, batch)`.

    `handle` returns one outcome per item, in order: a result, or an exception
    that only that item's caller receives. An exception raised by `handle`
    itself reaches every caller of the batch. At most `max_batch` items go to
    one call of `handle`; items of other keys never wait for this key's.
    """

    def __init__(
        self,
        handle: Callable[[str, list[T]], Awaitable[Sequence[R | Exception]]],
        *,
        max_batch: int = 64,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._handle = handle
        self._max = max_batch
        self._queues: dict[str, list[tuple[T, asyncio.Future[R]]]] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}

    async def submit(self, key: str, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, []).append((item, future))
        if key not in self._drains:
            self._drains[key] = asyncio.create_task(self._drain(key), name=f"podium-batch-{key}")
        return await future

    async def _drain(self, key: str) -> None:
        try:
            while queue := self._queues.get(key):
                # Callers that gave up (a closed HTTP connection) are not handled.
                batch = [(item, future) for item, future in queue[: self._max] if not future.done()]
                del queue[: self._max]
                if batch:
                    await self._run(key, batch)
        finally:
            del self._drains[key]
            for _, future in self._queues.pop(key, []):
                future.cancel()

    async def _run(self, key: str, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes = await self._handle(key, [item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        if len(outcomes) != len(batch):
            error = RuntimeError(f"batch of {len(batch)} got {len(outcomes)} outcomes")
            outcomes = [error] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
