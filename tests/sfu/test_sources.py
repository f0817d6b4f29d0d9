"""Sources: which capability and track kind each one has (`podium.protocol.media`), and
what `podium.sfu.sources` makes of them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.core.capabilities import MEDIA_CAPABILITIES, Capability
from podium.protocol.media import MUTE_SOURCE, Source, TrackKind
from podium.sfu.sources import allowed_sources, sources_for_mute
from tests.sfu import PROPERTY_SETTINGS


@pytest.mark.parametrize(
    ("source", "wire", "capability", "kind"),
    [
        (Source.MICROPHONE, "microphone", Capability.SEND_AUDIO, TrackKind.AUDIO),
        (Source.CAMERA, "camera", Capability.SEND_VIDEO, TrackKind.VIDEO),
        (Source.SCREEN, "screen", Capability.SCREENSHARE, TrackKind.VIDEO),
    ],
)
def test_source_table(source: Source, wire: str, capability: Capability, kind: TrackKind) -> None:
    assert source.value == wire
    assert Source(wire) is source
    assert source.capability is capability
    assert source.kind is kind


def test_each_media_capability_gates_exactly_one_source() -> None:
    assert sorted(s.capability for s in Source) == sorted(MEDIA_CAPABILITIES)


def test_track_kind_wire_names() -> None:
    assert [k.value for k in TrackKind] == ["audio", "video"]


@given(st.frozensets(st.sampled_from(list(Capability))))
@PROPERTY_SETTINGS
def test_allowed_sources_are_those_whose_capability_is_held(caps: frozenset[Capability]) -> None:
    allowed = allowed_sources(caps)
    assert all((s in allowed) == (s.capability in caps) for s in Source)


def test_no_capability_allows_no_source() -> None:
    assert allowed_sources(frozenset()) == frozenset()


@pytest.mark.parametrize(
    ("kinds", "sources"),
    [
        ([], set()),
        (["audio"], {Source.MICROPHONE}),
        (["video"], {Source.CAMERA}),
        (["screenshare"], {Source.SCREEN}),
        (["audio", "video", "screenshare"], set(Source)),
        (["audio", "audio"], {Source.MICROPHONE}),
    ],
)
def test_mute_kinds_name_sources(kinds: list[str], sources: set[Source]) -> None:
    assert sources_for_mute(kinds) == sources


def test_mute_kinds_cover_every_source_once() -> None:
    assert sorted(MUTE_SOURCE.values()) == sorted(Source)


@pytest.mark.parametrize("bad", ["microphone", "Audio", "", "screen"])
def test_unknown_mute_kind_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown mute kind") as info:
        sources_for_mute(["audio", bad])
    assert repr(bad).strip("'") in str(info.value)
    assert "audio, video, screenshare" in str(info.value)
