"""KeyedBatcher: what queues on a key while its batch runs goes to the next batch, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from podium.services.batching import KeyedBatcher


class Recorder:
    """A handler that records its batches and waits on `gate` while one runs."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def handle(self, key: str, items: list[int]) -> Sequence[int | Exception]:
        self.batches.append((key, items))
        await self.gate.wait()
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_a_request_alone_is_handled_at_once() -> None:
    recorder = Recorder()
    batcher = KeyedBatcher(recorder.handle)
    assert await batcher.submit("a", 2) == 20
    assert recorder.batches == [("a", [2])]


async def test_requests_that_queue_meanwhile_form_one_batch_and_each_gets_its_outcome() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher = KeyedBatcher(recorder.handle)
    first = asyncio.create_task(batcher.submit("a", 0))
    await asyncio.sleep(0.01)  # the first batch runs, and waits on the gate
    rest = [asyncio.create_task(batcher.submit("a", i)) for i in (2, 3, 4)]
    other = asyncio.create_task(batcher.submit("b", 6))
    await asyncio.sleep(0.01)
    assert recorder.batches == [("a", [0]), ("b", [6])], "another key does not wait"
    recorder.gate.set()
    assert await first == 0
    assert await other == 60
    results = await asyncio.gather(*rest, return_exceptions=True)
    assert results[0] == 20 and results[2] == 40
    assert isinstance(results[1], ValueError), "an item's error reaches only its caller"
    assert recorder.batches[2:] == [("a", [2, 3, 4])]


async def test_batches_are_capped() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher = KeyedBatcher(recorder.handle, max_batch=2)
    tasks = [asyncio.create_task(batcher.submit("a", i * 2)) for i in range(5)]
    await asyncio.sleep(0.01)
    recorder.gate.set()
    assert await asyncio.gather(*tasks) == [0, 20, 40, 60, 80]
    assert [items for _, items in recorder.batches] == [[0, 2], [4, 6], [8]]


async def test_an_error_of_the_handler_reaches_every_caller_of_the_batch() -> None:
    async def broken(key: str, items: list[int]) -> Sequence[int | Exception]:
        raise LookupError(key)

    batcher: KeyedBatcher[int, int] = KeyedBatcher(broken)
    tasks = [asyncio.create_task(batcher.submit("a", i)) for i in range(3)]
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        assert isinstance(result, LookupError)
    with pytest.raises(LookupError):
        await batcher.submit("a", 1)


async def test_a_caller_that_gave_up_is_not_handled() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher = KeyedBatcher(recorder.handle)
    first = asyncio.create_task(batcher.submit("a", 0))
    await asyncio.sleep(0.01)
    gone = asyncio.create_task(batcher.submit("a", 2))
    kept = asyncio.create_task(batcher.submit("a", 4))
    await asyncio.sleep(0.01)
    gone.cancel()
    recorder.gate.set()
    assert (await first, await kept) == (0, 40)
    assert recorder.batches == [("a", [0]), ("a", [4])]


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        KeyedBatcher(Recorder().handle, max_batch=0)
