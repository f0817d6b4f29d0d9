"""`podium.core.stage`: the stage/audience rule as a table and a property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.core.call_types import BUILTIN_CALL_TYPES
from podium.core.capabilities import Capability
from podium.core.policy import CallPhase, MemberGrants, own_capabilities
from podium.core.stage import STAGE_CAPABILITIES, tier_of
from podium.protocol.stage import Tier

C = Capability
AUDIO_ROOM = BUILTIN_CALL_TYPES["audio_room"]


@pytest.mark.parametrize(
    ("role", "grants", "revokes", "tier"),
    [
        ("user", set(), set(), Tier.AUDIENCE),  # a listener
        ("speaker", set(), set(), Tier.STAGE),  # send-audio by role
        ("host", set(), set(), Tier.STAGE),
        ("user", {C.SEND_VIDEO}, set(), Tier.STAGE),  # an accepted request
        ("user", {C.SCREENSHARE}, set(), Tier.STAGE),
        ("speaker", set(), {C.SEND_AUDIO}, Tier.AUDIENCE),  # revoked: back to the audience
        ("user", {C.MUTE_USERS, C.BLOCK_USERS}, set(), Tier.AUDIENCE),  # no publish, no answering
        ("user", {C.UPDATE_CALL_PERMISSIONS}, set(), Tier.STAGE),  # a moderator
    ],
)
def test_tier_of_audio_room_members(
    role: str, grants: set[Capability], revokes: set[Capability], tier: Tier
) -> None:
    member = MemberGrants(role, frozenset(grants), frozenset(revokes))
    caps = own_capabilities(AUDIO_ROOM, CallPhase.LIVE, member)
    assert tier_of(caps) is tier


def test_a_blocked_host_and_an_ended_call_leave_nobody_on_stage() -> None:
    host = MemberGrants("host", frozenset(), frozenset())
    assert (
        tier_of(own_capabilities(AUDIO_ROOM, CallPhase.LIVE, host, blocked=True)) is Tier.AUDIENCE
    )
    assert tier_of(own_capabilities(AUDIO_ROOM, CallPhase.ENDED, host)) is Tier.AUDIENCE


def test_the_wire_names() -> None:
    assert [t.value for t in Tier] == ["stage", "audience"]


@given(st.frozensets(st.sampled_from(list(Capability))))
def test_on_stage_exactly_when_holding_a_stage_capability(caps: frozenset[Capability]) -> None:
    assert (tier_of(caps) is Tier.STAGE) == bool(caps & STAGE_CAPABILITIES)
