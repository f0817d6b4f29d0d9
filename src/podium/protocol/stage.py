"""Where a joined participant is in a call: on the stage, or in the audience."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    STAGE = "stage"
    AUDIENCE = "audience"
