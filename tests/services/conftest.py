"""Fixtures of the service tests: a runtime on a real SQLite store and the in-process bus."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from podium.bus.memory import InProcessBus
from podium.services.context import Runtime
from podium.store.sql import SqlStore


@pytest.fixture
async def runtime(sqlite_url: str) -> AsyncIterator[Runtime]:
    store = SqlStore(sqlite_url)
    await store.open()
    bus = InProcessBus()
    await bus.start()
    try:
        yield Runtime(store, bus)
    finally:
        await bus.close()
        await store.close()
