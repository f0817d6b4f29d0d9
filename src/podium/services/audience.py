"""A call's audience: who is where, the stage the call state lists, and the coalesced count.

A call of ten thousand listeners must not cost ten thousand of anything per
join. Users without a member record all hold the same capabilities (the call
type's defaults for the phase), so they share one tier; only members and
blocked users can differ from it. `TierSplit` keeps that default and the
few exceptions, so the stage, the audience count and any participant's tier
are a query over the exceptions, never a walk over every participant.

Audience joins and leaves reach watchers only as `call.audience_updated`
`{audience_count}`, which `AudienceCounter` logs at most once per
`WINDOW_S` per call, and only when the count changed. The window is kept in
the call's row (`audience_at`, next to the count it sent), inside the call's
write lock, so it holds across nodes: the node that made a change flushes
it, and another node finding the count already sent writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from podium.bus.events import Audience
from podium.core.capabilities import Capability
from podium.core.policy import CallAccess, CallPhase, own_capabilities
from podium.core.stage import tier_of
from podium.protocol.events import EventType
from podium.protocol.stage import Tier
from podium.services.context import CallContext, Changes, Runtime, load_call, writing
from podium.services.periodic import run_every
from podium.services.views import participant_view
from podium.store.base import Transaction
from podium.store.records import CallRecord, ParticipantRecord

log = logging.getLogger("podium.audience")

#: At most one `call.audience_updated` per call per this many seconds.
WINDOW_S = 1.0
#: How often each node looks for calls whose count it changed.
CHECK_INTERVAL_S = 0.2
#: Opting in to the audience's individual joins and leaves needs this.
OPT_IN_CAPABILITY = Capability.UPDATE_CALL_PERMISSIONS


@dataclass(frozen=True)
class TierSplit:
    """Each user's tier, as the call's default tier and the users who differ from it."""

    default: Tier
    exceptions: frozenset[str]

    def tier(self, user_id: str) -> Tier:
        if user_id not in self.exceptions:
            return self.default
        return Tier.AUDIENCE if self.default is Tier.STAGE else Tier.STAGE

    @property
    def stage_filter(self) -> dict[str, Any]:
        """`only` / `excluding` arguments of the store that keep the stage."""
        if self.default is Tier.STAGE:
            return {"excluding": self.exceptions}
        return {"only": self.exceptions}

    @property
    def audience_filter(self) -> dict[str, Any]:
        if self.default is Tier.AUDIENCE:
            return {"excluding": self.exceptions}
        return {"only": self.exceptions}


def tier_split(access: CallAccess) -> TierSplit:
    """Members and blocked users are the only ones whose tier can differ from a non-member's."""
    default = tier_of(own_capabilities(access.call_type, access.phase, None, None))
    exceptions = frozenset(
        user_id
        for user_id in (*access.members, *access.blocked)
        if tier_of(access.capabilities_of(user_id)) is not default
    )
    return TierSplit(default, exceptions)


def tiered_view(participant: ParticipantRecord, tier: Tier) -> dict[str, Any]:
    return {**participant_view(participant), "tier": tier.value}


async def count_audience(tx: Transaction, call: CallRecord, split: TierSplit) -> int:
    """The audience of `call` as read in `tx`, with no scan of the participants.

    The database counts the joined participants (`participant_count`); only
    the few who differ from the default tier are counted row by row.
    """
    audience_by_default = split.default is Tier.AUDIENCE
    if not split.exceptions:
        return call.participant_count if audience_by_default else 0
    exceptions = await tx.count_participants(call.cid, only=split.exceptions)
    return call.participant_count - exceptions if audience_by_default else exceptions


def emit_presence(
    changes: Changes,
    kind: EventType,
    participant: ParticipantRecord,
    tier: Tier,
    **extra: Any,
) -> None:
    """A join or leave: stage ones to every watcher, audience ones to the opted-in and the user."""
    audience = (
        Audience.watchers()
        if tier is Tier.STAGE
        else Audience.opted_in(OPT_IN_CAPABILITY, participant.user_id)
    )
    changes.emit(kind, {"participant": tiered_view(participant, tier), **extra}, audience)


async def emit_moves(
    changes: Changes, cid: str, before: TierSplit, after: TierSplit, users: frozenset[str] | None
) -> None:
    """`call.participant_moved` for each joined participant whose tier changed.

    `users` names the users a change could have moved (a member's new grants);
    None means anyone (a phase change can move every non-member at once).
    """
    tx = changes.tx
    if users is None and before.default is not after.default:
        candidates = await tx.list_participants(cid)
    else:
        maybe = before.exceptions ^ after.exceptions if users is None else users
        candidates = await tx.list_participants(cid, only=maybe) if maybe else []
    for participant in candidates:
        old, new = before.tier(participant.user_id), after.tier(participant.user_id)
        if old is not new:
            changes.emit(
                EventType.PARTICIPANT_MOVED,
                {"participant": tiered_view(participant, new)},
                Audience.watchers(),
            )


async def split_of(tx: Transaction, ctx: CallContext) -> TierSplit:
    return tier_split(await ctx.access(tx))


class AudienceCounter:
    """Logs `call.audience_updated` for the calls whose audience this node changed.

    `Runtime.audience_changes` collects the calls (`writing` adds each call
    whose committed events may change its count); every `CHECK_INTERVAL_S`
    the counter takes them, and each call whose last count is at least
    `WINDOW_S` old gets the new count if it differs. A call still inside its
    window stays pending for a later check, so the last change of a burst is
    always sent, within about `WINDOW_S` of happening.
    """

    def __init__(self, runtime: Runtime, *, window_s: float = WINDOW_S) -> None:
        self.rt = runtime
        self.window = timedelta(seconds=window_s)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(
            run_every(CHECK_INTERVAL_S, self.step, "counting audiences"), name="podium-audience"
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def step(self) -> None:
        pending = self.rt.audience_changes
        for cid in sorted(pending):
            pending.discard(cid)
            try:
                if not await self.flush(cid):
                    pending.add(cid)
            except Exception:
                pending.add(cid)
                raise

    async def flush(self, cid: str) -> bool:
        """Log the call's count if it changed and its window is over; False: try again later."""
        async with writing(self.rt, cid) as changes:
            tx = changes.tx
            call = await tx.get_call(cid)
            if call is None or call.phase is CallPhase.ENDED:
                return True
            now = changes.now
            if call.audience_at is not None and now - call.audience_at < self.window:
                return False
            ctx = await load_call(tx, cid)
            count = await count_audience(tx, ctx.call, await split_of(tx, ctx))
            if count == call.audience_count:
                return True
            await tx.update_call(cid, updated_at=call.updated_at, audience=(count, now))
            changes.emit(EventType.AUDIENCE_UPDATED, {"audience_count": count}, Audience.watchers())
        return True
