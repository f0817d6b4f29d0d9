"""Capabilities: the unit of permission; wire names are exactly the enum values."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from podium.core.errors import ValidationFailed


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


Capabilities = frozenset[Capability]

ALL_CAPABILITIES: Capabilities = frozenset(Capability)
MEDIA_CAPABILITIES: Capabilities = frozenset(
    {Capability.SEND_AUDIO, Capability.SEND_VIDEO, Capability.SCREENSHARE}
)
CAPABILITY_NAMES: tuple[str, ...] = tuple(c.value for c in Capability)


def parse_capabilities(names: Iterable[str]) -> Capabilities:
    """Turn wire names into capabilities; unknown names are a validation error."""
    names = list(names)
    unknown = sorted({n for n in names if n not in CAPABILITY_NAMES})
    if unknown:
        raise ValidationFailed(
            f"unknown capability: {', '.join(unknown)}",
            {"unknown_capabilities": unknown, "known": list(CAPABILITY_NAMES)},
        )
    return frozenset(Capability(n) for n in names)


def sorted_names(caps: Iterable[Capability]) -> list[str]:
    """Capabilities in declaration order, as wire names (stable output for clients)."""
    held = set(caps)
    return [c.value for c in Capability if c in held]
