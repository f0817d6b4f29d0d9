"""Media sources a participant may publish, and the capability each one needs.

Stated once here (spec §4): the SFU checks a source's capability when it is
published and again whenever the participant's capabilities change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Final

from podium.core.capabilities import Capabilities, Capability


class MediaKind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"


class Source(StrEnum):
    """A publishable source; the wire name is the value. Screen share is a second video."""

    MICROPHONE = "microphone"
    CAMERA = "camera"
    SCREEN = "screen"

    @property
    def capability(self) -> Capability:
        """The capability a participant must hold for this source to be forwarded."""
        return _CAPABILITY[self]

    @property
    def kind(self) -> MediaKind:
        return _KIND[self]


_CAPABILITY: Final[Mapping[Source, Capability]] = {
    Source.MICROPHONE: Capability.SEND_AUDIO,
    Source.CAMERA: Capability.SEND_VIDEO,
    Source.SCREEN: Capability.SCREENSHARE,
}

_KIND: Final[Mapping[Source, MediaKind]] = {
    Source.MICROPHONE: MediaKind.AUDIO,
    Source.CAMERA: MediaKind.VIDEO,
    Source.SCREEN: MediaKind.VIDEO,
}

#: The kinds of `POST .../mute` and `call.user_muted` name sources by what they carry.
MUTE_KINDS: Final[Mapping[str, Source]] = {
    "audio": Source.MICROPHONE,
    "video": Source.CAMERA,
    "screenshare": Source.SCREEN,
}


def allowed_sources(caps: Capabilities) -> frozenset[Source]:
    """The sources a holder of `caps` may publish."""
    return frozenset(s for s in Source if s.capability in caps)


def sources_for_mute(kinds: Iterable[str]) -> frozenset[Source]:
    """Translate mute kinds (`audio`, `video`, `screenshare`) into sources."""
    kinds = list(kinds)
    unknown = sorted({k for k in kinds if k not in MUTE_KINDS})
    if unknown:
        known = ", ".join(MUTE_KINDS)
        raise ValueError(f"unknown mute kind: {', '.join(unknown)} (known: {known})")
    return frozenset(MUTE_KINDS[k] for k in kinds)
