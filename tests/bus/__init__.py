"""Tests of the event buses, with helpers shared by the in-process and Redis suites."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from podium.bus.events import Audience, CallEvent

WAIT = 5.0
"""Seconds any test waits for an event before failing."""


def make_event(seq: int, call_cid: str = "call-1") -> CallEvent:
    return CallEvent(
        call_cid=call_cid,
        seq=seq,
        type="test.ping",
        created_at=datetime.now(UTC),
        payload={"n": seq},
        audience=Audience.watchers(),
    )


class Collector:
    """A handler that records events and lets a test wait, bounded, for them."""

    def __init__(self) -> None:
        self.events: list[CallEvent] = []
        self._changed = asyncio.Event()

    async def __call__(self, event: CallEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def seqs(self, call_cid: str = "call-1") -> list[int]:
        return [e.seq for e in self.events if e.call_cid == call_cid]

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()
