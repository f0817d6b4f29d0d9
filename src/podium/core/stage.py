"""The stage and the audience: who of a call's participants is on stage, decided from capabilities.

A participant is on the stage while it may publish or moderate; everyone else
who joined is the audience (a listener with a pending request included). Moving
between the two follows whatever changes the capabilities: grants, revokes,
blocks, role and phase changes.
"""

from __future__ import annotations

from typing import Final

from podium.core.capabilities import Capabilities, Capability
from podium.protocol.stage import Tier

#: Holding any of these puts a participant on the stage.
STAGE_CAPABILITIES: Final[Capabilities] = frozenset(
    {
        Capability.SEND_AUDIO,
        Capability.SEND_VIDEO,
        Capability.SCREENSHARE,
        Capability.UPDATE_CALL_PERMISSIONS,
    }
)


def tier_of(caps: Capabilities) -> Tier:
    """The tier of a participant holding `caps`."""
    return Tier.STAGE if caps & STAGE_CAPABILITIES else Tier.AUDIENCE
