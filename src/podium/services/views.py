"""The JSON shapes of calls, members, participants and call state, defined once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from podium.core.call_types import CallType
from podium.core.capabilities import Capabilities, sorted_names
from podium.core.json_values import sanitized
from podium.core.policy import CallPhase
from podium.core.requests import PermissionRequest
from podium.store.records import CallRecord, MemberRecord, ParticipantRecord


def call_view(call: CallRecord) -> dict[str, Any]:
    return {
        "cid": call.cid,
        "type": call.type,
        "id": call.id,
        "phase": call.phase.value,
        "backstage": call.phase is CallPhase.BACKSTAGE,
        "live": call.phase is CallPhase.LIVE,
        "ended": call.phase is CallPhase.ENDED,
        "created_by": call.created_by,
        "created_at": call.created_at.isoformat(),
        "updated_at": call.updated_at.isoformat(),
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        # Repaired if an older version stored what cannot be sent (see json_values).
        "custom": sanitized(call.custom),
    }


def member_view(member: MemberRecord) -> dict[str, Any]:
    return {
        "user_id": member.user_id,
        "role": member.role,
        "grants": sorted_names(member.grants),
        "revokes": sorted_names(member.revokes),
        "created_at": member.created_at.isoformat(),
        "updated_at": member.updated_at.isoformat(),
    }


def participant_view(participant: ParticipantRecord) -> dict[str, Any]:
    return {
        "user_id": participant.user_id,
        "name": participant.name,
        "image": participant.image,
        "joined_at": participant.joined_at.isoformat(),
    }


def state_view(
    *,
    call: CallRecord,
    call_type: CallType,
    members: Iterable[MemberRecord],
    stage: list[dict[str, Any]],
    audience_count: int,
    blocked: Iterable[str],
    pending_requests: Iterable[PermissionRequest],
    own_capabilities: Capabilities,
) -> dict[str, Any]:
    """The call state object every call endpoint returns.

    `participants` is the stage (with the caller, when it joined, wherever it
    is) and `audience_count` counts the rest: the audience is read page by
    page, so the state stays small however many listen. `pending_requests`
    holds every pending request for holders of `update-call-permissions` and
    only the caller's own for everyone else, so a reconnecting client can
    restore its "awaiting" state.
    """
    return {
        "call": call_view(call),
        "settings": call_type.to_dict(),
        "members": [member_view(m) for m in members],
        "participants": stage,
        "audience_count": audience_count,
        "blocked_user_ids": sorted(blocked),
        "own_capabilities": sorted_names(own_capabilities),
        "pending_requests": [r.to_dict() for r in pending_requests],
        "seq": call.last_seq,
    }
