"""What the SFU asks of sources: which a holder of some capabilities may publish, what a mute stops.

The sources and the capability each needs are `podium.protocol.media`; the
SFU checks a source's capability when it is published and again whenever the
participant's capabilities change.
"""

from __future__ import annotations

from collections.abc import Iterable

from podium.core.capabilities import Capabilities
from podium.protocol.media import MUTE_SOURCE, MuteKind, Source, TrackKind

__all__ = ["Source", "TrackKind", "allowed_sources", "sources_for_mute"]


def allowed_sources(caps: Capabilities) -> frozenset[Source]:
    """The sources a holder of `caps` may publish."""
    return frozenset(s for s in Source if s.capability in caps)


def sources_for_mute(kinds: Iterable[str]) -> frozenset[Source]:
    """Translate mute kinds (`audio`, `video`, `screenshare`) into sources."""
    kinds = list(kinds)
    known = [k.value for k in MuteKind]
    unknown = sorted({k for k in kinds if k not in known})
    if unknown:
        raise ValueError(f"unknown mute kind: {', '.join(unknown)} (known: {', '.join(known)})")
    return frozenset(MUTE_SOURCE[MuteKind(k)] for k in kinds)
