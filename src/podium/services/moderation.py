"""Moderation: force-mute, block and unblock.

Blocking removes the user from the call's participants, cancels their pending
requests and leaves them with no capability until unblocked.
"""

from __future__ import annotations

from podium.bus.events import Audience
from podium.core.capabilities import Capability
from podium.core.stage import tier_of
from podium.protocol.events import EventType, LeftReason, PermissionsReason
from podium.protocol.media import MuteKind
from podium.services.audience import emit_presence
from podium.services.context import Runtime, load_call, writing
from podium.services.grants import (
    end_pending_requests,
    notify_capabilities,
)
from podium.services.identity import Identity
from podium.store.records import BlockRecord


class ModerationService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def mute(
        self, identity: Identity, cid: str, user_ids: list[str], kinds: list[MuteKind]
    ) -> None:
        """Tell everyone (and, through them, the media server) to mute these sources."""
        async with writing(self.rt, cid) as changes:
            ctx = await load_call(changes.tx, cid)
            ctx.require_not_ended()
            await ctx.require(changes.tx, identity, Capability.MUTE_USERS)
            for user_id in dict.fromkeys(user_ids):
                changes.emit(
                    EventType.USER_MUTED,
                    {
                        "user_id": user_id,
                        "kinds": [k.value for k in kinds],
                        "muted_by": identity.user_id,
                    },
                    Audience.watchers(),
                )

    async def block(self, identity: Identity, cid: str, user_id: str) -> None:
        async with writing(self.rt, cid) as changes:
            tx = changes.tx
            ctx = await load_call(tx, cid)
            await ctx.require(tx, identity, Capability.BLOCK_USERS)
            if await tx.get_block(cid, user_id) is not None:
                return
            await end_pending_requests(changes, ctx, user_id, by=identity.user_id, reason="blocked")
            participant = await tx.get_participant(cid, user_id)
            if participant is not None:
                tier = tier_of(await ctx.user_capabilities(tx, user_id))
                await tx.delete_participant(cid, user_id)
                emit_presence(
                    changes,
                    EventType.PARTICIPANT_LEFT,
                    participant,
                    tier,
                    reason=LeftReason.BLOCKED,
                )
            await tx.insert_block(BlockRecord(cid, user_id, identity.user_id, changes.now))
            changes.emit(
                EventType.BLOCKED_USER,
                {"user_id": user_id, "by": identity.user_id},
                Audience.watchers(),
                refresh=True,
            )
            notify_capabilities(changes, user_id, frozenset(), reason=PermissionsReason.BLOCKED)

    async def unblock(self, identity: Identity, cid: str, user_id: str) -> None:
        async with writing(self.rt, cid) as changes:
            tx = changes.tx
            ctx = await load_call(tx, cid)
            await ctx.require(tx, identity, Capability.BLOCK_USERS)
            if not await tx.delete_block(cid, user_id):
                return
            changes.emit(
                EventType.UNBLOCKED_USER,
                {"user_id": user_id, "by": identity.user_id},
                Audience.watchers(),
                refresh=True,
            )
            member = await tx.get_member(cid, user_id)
            caps = await ctx.user_capabilities(tx, user_id, member=member)
            notify_capabilities(changes, user_id, caps, reason=PermissionsReason.UNBLOCKED)
