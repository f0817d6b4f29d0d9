"""`podium.core.capabilities`: wire names, parsing and stable output order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.core.capabilities import (
    ALL_CAPABILITIES,
    CAPABILITY_NAMES,
    MEDIA_CAPABILITIES,
    Capability,
    parse_capabilities,
    sorted_names,
)
from podium.core.errors import ValidationFailed
from tests.core import PROPERTY_SETTINGS, SPEC_WIRE_NAMES, capability_sets


def test_wire_names_are_exactly_the_spec_strings() -> None:
    assert [c.value for c in Capability] == SPEC_WIRE_NAMES


def test_capability_names_tuple_matches_the_enum() -> None:
    assert tuple(SPEC_WIRE_NAMES) == CAPABILITY_NAMES


@pytest.mark.parametrize("name", SPEC_WIRE_NAMES)
def test_each_capability_is_its_wire_string(name: str) -> None:
    cap = Capability(name)
    assert cap == name
    assert str(cap) == name
    assert f"{cap}" == name


def test_all_capabilities() -> None:
    assert {c.value for c in ALL_CAPABILITIES} == set(SPEC_WIRE_NAMES)
    assert isinstance(ALL_CAPABILITIES, frozenset)


def test_media_capabilities() -> None:
    assert {c.value for c in MEDIA_CAPABILITIES} == {"send-audio", "send-video", "screenshare"}
    assert isinstance(MEDIA_CAPABILITIES, frozenset)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], set()),
        (["read-call"], {"read-call"}),
        (["send-audio", "send-video"], {"send-audio", "send-video"}),
        (["send-audio", "send-audio"], {"send-audio"}),
        (SPEC_WIRE_NAMES, set(SPEC_WIRE_NAMES)),
        (list(reversed(SPEC_WIRE_NAMES)), set(SPEC_WIRE_NAMES)),
    ],
)
def test_parse_capabilities_accepts_wire_names(names: list[str], expected: set[str]) -> None:
    parsed = parse_capabilities(names)
    assert isinstance(parsed, frozenset)
    assert all(isinstance(c, Capability) for c in parsed)
    assert {c.value for c in parsed} == expected


def test_parse_capabilities_accepts_any_iterable() -> None:
    parsed = parse_capabilities(n for n in ("go-live", "end-call"))
    assert parsed == {Capability.GO_LIVE, Capability.END_CALL}


@pytest.mark.parametrize(
    ("names", "unknown"),
    [
        (["speak"], ["speak"]),
        ([""], [""]),
        (["send_audio"], ["send_audio"]),
        (["Send-Audio"], ["Send-Audio"]),
        (["SEND_AUDIO"], ["SEND_AUDIO"]),
        (["read-call "], ["read-call "]),
        (["read-call\n"], ["read-call\n"]),
        (["admin"], ["admin"]),
        (["send-audio", "zzz", "aaa", "zzz"], ["aaa", "zzz"]),
        (["join-call", "join"], ["join"]),
    ],
)
def test_parse_capabilities_rejects_unknown_names(names: list[str], unknown: list[str]) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_capabilities(names)
    err = info.value
    assert err.code == "validation_error"
    assert err.status == 422
    assert err.details["unknown_capabilities"] == unknown
    assert err.details["known"] == SPEC_WIRE_NAMES
    for name in unknown:
        assert name in err.message


def test_sorted_names_uses_declaration_order() -> None:
    caps = {Capability.BLOCK_USERS, Capability.READ_CALL, Capability.SEND_AUDIO}
    assert sorted_names(caps) == ["read-call", "send-audio", "block-users"]


@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        ([], []),
        ([Capability.SCREENSHARE, Capability.SEND_AUDIO], ["send-audio", "screenshare"]),
        ([Capability.GO_LIVE, Capability.GO_LIVE], ["go-live"]),
        (list(reversed(Capability)), SPEC_WIRE_NAMES),
    ],
)
def test_sorted_names_table(caps: list[Capability], expected: list[str]) -> None:
    assert sorted_names(caps) == expected


@PROPERTY_SETTINGS
@given(capability_sets)
def test_parse_inverts_sorted_names(caps: frozenset[Capability]) -> None:
    names = sorted_names(caps)
    assert parse_capabilities(names) == caps
    assert len(names) == len(caps)
    # Always a subsequence of the declaration order, hence stable for clients.
    assert names == [n for n in SPEC_WIRE_NAMES if n in names]


@PROPERTY_SETTINGS
@given(st.lists(st.text(max_size=20)))
def test_parse_accepts_exactly_the_known_names(names: list[str]) -> None:
    unknown = sorted({n for n in names if n not in SPEC_WIRE_NAMES})
    if unknown:
        with pytest.raises(ValidationFailed) as info:
            parse_capabilities(names)
        assert info.value.details["unknown_capabilities"] == unknown
    else:
        assert {c.value for c in parse_capabilities(names)} == set(names)
