"""Presence follows connections: a participant nobody has seen for `grace_s` leaves the call.

A participant is *seen* while one of its WebSocket connections, on any node,
watches the call. Each node writes `seen_at` for the participants it sees
(once per `grace_s / 3`, at once for a new watcher, and once more when the
last watcher goes), and every node sweeps the participants unseen for longer
than `grace_s`: they leave with `call.participant_left` `{"reason":
"disconnected"}`, which also ends their media session. Because `seen_at` is
stored, this holds across nodes and restarts: a node that has just started
waits `grace_s` before it sweeps, so clients have time to come back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from podium.core.stage import tier_of
from podium.protocol.events import EventType, LeftReason
from podium.services.audience import emit_presence
from podium.services.context import Runtime, load_call, writing
from podium.services.periodic import run_every

Key = tuple[str, str]
#: Participants whose `seen_at` one write updates. With 10,000 listeners a
#: thousand come due each second, and after a ramp many at once; in
#: transactions this size, the loop serves requests between them.
TOUCH_BATCH = 200


class Watchers(Protocol):
    """Who watches calls on this node (the `EventHub`)."""

    def watching_users(self) -> set[Key]: ...


class PresenceService:
    def __init__(
        self,
        runtime: Runtime,
        hub: Watchers,
        *,
        grace_s: float = 30.0,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rt = runtime
        self.hub = hub
        self.grace_s = grace_s
        self.interval_s = min(interval_s, grace_s / 3)
        self.clock = clock
        self._started = clock()
        #: When this node last wrote `seen_at` of each participant it sees.
        self._touched: dict[Key, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._started = self.clock()
        self._task = asyncio.create_task(
            run_every(self.interval_s, self.step, "presence"), name="podium-presence"
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def touch(self) -> None:
        """Write `seen_at` of the participants this node sees that are due, and of those gone."""
        now = self.clock()
        seen = self.hub.watching_users()
        due = [k for k in seen if now - self._touched.get(k, -self.grace_s) >= self.grace_s / 3]
        gone = [k for k in self._touched if k not in seen]
        keys = due + gone
        for start in range(0, len(keys), TOUCH_BATCH):
            if start:
                await asyncio.sleep(0)
            batch = keys[start : start + TOUCH_BATCH]
            async with self.rt.store.write() as tx:
                await tx.touch_participants(batch, self.rt.clock())
            for key in batch:
                if key in seen:
                    self._touched[key] = now
                else:
                    self._touched.pop(key, None)

    async def sweep(self) -> int:
        """Make participants unseen for `grace_s` leave their calls; returns how many left."""
        if self.clock() - self._started < self.grace_s:
            return 0
        cutoff = self.rt.clock() - timedelta(seconds=self.grace_s)
        async with self.rt.store.read() as tx:
            stale = await tx.stale_participants(cutoff)
        left = 0
        for candidate in stale:
            cid = candidate.call_cid
            async with writing(self.rt, cid) as changes:
                participant = await changes.tx.get_participant(cid, candidate.user_id)
                if participant is None or participant.seen_at >= cutoff:
                    continue
                ctx = await load_call(changes.tx, cid)
                tier = tier_of(await ctx.user_capabilities(changes.tx, participant.user_id))
                await changes.tx.delete_participant(cid, participant.user_id)
                emit_presence(
                    changes,
                    EventType.PARTICIPANT_LEFT,
                    participant,
                    tier,
                    reason=LeftReason.DISCONNECTED,
                )
                left += 1
        return left

    async def step(self) -> None:
        await self.touch()
        await self.sweep()
