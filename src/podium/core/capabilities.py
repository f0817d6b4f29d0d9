"""Capabilities as the core uses them: sets, parsing wire names, stable output.

The names themselves are `podium.protocol.capabilities`, shared with the SDK.
"""

from __future__ import annotations

from collections.abc import Iterable

from podium.core.errors import ValidationFailed
from podium.protocol.capabilities import CAPABILITY_NAMES, MEDIA_CAPABILITIES, Capability

__all__ = [
    "ALL_CAPABILITIES",
    "CAPABILITY_NAMES",
    "MEDIA_CAPABILITIES",
    "Capabilities",
    "Capability",
    "parse_capabilities",
    "sorted_names",
]


Capabilities = frozenset[Capability]

ALL_CAPABILITIES: Capabilities = frozenset(Capability)


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
