"""Capabilities: the unit of permission; wire names are exactly the enum values."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Capability(StrEnum):
    READ_CALL = "read-call"
    CREATE_CALL = "create-call"
    JOIN_CALL = "join-call"
    JOIN_BACKSTAGE = "join-backstage"
    SEND_AUDIO = "send-audio"
    SEND_VIDEO = "send-video"
    SCREENSHARE = "screenshare"
    UPDATE_CALL_PERMISSIONS = "update-call-permissions"
    UPDATE_CALL_MEMBER = "update-call-member"
    MUTE_USERS = "mute-users"
    GO_LIVE = "go-live"
    UPDATE_CALL = "update-call"
    END_CALL = "end-call"
    BLOCK_USERS = "block-users"


#: Every wire name, in declaration order (the order answers list them in).
CAPABILITY_NAMES: Final[tuple[str, ...]] = tuple(c.value for c in Capability)
#: The capabilities that let a participant publish media.
MEDIA_CAPABILITIES: Final = frozenset(
    {Capability.SEND_AUDIO, Capability.SEND_VIDEO, Capability.SCREENSHARE}
)
