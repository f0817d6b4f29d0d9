"""Call event types and the reasons events and media messages carry."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """Every call event (`{type, call_cid, seq, created_at, ...}` on the WebSocket)."""

    CREATED = "call.created"
    UPDATED = "call.updated"
    ENDED = "call.ended"
    LIVE_STARTED = "call.live_started"
    LIVE_STOPPED = "call.live_stopped"
    MEMBER_ADDED = "call.member_added"
    MEMBER_UPDATED = "call.member_updated"
    MEMBER_REMOVED = "call.member_removed"
    PARTICIPANT_JOINED = "call.participant_joined"
    PARTICIPANT_LEFT = "call.participant_left"
    PARTICIPANT_MOVED = "call.participant_moved"
    AUDIENCE_UPDATED = "call.audience_updated"
    PERMISSION_REQUEST = "call.permission_request"
    PERMISSION_REQUEST_RESOLVED = "call.permission_request_resolved"
    PERMISSIONS_UPDATED = "call.permissions_updated"
    USER_MUTED = "call.user_muted"
    BLOCKED_USER = "call.blocked_user"
    UNBLOCKED_USER = "call.unblocked_user"


class PermissionsReason(StrEnum):
    """`reason` of `call.permissions_updated`: what changed the user's capabilities."""

    PERMISSIONS_CHANGED = "permissions_changed"
    ROLE_CHANGED = "role_changed"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"


class LeftReason(StrEnum):
    """`reason` of `call.participant_left` when the participant did not leave by itself."""

    BLOCKED = "blocked"
    DISCONNECTED = "disconnected"


class StopReason(StrEnum):
    """Why the server stopped a source (`sfu.stop_source`); the SDK stops the track."""

    REVOKED = "revoked"
    MUTED = "muted"
    BLOCKED = "blocked"
    ROLE_CHANGED = "role_changed"
    CALL_ENDED = "call_ended"
    LEFT = "left"


class DenyReason(StrEnum):
    """Why a publish was refused: never held, or lost during this session (and how)."""

    NOT_GRANTED = "not_granted"
    REVOKED = "revoked"
    ROLE_CHANGED = "role_changed"
