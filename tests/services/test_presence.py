"""PresenceService.touch on a real SQLite store: many participants, written in small batches."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from podium.core.policy import CallPhase
from podium.services.context import Runtime
from podium.services.presence import TOUCH_BATCH, PresenceService
from podium.store.records import CallRecord, ParticipantRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CID = "audio_room:big"


class Watching:
    """The one part of the hub presence reads: who watches a call on this node."""

    def __init__(self, keys: set[tuple[str, str]]) -> None:
        self.keys = keys

    def watching_users(self) -> set[tuple[str, str]]:
        return set(self.keys)


async def test_many_due_participants_are_written_in_batches_with_the_loop_free_between(
    runtime: Runtime,
) -> None:
    count = TOUCH_BATCH * 2 + 50
    users = [f"u{i:04d}" for i in range(count)]
    async with runtime.store.write(CID) as tx:
        await tx.insert_call(CallRecord(CID, "audio_room", "big", CallPhase.LIVE, "h", T0, T0))
        await tx.insert_participants([ParticipantRecord(CID, u, None, None, T0, T0) for u in users])
    later = T0 + timedelta(seconds=5)
    runtime.clock = lambda: later
    hub = Watching({(CID, u) for u in users})
    presence = PresenceService(runtime, hub, clock=lambda: 100.0)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    await presence.touch()
    task.cancel()
    assert ticks - before >= 2, "other tasks ran between the batches"
    async with runtime.store.read() as tx:
        seen = {p.seen_at for p in await tx.list_participants(CID)}
    assert seen == {later}, "every participant was written"

    # the ones who stopped watching get a last write, then are forgotten
    hub.keys = {(CID, u) for u in users[:10]}
    runtime.clock = lambda: later + timedelta(seconds=1)
    await presence.touch()
    async with runtime.store.read() as tx:
        by_user = {p.user_id: p.seen_at for p in await tx.list_participants(CID)}
    assert {u for u, t in by_user.items() if t > later} == set(users[10:])
    assert set(presence._touched) == {(CID, u) for u in users[:10]}
