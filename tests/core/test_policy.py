"""`podium.core.policy`: a user's effective capabilities in a call.

The table below is written out from spec §1 (built-in call types, effective
capabilities), not computed from the code under test.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.core.call_types import BUILTIN_CALL_TYPES, CallType
from podium.core.capabilities import Capabilities, Capability
from podium.core.policy import (
    CallPhase,
    MemberGrants,
    initial_phase,
    own_capabilities,
    with_granted,
    with_revoked,
)
from tests.core import (
    PROPERTY_SETTINGS,
    call_types,
    capability_sets,
    members,
    non_empty_capability_sets,
    phases,
    role_names,
    token_roles,
)

R = "read-call"
C = "create-call"
J = "join-call"
JB = "join-backstage"
A = "send-audio"
V = "send-video"
S = "screenshare"
BASE = {R, C}
EVERYTHING = {
    R,
    C,
    J,
    JB,
    A,
    V,
    S,
    "update-call-permissions",
    "update-call-member",
    "mute-users",
    "go-live",
    "update-call",
    "end-call",
    "block-users",
}
ENDED = {R}
UNKNOWN_ROLE = "moderator"  # defined by no built-in type

# (type, role, backstage, live, ended). In backstage `join-call` is gone from
# everyone who lacks `join-backstage`; an ended call allows only `read-call`.
# A role a type does not define holds what that type's `user` holds.
TABLE: list[tuple[str, str, set[str], set[str], set[str]]] = [
    ("default", "user", BASE | {A, V, S}, BASE | {J, A, V, S}, ENDED),
    ("default", "speaker", BASE | {A, V, S}, BASE | {J, A, V, S}, ENDED),
    ("default", "host", EVERYTHING, EVERYTHING, ENDED),
    ("default", "admin", EVERYTHING, EVERYTHING, ENDED),
    ("default", UNKNOWN_ROLE, BASE | {A, V, S}, BASE | {J, A, V, S}, ENDED),
    ("audio_room", "user", BASE, BASE | {J}, ENDED),
    ("audio_room", "speaker", BASE | {A}, BASE | {J, A}, ENDED),
    ("audio_room", "host", EVERYTHING, EVERYTHING, ENDED),
    ("audio_room", "admin", EVERYTHING, EVERYTHING, ENDED),
    ("audio_room", UNKNOWN_ROLE, BASE, BASE | {J}, ENDED),
    ("livestream", "user", BASE, BASE | {J}, ENDED),
    ("livestream", "speaker", BASE, BASE | {J}, ENDED),
    ("livestream", "host", EVERYTHING, EVERYTHING, ENDED),
    ("livestream", "admin", EVERYTHING, EVERYTHING, ENDED),
    ("livestream", UNKNOWN_ROLE, BASE, BASE | {J}, ENDED),
    ("development", "user", EVERYTHING, EVERYTHING, ENDED),
    ("development", "speaker", EVERYTHING, EVERYTHING, ENDED),
    ("development", "host", EVERYTHING, EVERYTHING, ENDED),
    ("development", "admin", EVERYTHING, EVERYTHING, ENDED),
    ("development", UNKNOWN_ROLE, EVERYTHING, EVERYTHING, ENDED),
]

CASES = [
    pytest.param(type_name, role, phase, expected, id=f"{type_name}-{role}-{phase}")
    for type_name, role, backstage, live, ended in TABLE
    for phase, expected in (("backstage", backstage), ("live", live), ("ended", ended))
]


def caps(*names: str) -> Capabilities:
    return frozenset(Capability(n) for n in names)


def names(capabilities: Capabilities) -> set[str]:
    return {c.value for c in capabilities}


def own(
    type_name: str,
    phase: str,
    member: MemberGrants | None,
    token_role: str | None = None,
    blocked: bool = False,
) -> set[str]:
    return names(
        own_capabilities(
            BUILTIN_CALL_TYPES[type_name], CallPhase(phase), member, token_role, blocked
        )
    )


def test_table_covers_every_builtin_type_role_and_phase() -> None:
    assert len(CASES) == len(BUILTIN_CALL_TYPES) * 5 * 3
    assert {row[0] for row in TABLE} == set(BUILTIN_CALL_TYPES)


@pytest.mark.parametrize(("type_name", "role", "phase", "expected"), CASES)
def test_member_capabilities_table(
    type_name: str, role: str, phase: str, expected: set[str]
) -> None:
    assert own(type_name, phase, MemberGrants(role)) == expected


@pytest.mark.parametrize(("type_name", "role", "phase", "expected"), CASES)
def test_admin_token_overrides_member_role(
    type_name: str, role: str, phase: str, expected: set[str]
) -> None:
    admin_row = next(r for r in TABLE if r[0] == type_name and r[1] == "admin")
    admin_expected = dict(zip(("backstage", "live", "ended"), admin_row[2:], strict=True))
    assert own(type_name, phase, MemberGrants(role), token_role="admin") == admin_expected[phase]


@pytest.mark.parametrize(("type_name", "role", "phase", "expected"), CASES)
def test_other_token_roles_do_not_change_anything(
    type_name: str, role: str, phase: str, expected: set[str]
) -> None:
    for token_role in ("host", "user", "speaker", "Admin"):
        assert own(type_name, phase, MemberGrants(role), token_role=token_role) == expected


@pytest.mark.parametrize(
    ("type_name", "phase", "expected"),
    [
        pytest.param(type_name, phase, expected, id=f"{type_name}-{phase}")
        for type_name, role, backstage, live, ended in TABLE
        if role == "user"
        for phase, expected in (("backstage", backstage), ("live", live), ("ended", ended))
    ],
)
def test_non_member_has_the_user_role(type_name: str, phase: str, expected: set[str]) -> None:
    assert own(type_name, phase, None) == expected


@pytest.mark.parametrize(
    ("type_name", "phase"),
    [(t, p) for t in BUILTIN_CALL_TYPES for p in ("backstage", "live", "ended")],
)
def test_non_member_with_admin_token_is_admin(type_name: str, phase: str) -> None:
    expected = ENDED if phase == "ended" else EVERYTHING
    assert own(type_name, phase, None, token_role="admin") == expected


# --- per-user grants and revokes ----------------------------------------------------


def test_grant_adds_to_the_role() -> None:
    listener = MemberGrants("user", grants=caps(A))
    assert own("audio_room", "live", listener) == BASE | {J, A}


def test_grants_of_several_capabilities() -> None:
    listener = MemberGrants("user", grants=caps(A, V, S, "mute-users"))
    assert own("livestream", "live", listener) == BASE | {J, A, V, S, "mute-users"}


def test_revoke_removes_a_role_capability() -> None:
    speaker = MemberGrants("speaker", revokes=caps(A))
    assert own("audio_room", "live", speaker) == BASE | {J}


def test_revoke_wins_over_a_grant_of_the_same_capability() -> None:
    member = MemberGrants("user", grants=caps(A), revokes=caps(A))
    assert own("audio_room", "live", member) == BASE | {J}


def test_revoke_applies_to_host_and_admin_token() -> None:
    host = MemberGrants("host", revokes=caps(A, "end-call"))
    assert own("audio_room", "live", host) == EVERYTHING - {A, "end-call"}
    assert own("audio_room", "live", host, token_role="admin") == EVERYTHING - {A, "end-call"}


def test_grant_lifts_an_earlier_revoke() -> None:
    speaker = with_revoked(MemberGrants("speaker"), caps(A))
    assert A not in own("audio_room", "live", speaker)
    speaker = with_granted(speaker, caps(A))
    assert speaker == MemberGrants("speaker", grants=caps(A), revokes=frozenset())
    assert own("audio_room", "live", speaker) == BASE | {J, A}


def test_revoke_removes_an_earlier_grant() -> None:
    listener = with_granted(MemberGrants("user"), caps(A, V))
    listener = with_revoked(listener, caps(A))
    assert listener == MemberGrants("user", grants=caps(V), revokes=caps(A))
    assert own("audio_room", "live", listener) == BASE | {J, V}


def test_with_granted_and_with_revoked_keep_the_role_and_do_not_mutate() -> None:
    original = MemberGrants("speaker", grants=caps(V), revokes=caps(S))
    granted = with_granted(original, caps(S, A))
    revoked = with_revoked(original, caps(V, J))
    assert original == MemberGrants("speaker", grants=caps(V), revokes=caps(S))
    assert granted == MemberGrants("speaker", grants=caps(V, S, A), revokes=frozenset())
    assert revoked == MemberGrants("speaker", grants=frozenset(), revokes=caps(S, V, J))


def test_member_grants_defaults() -> None:
    member = MemberGrants("user")
    assert member.grants == frozenset()
    assert member.revokes == frozenset()


# --- blocked, ended, backstage ------------------------------------------------------


@pytest.mark.parametrize(("type_name", "role", "phase", "expected"), CASES)
def test_blocked_user_holds_nothing(
    type_name: str, role: str, phase: str, expected: set[str]
) -> None:
    member = MemberGrants(role, grants=caps(*EVERYTHING))
    assert own(type_name, phase, member, blocked=True) == set()
    assert own(type_name, phase, member, token_role="admin", blocked=True) == set()
    assert own(type_name, phase, None, blocked=True) == set()


@pytest.mark.parametrize("type_name", sorted(BUILTIN_CALL_TYPES))
@pytest.mark.parametrize("role", ["user", "speaker", "host", "admin", UNKNOWN_ROLE])
def test_ended_allows_only_read_call_even_with_grants(type_name: str, role: str) -> None:
    member = MemberGrants(role, grants=caps(*EVERYTHING))
    assert own(type_name, "ended", member) == {R}
    assert own(type_name, "ended", member, token_role="admin") == {R}


def test_ended_with_read_call_revoked_holds_nothing() -> None:
    host = MemberGrants("host", revokes=caps(R))
    assert own("audio_room", "ended", host) == set()


def test_backstage_removes_join_call_without_join_backstage() -> None:
    listener = MemberGrants("user", grants=caps(A))
    assert own("audio_room", "backstage", listener) == BASE | {A}
    assert own("audio_room", "live", listener) == BASE | {J, A}


def test_backstage_keeps_join_call_with_granted_join_backstage() -> None:
    listener = MemberGrants("user", grants=caps(JB))
    assert own("audio_room", "backstage", listener) == BASE | {J, JB}


def test_backstage_host_without_join_backstage_loses_join_call() -> None:
    host = MemberGrants("host", revokes=caps(JB))
    assert own("livestream", "backstage", host) == EVERYTHING - {J, JB}
    assert own("livestream", "live", host) == EVERYTHING - {JB}


def test_backstage_never_adds_join_call() -> None:
    member = MemberGrants("user", grants=caps(JB), revokes=caps(J))
    assert own("audio_room", "backstage", member) == BASE | {JB}


def test_backstage_removes_only_join_call() -> None:
    member = MemberGrants("user", grants=caps(*(EVERYTHING - {JB})))
    assert own("default", "backstage", member) == EVERYTHING - {J, JB}


@pytest.mark.parametrize(
    ("type_name", "phase"),
    [("default", "live"), ("audio_room", "backstage"), ("livestream", "backstage"),
     ("development", "live")],
)  # fmt: skip
def test_initial_phase(type_name: str, phase: str) -> None:
    assert initial_phase(BUILTIN_CALL_TYPES[type_name]) is CallPhase(phase)


def test_initial_phase_of_custom_type() -> None:
    assert initial_phase(CallType("t", {}, backstage=True)) is CallPhase.BACKSTAGE
    assert initial_phase(CallType("t", {}, backstage=False)) is CallPhase.LIVE


def test_phase_wire_names() -> None:
    assert [p.value for p in CallPhase] == ["backstage", "live", "ended"]


def test_custom_type_grants() -> None:
    ct = CallType.from_dict(
        "panel",
        {"grants": {"user": ["read-call"], "panelist": ["read-call", "join-call", "send-audio"]}},
    )
    assert names(own_capabilities(ct, CallPhase.LIVE, MemberGrants("panelist"))) == {R, J, A}
    assert names(own_capabilities(ct, CallPhase.LIVE, None)) == {R}
    assert names(own_capabilities(ct, CallPhase.LIVE, MemberGrants("other"))) == {R}
    # The token's admin role gets what the type grants `admin`: here, like `user`.
    assert names(own_capabilities(ct, CallPhase.LIVE, None, "admin")) == {R}


# --- properties ---------------------------------------------------------------------

blocked_flags = st.booleans()


@PROPERTY_SETTINGS
@given(call_types, phases, members, token_roles, blocked_flags)
def test_revoked_capability_is_never_held(
    ct: CallType, phase: CallPhase, member: MemberGrants, token_role: str | None, blocked: bool
) -> None:
    assert not own_capabilities(ct, phase, member, token_role, blocked) & member.revokes


@PROPERTY_SETTINGS
@given(call_types, members, token_roles, blocked_flags)
def test_ended_holds_at_most_read_call(
    ct: CallType, member: MemberGrants, token_role: str | None, blocked: bool
) -> None:
    held = own_capabilities(ct, CallPhase.ENDED, member, token_role, blocked)
    assert held <= {Capability.READ_CALL}


@PROPERTY_SETTINGS
@given(call_types, phases, st.none() | members, token_roles)
def test_blocked_holds_nothing(
    ct: CallType, phase: CallPhase, member: MemberGrants | None, token_role: str | None
) -> None:
    assert own_capabilities(ct, phase, member, token_role, blocked=True) == frozenset()


@PROPERTY_SETTINGS
@given(call_types, phases, members, token_roles)
def test_never_more_than_role_and_grants(
    ct: CallType, phase: CallPhase, member: MemberGrants, token_role: str | None
) -> None:
    role = "admin" if token_role == "admin" else member.role
    held = own_capabilities(ct, phase, member, token_role)
    assert held <= ct.role_capabilities(role) | member.grants


@PROPERTY_SETTINGS
@given(
    call_types,
    st.sampled_from([CallPhase.BACKSTAGE, CallPhase.LIVE]),
    members,
    token_roles,
    non_empty_capability_sets,
)
def test_accepting_a_request_gives_every_asked_capability(
    ct: CallType,
    phase: CallPhase,
    member: MemberGrants,
    token_role: str | None,
    asked: Capabilities,
) -> None:
    accepted = with_granted(member, asked)
    held = own_capabilities(ct, phase, accepted, token_role)
    for cap in asked:
        # The one exception is the backstage rule itself: `join-call` waits for
        # go-live unless `join-backstage` is held too.
        backstage_join = (
            cap is Capability.JOIN_CALL
            and phase is CallPhase.BACKSTAGE
            and Capability.JOIN_BACKSTAGE not in held
        )
        assert cap in held or backstage_join
    if phase is CallPhase.LIVE:
        assert asked <= held


@PROPERTY_SETTINGS
@given(call_types, phases, members, token_roles, capability_sets)
def test_revoke_then_grant_restores(
    ct: CallType,
    phase: CallPhase,
    member: MemberGrants,
    token_role: str | None,
    some: Capabilities,
) -> None:
    assert with_granted(with_revoked(member, some), some) == with_granted(member, some)
    assert with_revoked(with_granted(member, some), some) == with_revoked(member, some)
    # Revoking capabilities a user holds and granting them back gives back
    # exactly what the user held, in every phase.
    before_live = own_capabilities(ct, CallPhase.LIVE, member, token_role)
    held_subset = some & before_live
    restored = with_granted(with_revoked(member, held_subset), held_subset)
    assert own_capabilities(ct, phase, restored, token_role) == own_capabilities(
        ct, phase, member, token_role
    )


@PROPERTY_SETTINGS
@given(call_types, phases, members, token_roles, capability_sets)
def test_revoke_removes_and_grant_adds(
    ct: CallType,
    phase: CallPhase,
    member: MemberGrants,
    token_role: str | None,
    some: Capabilities,
) -> None:
    revoked = own_capabilities(ct, phase, with_revoked(member, some), token_role)
    assert not revoked & some
    if phase is CallPhase.LIVE:
        assert some <= own_capabilities(ct, phase, with_granted(member, some), token_role)


@PROPERTY_SETTINGS
@given(call_types, phases, members, token_roles, capability_sets)
def test_monotone_in_grants(
    ct: CallType,
    phase: CallPhase,
    member: MemberGrants,
    token_role: str | None,
    extra: Capabilities,
) -> None:
    base = own_capabilities(ct, phase, member, token_role)
    more = MemberGrants(member.role, member.grants | extra, member.revokes)
    assert base <= own_capabilities(ct, phase, more, token_role)
    assert base <= own_capabilities(ct, phase, with_granted(member, extra), token_role)


@PROPERTY_SETTINGS
@given(call_types, phases, members, token_roles, capability_sets)
def test_antitone_in_revokes(
    ct: CallType,
    phase: CallPhase,
    member: MemberGrants,
    token_role: str | None,
    extra: Capabilities,
) -> None:
    base = own_capabilities(ct, phase, member, token_role)
    fewer = MemberGrants(member.role, member.grants, member.revokes | extra)
    assert own_capabilities(ct, phase, fewer, token_role) <= base
    assert own_capabilities(ct, phase, with_revoked(member, extra), token_role) <= base


@PROPERTY_SETTINGS
@given(call_types, members, token_roles)
def test_phases_only_take_away(ct: CallType, member: MemberGrants, token_role: str | None) -> None:
    live = own_capabilities(ct, CallPhase.LIVE, member, token_role)
    backstage = own_capabilities(ct, CallPhase.BACKSTAGE, member, token_role)
    ended = own_capabilities(ct, CallPhase.ENDED, member, token_role)
    assert ended <= backstage <= live
    assert live - backstage <= {Capability.JOIN_CALL}
    if Capability.JOIN_BACKSTAGE in live:
        assert backstage == live


@PROPERTY_SETTINGS
@given(call_types, phases, members)
def test_admin_token_is_the_admin_member_role(
    ct: CallType, phase: CallPhase, member: MemberGrants
) -> None:
    as_admin = MemberGrants("admin", member.grants, member.revokes)
    assert own_capabilities(ct, phase, member, "admin") == own_capabilities(ct, phase, as_admin)


@PROPERTY_SETTINGS
@given(call_types, phases, token_roles)
def test_non_member_is_a_user_member_without_grants(
    ct: CallType, phase: CallPhase, token_role: str | None
) -> None:
    assert own_capabilities(ct, phase, None, token_role) == own_capabilities(
        ct, phase, MemberGrants("user"), token_role
    )


@PROPERTY_SETTINGS
@given(call_types, phases, role_names)
def test_undefined_role_holds_what_user_holds(ct: CallType, phase: CallPhase, role: str) -> None:
    if role in ct.grants:
        return
    assert own_capabilities(ct, phase, MemberGrants(role)) == own_capabilities(
        ct, phase, MemberGrants("user")
    )
