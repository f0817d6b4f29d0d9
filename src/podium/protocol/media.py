"""Media sources, the capability each one needs, and the kinds a mute names."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from podium.protocol.capabilities import Capability


class TrackKind(StrEnum):
    """A WebRTC track's kind; a screen share is a second video track."""

    AUDIO = "audio"
    VIDEO = "video"


class Source(StrEnum):
    """A publishable source; the wire name is the value."""

    MICROPHONE = "microphone"
    CAMERA = "camera"
    SCREEN = "screen"

    @property
    def capability(self) -> Capability:
        """The capability a participant must hold for this source to be forwarded."""
        return SOURCE_CAPABILITY[self]

    @property
    def kind(self) -> TrackKind:
        return SOURCE_TRACK_KIND[self]


class MuteKind(StrEnum):
    """What `POST .../mute` and `call.user_muted` name: sources by what they carry."""

    AUDIO = "audio"
    VIDEO = "video"
    SCREENSHARE = "screenshare"


#: The capability a participant must hold for a source to be forwarded.
SOURCE_CAPABILITY: Final[Mapping[Source, Capability]] = {
    Source.MICROPHONE: Capability.SEND_AUDIO,
    Source.CAMERA: Capability.SEND_VIDEO,
    Source.SCREEN: Capability.SCREENSHARE,
}

SOURCE_TRACK_KIND: Final[Mapping[Source, TrackKind]] = {
    Source.MICROPHONE: TrackKind.AUDIO,
    Source.CAMERA: TrackKind.VIDEO,
    Source.SCREEN: TrackKind.VIDEO,
}

#: The source each mute kind stops.
MUTE_SOURCE: Final[Mapping[MuteKind, Source]] = {
    MuteKind.AUDIO: Source.MICROPHONE,
    MuteKind.VIDEO: Source.CAMERA,
    MuteKind.SCREENSHARE: Source.SCREEN,
}
