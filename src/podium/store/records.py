"""Plain records the store reads and writes; services never see ORM objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from podium.core.capabilities import Capabilities
from podium.core.policy import CallPhase, MemberGrants


@dataclass(frozen=True)
class CallRecord:
    cid: str
    type: str
    id: str
    phase: CallPhase
    created_by: str
    created_at: datetime
    updated_at: datetime
    custom: dict[str, Any] = field(default_factory=dict)
    ended_at: datetime | None = None
    last_seq: int = 0
    #: The last `call.audience_updated` count, and when it was logged (the coalescing window).
    audience_count: int = 0
    audience_at: datetime | None = None
    #: Joined participants, counted by the database (triggers on `participants`).
    participant_count: int = 0


@dataclass(frozen=True)
class MemberRecord:
    call_cid: str
    user_id: str
    role: str
    grants: Capabilities
    revokes: Capabilities
    created_at: datetime
    updated_at: datetime

    @property
    def permissions(self) -> MemberGrants:
        return MemberGrants(self.role, self.grants, self.revokes)


@dataclass(frozen=True)
class ParticipantRecord:
    """A user currently joined to a call (one row per user, whatever its connections).

    `seen_at` is when a node last saw one of the user's connections watching the
    call (or the join itself); a participant unseen for the grace period leaves.
    """

    call_cid: str
    user_id: str
    name: str | None
    image: str | None
    joined_at: datetime
    seen_at: datetime


@dataclass(frozen=True)
class RevokedToken:
    """A token refused until it would have expired anyway (`token_id` as `tokens.token_id`)."""

    token_id: str
    expires_at: datetime
    revoked_at: datetime
    revoked_by: str


@dataclass(frozen=True)
class BlockRecord:
    call_cid: str
    user_id: str
    blocked_by: str
    created_at: datetime
