"""`podium.core.requests`: the permission-request state machine (spec §1 lifecycle)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from podium.core import errors
from podium.core.call_types import BUILTIN_CALL_TYPES, CallType
from podium.core.capabilities import MEDIA_CAPABILITIES, Capabilities, Capability
from podium.core.errors import (
    CapabilityHeld,
    NotRequestable,
    PermissionDenied,
    RequestAlreadyResolved,
    RequestCooldown,
    ValidationFailed,
)
from podium.core.policy import (
    CallPhase,
    MemberGrants,
    own_capabilities,
    with_granted,
    with_revoked,
)
from podium.core.requests import (
    ExistingRequest,
    NewRequest,
    PermissionRequest,
    RequestState,
    Resolution,
    cooldown_remaining,
    decide_request,
    is_expired,
    resolve,
    satisfied_requests,
)
from tests.core import PROPERTY_SETTINGS, T0, capability_sets

AUDIO = Capability.SEND_AUDIO
VIDEO = Capability.SEND_VIDEO
SCREEN = Capability.SCREENSHARE
JOIN = Capability.JOIN_CALL
READ = Capability.READ_CALL
CREATE = Capability.CREATE_CALL
END = Capability.END_CALL

AUDIO_ROOM = BUILTIN_CALL_TYPES["audio_room"]
LISTENER_HELD: Capabilities = frozenset({READ, CREATE, JOIN})
SPEAKER_HELD: Capabilities = LISTENER_HELD | {AUDIO}
TTL = timedelta(seconds=300)
COOLDOWN = timedelta(seconds=30)

FINAL_STATES = [s for s in RequestState if s is not RequestState.PENDING]


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def request(
    *perms: Capability,
    id: str = "r1",
    state: RequestState = RequestState.PENDING,
    created_at: datetime = T0,
    ttl: timedelta = TTL,
    resolved_at: datetime | None = None,
    resolved_by: str | None = None,
    reason: str | None = None,
) -> PermissionRequest:
    return PermissionRequest(
        id=id,
        call_cid="audio_room:room",
        user_id="alice",
        permissions=frozenset(perms or (AUDIO,)),
        state=state,
        created_at=created_at,
        expires_at=created_at + ttl,
        resolved_by=resolved_by,
        resolved_at=resolved_at,
        reason=reason,
    )


def rejection(*perms: Capability, at: datetime, id: str = "old") -> PermissionRequest:
    return request(
        *perms,
        id=id,
        state=RequestState.REJECTED,
        created_at=at - s(5),
        resolved_at=at,
        resolved_by="mod",
    )


def decide(
    *asked: Capability,
    held: Capabilities = LISTENER_HELD,
    may_request: bool = True,
    pending: Sequence[PermissionRequest] = (),
    rejected: Sequence[PermissionRequest] = (),
    now: datetime = T0,
    call_type: CallType = AUDIO_ROOM,
) -> ExistingRequest | NewRequest:
    return decide_request(
        call_type=call_type,
        asked=frozenset(asked),
        held=held,
        may_request=may_request,
        pending=pending,
        rejected=rejected,
        now=now,
    )


# --- errors: wire codes and statuses (spec §2) --------------------------------------


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (errors.InvalidToken, "invalid_token", 401),
        (errors.TokenExpired, "token_expired", 401),
        (errors.PermissionDenied, "permission_denied", 403),
        (errors.NotRequestable, "not_requestable", 403),
        (errors.CallNotFound, "call_not_found", 404),
        (errors.RequestNotFound, "request_not_found", 404),
        (errors.RequestAlreadyResolved, "request_already_resolved", 409),
        (errors.CapabilityHeld, "capability_held", 409),
        (errors.ValidationFailed, "validation_error", 422),
        (errors.RequestCooldown, "request_cooldown", 429),
    ],
)
def test_error_codes(cls: type[errors.PodiumError], code: str, status: int) -> None:
    err = cls("message", {"k": 1})
    assert isinstance(err, errors.PodiumError)
    assert (err.code, err.status, err.message, err.details) == (code, status, "message", {"k": 1})
    assert cls("no details").details == {}


# --- states -------------------------------------------------------------------------


def test_state_wire_names() -> None:
    assert [state.value for state in RequestState] == [
        "pending",
        "accepted",
        "rejected",
        "cancelled",
        "expired",
    ]


@pytest.mark.parametrize(
    ("resolution", "state"),
    [
        (Resolution.ACCEPT, RequestState.ACCEPTED),
        (Resolution.REJECT, RequestState.REJECTED),
        (Resolution.CANCEL, RequestState.CANCELLED),
        (Resolution.EXPIRE, RequestState.EXPIRED),
    ],
)
def test_resolution_final_state(resolution: Resolution, state: RequestState) -> None:
    assert resolution.final_state is state


def test_is_pending() -> None:
    assert request().is_pending
    for state in FINAL_STATES:
        assert not request(state=state).is_pending


def test_to_dict_of_pending_request() -> None:
    req = request(SCREEN, AUDIO, VIDEO)
    assert req.to_dict() == {
        "id": "r1",
        "call_cid": "audio_room:room",
        "user_id": "alice",
        "permissions": ["send-audio", "send-video", "screenshare"],
        "state": "pending",
        "created_at": "2025-01-01T12:00:00+00:00",
        "expires_at": "2025-01-01T12:05:00+00:00",
    }


def test_to_dict_of_resolved_request() -> None:
    req = resolve(request(), Resolution.REJECT, by="bob", now=T0 + s(10), reason="not now")
    data = req.to_dict()
    assert data["state"] == "rejected"
    assert data["resolved_by"] == "bob"
    assert data["resolved_at"] == "2025-01-01T12:00:10+00:00"
    assert data["reason"] == "not now"


def test_to_dict_of_resolved_request_without_reason_or_resolver() -> None:
    req = resolve(request(), Resolution.EXPIRE, by=None, now=T0 + TTL)
    data = req.to_dict()
    assert data["state"] == "expired"
    assert data["resolved_by"] is None
    assert data["reason"] is None
    assert data["resolved_at"] == "2025-01-01T12:05:00+00:00"


# --- decide_request: the order of checks --------------------------------------------


def test_empty_ask_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed) as info:
        decide()
    assert info.value.status == 422


def test_empty_ask_is_checked_first() -> None:
    with pytest.raises(ValidationFailed):
        decide(may_request=False, held=frozenset())


@pytest.mark.parametrize(
    "asked",
    [(AUDIO,), (END,), (READ,)],
)
def test_not_member_or_participant_is_permission_denied(asked: tuple[Capability, ...]) -> None:
    # Checked before requestable and held.
    with pytest.raises(PermissionDenied) as info:
        decide(*asked, may_request=False)
    assert info.value.code == "permission_denied"
    assert info.value.details == {"required": "member_or_participant"}


@pytest.mark.parametrize(
    ("asked", "not_requestable"),
    [
        ((END,), ["end-call"]),
        ((JOIN,), ["join-call"]),
        ((Capability.JOIN_BACKSTAGE,), ["join-backstage"]),
        ((AUDIO, END, Capability.GO_LIVE), ["go-live", "end-call"]),
        ((Capability.UPDATE_CALL_PERMISSIONS, SCREEN), ["update-call-permissions"]),
    ],
)
def test_not_requestable(asked: tuple[Capability, ...], not_requestable: list[str]) -> None:
    with pytest.raises(NotRequestable) as info:
        decide(*asked)
    assert info.value.code == "not_requestable"
    assert info.value.details == {"permissions": not_requestable}


@pytest.mark.parametrize("type_name", ["default", "livestream", "development"])
@pytest.mark.parametrize("cap", sorted(MEDIA_CAPABILITIES))
def test_nothing_is_requestable_in_other_builtin_types(type_name: str, cap: Capability) -> None:
    with pytest.raises(NotRequestable):
        decide(cap, held=frozenset(), call_type=BUILTIN_CALL_TYPES[type_name])


def test_not_requestable_is_checked_before_held() -> None:
    with pytest.raises(NotRequestable):
        decide(END, held=frozenset({END}))


@pytest.mark.parametrize(
    ("asked", "held", "already"),
    [
        ((AUDIO,), SPEAKER_HELD, ["send-audio"]),
        ((AUDIO, VIDEO), SPEAKER_HELD, ["send-audio"]),
        ((AUDIO, VIDEO, SCREEN), LISTENER_HELD | {VIDEO, SCREEN}, ["send-video", "screenshare"]),
    ],
)
def test_capability_held(
    asked: tuple[Capability, ...], held: Capabilities, already: list[str]
) -> None:
    with pytest.raises(CapabilityHeld) as info:
        decide(*asked, held=held)
    assert info.value.code == "capability_held"
    assert info.value.status == 409
    assert info.value.details == {"permissions": already}


def test_held_is_checked_before_dedupe_and_cooldown() -> None:
    with pytest.raises(CapabilityHeld):
        decide(
            AUDIO,
            held=SPEAKER_HELD,
            pending=[request(AUDIO)],
            rejected=[rejection(AUDIO, at=T0)],
            now=T0 + s(1),
        )


# --- decide_request: new requests ---------------------------------------------------


def test_new_request() -> None:
    decision = decide(AUDIO, VIDEO, now=T0)
    assert decision == NewRequest(frozenset({AUDIO, VIDEO}), T0 + TTL)


def test_new_request_uses_the_type_ttl() -> None:
    ct = replace(AUDIO_ROOM, request_ttl_s=7)
    assert decide(SCREEN, call_type=ct) == NewRequest(frozenset({SCREEN}), T0 + s(7))


def test_new_request_for_a_custom_requestable_capability() -> None:
    ct = CallType.from_dict("t", {"grants": {"user": ["read-call"]}, "requestable": ["end-call"]})
    assert decide(END, held=frozenset({READ}), call_type=ct) == NewRequest(
        frozenset({END}), T0 + TTL
    )


# --- decide_request: dedupe ---------------------------------------------------------


def test_asking_again_returns_the_pending_request() -> None:
    existing = request(AUDIO)
    assert decide(AUDIO, pending=[existing], now=T0 + s(100)) == ExistingRequest(existing)


def test_asking_for_part_of_a_pending_request_returns_it() -> None:
    existing = request(AUDIO, VIDEO)
    assert decide(VIDEO, pending=[existing]) == ExistingRequest(existing)


def test_asking_across_two_pending_requests_returns_one_of_them() -> None:
    first, second = request(AUDIO, id="a"), request(VIDEO, id="b")
    decision = decide(AUDIO, VIDEO, pending=[first, second])
    assert isinstance(decision, ExistingRequest)
    assert decision.request in (first, second)


def test_dedupe_returns_an_overlapping_request() -> None:
    unrelated, audio = request(SCREEN, id="s"), request(AUDIO, id="a")
    assert decide(AUDIO, pending=[unrelated, audio]) == ExistingRequest(audio)


def test_asking_for_more_creates_a_request_for_only_the_rest() -> None:
    existing = request(AUDIO)
    decision = decide(AUDIO, VIDEO, SCREEN, pending=[existing], now=T0 + s(50))
    assert decision == NewRequest(frozenset({VIDEO, SCREEN}), T0 + s(50) + TTL)


def test_expired_pending_request_is_not_deduped_against() -> None:
    stale = request(AUDIO)
    assert decide(AUDIO, pending=[stale], now=T0 + TTL + s(1)) == NewRequest(
        frozenset({AUDIO}), T0 + TTL + s(1) + TTL
    )


def test_pending_request_at_its_expiry_instant_is_expired() -> None:
    stale = request(AUDIO)
    assert isinstance(decide(AUDIO, pending=[stale], now=T0 + TTL), NewRequest)
    before = T0 + TTL - timedelta(microseconds=1)
    assert decide(AUDIO, pending=[stale], now=before) == ExistingRequest(stale)


def test_expired_request_covers_nothing_of_a_larger_ask() -> None:
    stale, live = request(AUDIO, id="old"), request(VIDEO, id="new", created_at=T0 + s(200))
    decision = decide(AUDIO, VIDEO, pending=[stale, live], now=T0 + s(301))
    assert decision == NewRequest(frozenset({AUDIO}), T0 + s(301) + TTL)


@pytest.mark.parametrize("state", FINAL_STATES)
def test_resolved_requests_in_the_pending_list_are_ignored(state: RequestState) -> None:
    resolved = request(AUDIO, state=state, resolved_at=T0, resolved_by="x")
    assert isinstance(decide(AUDIO, pending=[resolved], now=T0 + s(100)), NewRequest)


def test_dedupe_wins_over_cooldown() -> None:
    existing = request(AUDIO, created_at=T0 + s(1))
    decision = decide(AUDIO, pending=[existing], rejected=[rejection(AUDIO, at=T0)], now=T0 + s(2))
    assert decision == ExistingRequest(existing)


# --- decide_request: cooldown -------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "retry_after"),
    [
        (0, 30),
        (0.5, 30),
        (1, 29),
        (10, 20),
        (29, 1),
        (29.5, 1),
        (29.999999, 1),
    ],
)
def test_cooldown_after_rejection(elapsed: float, retry_after: int) -> None:
    with pytest.raises(RequestCooldown) as info:
        decide(AUDIO, rejected=[rejection(AUDIO, at=T0)], now=T0 + s(elapsed))
    assert info.value.code == "request_cooldown"
    assert info.value.status == 429
    assert info.value.details == {"retry_after_s": retry_after, "permissions": ["send-audio"]}


@pytest.mark.parametrize("elapsed", [30, 30.000001, 31, 3600])
def test_no_cooldown_from_the_end_of_the_cooldown(elapsed: float) -> None:
    now = T0 + s(elapsed)
    decision = decide(AUDIO, rejected=[rejection(AUDIO, at=T0)], now=now)
    assert decision == NewRequest(frozenset({AUDIO}), now + TTL)


def test_cooldown_uses_the_type_setting() -> None:
    ct = replace(AUDIO_ROOM, request_cooldown_s=120)
    with pytest.raises(RequestCooldown) as info:
        decide(AUDIO, rejected=[rejection(AUDIO, at=T0)], now=T0 + s(100), call_type=ct)
    assert info.value.details["retry_after_s"] == 20
    assert isinstance(
        decide(AUDIO, rejected=[rejection(AUDIO, at=T0)], now=T0 + s(120), call_type=ct),
        NewRequest,
    )


def test_zero_cooldown_allows_asking_at_once() -> None:
    ct = replace(AUDIO_ROOM, request_cooldown_s=0)
    assert isinstance(
        decide(AUDIO, rejected=[rejection(AUDIO, at=T0)], now=T0, call_type=ct), NewRequest
    )


def test_cooldown_only_for_the_rejected_capability() -> None:
    decision = decide(VIDEO, rejected=[rejection(AUDIO, at=T0)], now=T0 + s(1))
    assert decision == NewRequest(frozenset({VIDEO}), T0 + s(1) + TTL)


def test_cooldown_when_any_asked_capability_was_rejected() -> None:
    with pytest.raises(RequestCooldown) as info:
        decide(AUDIO, VIDEO, rejected=[rejection(AUDIO, SCREEN, at=T0)], now=T0 + s(1))
    assert info.value.details["permissions"] == ["send-audio", "send-video"]


def test_cooldown_is_checked_for_the_uncovered_part_only() -> None:
    audio = request(AUDIO, created_at=T0)
    with pytest.raises(RequestCooldown) as info:
        decide(AUDIO, VIDEO, pending=[audio], rejected=[rejection(VIDEO, at=T0)], now=T0 + s(5))
    assert info.value.details == {"retry_after_s": 25, "permissions": ["send-video"]}


def test_cooldown_ignores_the_part_already_pending() -> None:
    # Audio is pending (e.g. asked before the type's cooldown was raised) while
    # a rejection of audio is still cooling down: only video is newly asked, and
    # video was never rejected.
    audio = request(AUDIO, created_at=T0 + s(1))
    decision = decide(
        AUDIO, VIDEO, pending=[audio], rejected=[rejection(AUDIO, at=T0)], now=T0 + s(2)
    )
    assert decision == NewRequest(frozenset({VIDEO}), T0 + s(2) + TTL)


def test_cooldown_takes_the_latest_rejection() -> None:
    rejected = [rejection(AUDIO, at=T0, id="a"), rejection(AUDIO, at=T0 + s(20), id="b")]
    with pytest.raises(RequestCooldown) as info:
        decide(AUDIO, rejected=rejected, now=T0 + s(25))
    assert info.value.details["retry_after_s"] == 25


@pytest.mark.parametrize("state", [s for s in FINAL_STATES if s is not RequestState.REJECTED])
def test_only_rejections_start_a_cooldown(state: RequestState) -> None:
    other = request(AUDIO, state=state, resolved_at=T0, resolved_by="x")
    assert isinstance(decide(AUDIO, rejected=[other], now=T0 + s(1)), NewRequest)


def test_rejection_without_resolved_at_is_ignored() -> None:
    broken = request(AUDIO, state=RequestState.REJECTED)
    assert isinstance(decide(AUDIO, rejected=[broken], now=T0), NewRequest)


# --- cooldown_remaining -------------------------------------------------------------


@pytest.mark.parametrize(
    ("rejected_at", "perms", "asked", "cooldown", "now", "expected"),
    [
        (0, {AUDIO}, {AUDIO}, 30, 0, 30),
        (0, {AUDIO}, {AUDIO}, 30, 12, 18),
        (0, {AUDIO}, {AUDIO}, 30, 12.1, 18),
        (0, {AUDIO}, {AUDIO}, 30, 11.9, 19),
        (0, {AUDIO}, {AUDIO}, 30, 30, 0),
        (0, {AUDIO}, {AUDIO}, 30, 45, 0),
        (0, {AUDIO}, {VIDEO}, 30, 1, 0),
        (0, {AUDIO, VIDEO}, {VIDEO, SCREEN}, 30, 1, 29),
        (0, {AUDIO}, {AUDIO}, 0, 0, 0),
        (10, {AUDIO}, {AUDIO}, 30, 0, 40),  # a rejection stamped in the future
    ],
)
def test_cooldown_remaining(
    rejected_at: float,
    perms: set[Capability],
    asked: set[Capability],
    cooldown: int,
    now: float,
    expected: int,
) -> None:
    rejected = [rejection(*perms, at=T0 + s(rejected_at))]
    assert cooldown_remaining(rejected, frozenset(asked), cooldown, T0 + s(now)) == expected


def test_cooldown_remaining_of_nothing() -> None:
    assert cooldown_remaining([], frozenset({AUDIO}), 30, T0) == 0


@PROPERTY_SETTINGS
@given(
    st.lists(st.tuples(capability_sets, st.integers(-100_000, 100_000)), max_size=5),
    capability_sets,
    st.integers(0, 600),
)
def test_cooldown_remaining_is_the_ceiling_of_the_longest_wait(
    rejections: list[tuple[Capabilities, int]], asked: Capabilities, cooldown: int
) -> None:
    rejected = [
        rejection(*perms, at=T0 + timedelta(milliseconds=ms), id=str(i))
        for i, (perms, ms) in enumerate(rejections)
        if perms
    ]
    waits = [
        ((r.resolved_at or T0) + s(cooldown) - T0).total_seconds()
        for r in rejected
        if r.permissions & asked
    ]
    expected = math.ceil(max([0.0, *waits]))
    assert cooldown_remaining(rejected, asked, cooldown, T0) == expected


# --- is_expired ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expired"),
    [
        (T0, False),
        (T0 + s(299), False),
        (T0 + TTL - timedelta(microseconds=1), False),
        (T0 + TTL, True),
        (T0 + TTL + s(1), True),
        (T0 + timedelta(days=30), True),
    ],
)
def test_is_expired(now: datetime, expired: bool) -> None:
    assert is_expired(request(), now) is expired


@pytest.mark.parametrize("state", FINAL_STATES)
def test_resolved_request_is_never_expired(state: RequestState) -> None:
    assert not is_expired(request(state=state, resolved_at=T0), T0 + timedelta(days=30))


# --- resolve ------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", list(Resolution))
def test_resolve_pending(resolution: Resolution) -> None:
    original = request(AUDIO, VIDEO)
    now = T0 + (TTL if resolution is Resolution.EXPIRE else s(10))
    done = resolve(original, resolution, by="mod", now=now, reason="why")
    assert done.state is resolution.final_state
    assert (done.resolved_by, done.resolved_at, done.reason) == ("mod", now, "why")
    # Nothing else changes, and the input is untouched.
    assert replace(done, state=RequestState.PENDING, resolved_by=None, resolved_at=None,
                   reason=None) == original  # fmt: skip
    assert original.is_pending
    assert original.resolved_at is None


def test_resolve_defaults_to_no_reason() -> None:
    done = resolve(request(), Resolution.ACCEPT, by="mod", now=T0)
    assert done.reason is None


def test_requester_cancels() -> None:
    done = resolve(request(), Resolution.CANCEL, by="alice", now=T0 + s(3))
    assert done.state is RequestState.CANCELLED
    assert done.resolved_by == "alice"


@pytest.mark.parametrize("state", FINAL_STATES)
@pytest.mark.parametrize("resolution", list(Resolution))
def test_resolved_request_cannot_move_again(state: RequestState, resolution: Resolution) -> None:
    resolved = request(state=state, resolved_at=T0 + s(1), resolved_by="first")
    with pytest.raises(RequestAlreadyResolved) as info:
        resolve(resolved, resolution, by="second", now=T0 + s(2))
    assert info.value.code == "request_already_resolved"
    assert info.value.status == 409
    assert info.value.details == {"state": state.value, "resolved_by": "first"}


@pytest.mark.parametrize("resolution", [Resolution.ACCEPT, Resolution.REJECT, Resolution.CANCEL])
@pytest.mark.parametrize("late", [s(0), s(0.001), s(1), timedelta(days=1)])
def test_late_answer_after_expiry_is_already_resolved(
    resolution: Resolution, late: timedelta
) -> None:
    with pytest.raises(RequestAlreadyResolved) as info:
        resolve(request(), resolution, by="mod", now=T0 + TTL + late)
    assert info.value.details == {"state": "expired"}


@pytest.mark.parametrize("resolution", [Resolution.ACCEPT, Resolution.REJECT, Resolution.CANCEL])
def test_answer_just_before_expiry_succeeds(resolution: Resolution) -> None:
    now = T0 + TTL - timedelta(microseconds=1)
    assert resolve(request(), resolution, by="mod", now=now).state is resolution.final_state


@pytest.mark.parametrize("late", [s(0), s(1), timedelta(days=1)])
def test_expiring_a_pending_request(late: timedelta) -> None:
    done = resolve(request(), Resolution.EXPIRE, by=None, now=T0 + TTL + late)
    assert done.state is RequestState.EXPIRED
    assert done.resolved_by is None


def test_second_moderator_loses() -> None:
    first = resolve(request(), Resolution.ACCEPT, by="mod1", now=T0 + s(1))
    with pytest.raises(RequestAlreadyResolved) as info:
        resolve(first, Resolution.REJECT, by="mod2", now=T0 + s(1))
    assert info.value.details == {"state": "accepted", "resolved_by": "mod1"}


@PROPERTY_SETTINGS
@given(
    st.lists(
        st.tuples(st.sampled_from(list(Resolution)), st.integers(0, 299_999)),
        min_size=1,
        max_size=8,
    )
)
def test_request_leaves_pending_exactly_once(
    attempts: list[tuple[Resolution, int]],
) -> None:
    """Before expiry, of any sequence of answers to the stored request only the first wins."""
    stored = request()
    for i, (resolution, ms) in enumerate(attempts):
        try:
            stored = resolve(stored, resolution, by=f"m{i}", now=T0 + timedelta(milliseconds=ms))
        except RequestAlreadyResolved as err:
            assert i > 0
            assert err.details["resolved_by"] == "m0"
        else:
            assert i == 0
    assert stored.state is attempts[0][0].final_state
    assert stored.resolved_by == "m0"


@PROPERTY_SETTINGS
@given(
    st.lists(
        st.tuples(st.sampled_from(list(Resolution)), st.integers(0, 600_000)),
        min_size=1,
        max_size=8,
    )
)
def test_request_leaves_pending_at_most_once(attempts: list[tuple[Resolution, int]]) -> None:
    """With answers at any time: the first that is allowed wins, nothing after it does."""
    stored = request()
    winners = []
    for i, (resolution, ms) in enumerate(attempts):
        now = T0 + timedelta(milliseconds=ms)
        allowed = stored.is_pending and (resolution is Resolution.EXPIRE or now < stored.expires_at)
        try:
            stored = resolve(stored, resolution, by=f"m{i}", now=now)
        except RequestAlreadyResolved:
            assert not allowed
        else:
            assert allowed
            winners.append(i)
    assert len(winners) <= 1
    if winners:
        assert stored.resolved_by == f"m{winners[0]}"
    else:
        assert stored.is_pending


# --- satisfied_requests (auto-accept) -----------------------------------------------


def test_request_satisfied_when_every_capability_is_held() -> None:
    audio, both = request(AUDIO, id="a"), request(AUDIO, VIDEO, id="b")
    assert satisfied_requests([audio, both], LISTENER_HELD | {AUDIO}) == [audio]
    assert satisfied_requests([audio, both], LISTENER_HELD | {AUDIO, VIDEO}) == [audio, both]


def test_partly_held_request_stays_pending() -> None:
    assert satisfied_requests([request(AUDIO, VIDEO)], SPEAKER_HELD) == []


def test_satisfied_requests_of_nothing_held() -> None:
    assert satisfied_requests([request(AUDIO)], frozenset()) == []
    assert satisfied_requests([], SPEAKER_HELD) == []


@pytest.mark.parametrize("state", FINAL_STATES)
def test_resolved_requests_are_not_satisfied_again(state: RequestState) -> None:
    done = request(AUDIO, state=state, resolved_at=T0)
    assert satisfied_requests([done], SPEAKER_HELD) == []


def test_satisfied_requests_keeps_order_and_accepts() -> None:
    reqs = [request(SCREEN, id="s"), request(VIDEO, id="v"), request(AUDIO, id="a")]
    held = LISTENER_HELD | {SCREEN, AUDIO}
    satisfied = satisfied_requests(reqs, held)
    assert [r.id for r in satisfied] == ["s", "a"]
    accepted = [resolve(r, Resolution.ACCEPT, by="mod", now=T0 + s(1)) for r in satisfied]
    assert all(r.state is RequestState.ACCEPTED for r in accepted)


def test_direct_grant_auto_accepts_the_pending_request() -> None:
    listener = MemberGrants("user")
    pending = request(AUDIO)
    granted = with_granted(listener, frozenset({AUDIO}))
    held = own_capabilities(AUDIO_ROOM, CallPhase.LIVE, granted)
    assert satisfied_requests([pending], held) == [pending]


def test_role_change_auto_accepts_the_pending_request() -> None:
    pending = request(AUDIO)
    held = own_capabilities(AUDIO_ROOM, CallPhase.LIVE, MemberGrants("speaker"))
    assert satisfied_requests([pending], held) == [pending]


@PROPERTY_SETTINGS
@given(st.lists(capability_sets.filter(bool), max_size=6), capability_sets)
def test_satisfied_exactly_when_all_asked_are_held(
    asks: list[Capabilities], held: Capabilities
) -> None:
    reqs = [request(*perms, id=str(i)) for i, perms in enumerate(asks)]
    expected = [r for r in reqs if all(c in held for c in r.permissions)]
    assert satisfied_requests(reqs, held) == expected


# --- a simulated requester: dedupe, cooldown and auto-accept together ---------------

SIM_CAPS = [AUDIO, VIDEO, SCREEN]
asks = st.frozensets(st.sampled_from(SIM_CAPS), min_size=1)
# Mostly short delays, so asks land within the TTL and the cooldown; some long ones.
delays = st.sampled_from([0, 0, 1, 2, 5]) | st.integers(0, 90)
ask_steps = st.tuples(st.just("ask"), asks, delays)
# The answered request is picked by index modulo the store size; negative
# indices pick the latest ones, which makes "reject, then ask again" common.
answer_steps = st.tuples(
    st.just("answer"),
    st.just(-1) | st.integers(0, 30),
    st.sampled_from([*Resolution, Resolution.REJECT, Resolution.REJECT]),
    delays,
)
# Asks and answers are drawn more often than grants, which make everything held.
# "reask" asks again for what the latest request asked: dedupe, cooldown or held.
reask_steps = st.tuples(st.just("reask"), delays)
one_cap = st.frozensets(st.sampled_from(SIM_CAPS), min_size=1, max_size=1)
steps = st.one_of(
    ask_steps,
    ask_steps,
    reask_steps,
    reask_steps,
    answer_steps,
    answer_steps,
    st.tuples(st.just("grant"), one_cap, delays),
    st.tuples(st.just("revoke"), one_cap, delays),
    st.tuples(st.just("revoke"), one_cap, delays),
    st.tuples(st.just("sweep"), delays),
)


def live_pending(store: list[PermissionRequest], now: datetime) -> list[PermissionRequest]:
    return [r for r in store if r.is_pending and not is_expired(r, now)]


def expected_outcome(
    asked: Capabilities,
    held: Capabilities,
    store: list[PermissionRequest],
    cooldown_s: int,
    now: datetime,
) -> tuple[str, Any]:
    """What spec §1 says asking does, computed independently of `decide_request`."""
    if asked & held:
        return "held", None
    covered: set[Capability] = set()
    for r in live_pending(store, now):
        covered |= r.permissions
    uncovered = asked - covered
    if not uncovered:
        return "existing", None
    waits = [
        (r.resolved_at + s(cooldown_s) - now).total_seconds()
        for r in store
        if r.state is RequestState.REJECTED and r.resolved_at and r.permissions & uncovered
    ]
    if waits and max(waits) > 0:
        return "cooldown", math.ceil(max(waits))
    return "new", uncovered


@PROPERTY_SETTINGS
@example(  # every outcome at least once, whatever Hypothesis draws
    role="user",
    ttl=60,
    cooldown=30,
    plan=[
        ("ask", frozenset({AUDIO, VIDEO}), 0),  # new
        ("ask", frozenset({AUDIO}), 1),  # existing
        ("answer", -1, Resolution.REJECT, 1),
        ("reask", 10),  # cooldown (retry after 20 s)
        ("reask", 20),  # new again, exactly at the end of the cooldown
        ("grant", frozenset({AUDIO}), 1),  # partly held: stays pending
        ("grant", frozenset({VIDEO}), 1),  # fully held: auto-accepted
        ("reask", 1),  # held
        ("revoke", frozenset({AUDIO}), 1),
        ("ask", frozenset({AUDIO, SCREEN}), 1),  # new
        ("answer", -1, Resolution.ACCEPT, 70),  # too late: already resolved (expired)
        ("sweep", 0),
        ("answer", -1, Resolution.CANCEL, 0),  # expired: cannot move again
    ],
)
@given(
    st.sampled_from(["user", "speaker"]),
    st.integers(1, 120),
    st.integers(0, 60),
    st.lists(steps, min_size=15, max_size=40),
)
def test_simulated_requester(role: str, ttl: int, cooldown: int, plan: list[Any]) -> None:
    """Random asks, answers, grants, revokes and expiry sweeps against an in-memory store.

    After every step: no two live pending requests share a capability, no live
    pending request asks for something fully held, and every accepted request
    left the requester holding what it asked for.
    """
    ct = replace(AUDIO_ROOM, request_ttl_s=ttl, request_cooldown_s=cooldown)
    member = MemberGrants(role)
    store: list[PermissionRequest] = []
    now = T0

    def held() -> Capabilities:
        return own_capabilities(ct, CallPhase.LIVE, member)

    def replace_stored(new: PermissionRequest) -> None:
        store[:] = [new if r.id == new.id else r for r in store]

    def auto_accept() -> None:
        for r in satisfied_requests(live_pending(store, now), held()):
            replace_stored(resolve(r, Resolution.ACCEPT, by="system", now=now))

    for step in plan:
        now += s(step[-1])
        kind = step[0]
        if kind == "reask" and store:
            kind, step = "ask", ("ask", store[-1].permissions, step[-1])
        if kind == "ask":
            asked = step[1]
            outcome, detail = expected_outcome(asked, held(), store, cooldown, now)
            try:
                decision = decide_request(
                    call_type=ct,
                    asked=asked,
                    held=held(),
                    may_request=True,
                    pending=[r for r in store if r.is_pending],
                    rejected=[r for r in store if r.state is RequestState.REJECTED],
                    now=now,
                )
            except CapabilityHeld:
                assert outcome == "held"
            except RequestCooldown as err:
                assert outcome == "cooldown"
                assert err.details["retry_after_s"] == detail
            else:
                if isinstance(decision, ExistingRequest):
                    assert outcome == "existing"
                    assert decision.request in live_pending(store, now)
                    assert decision.request.permissions & asked
                else:
                    assert outcome == "new"
                    assert decision.permissions == detail
                    assert decision.expires_at == now + s(ttl)
                    store.append(
                        PermissionRequest(
                            id=f"r{len(store)}",
                            call_cid="audio_room:room",
                            user_id="alice",
                            permissions=decision.permissions,
                            state=RequestState.PENDING,
                            created_at=now,
                            expires_at=decision.expires_at,
                        )
                    )
        elif kind == "answer" and store:
            target = store[step[1] % len(store)]
            resolution = step[2]
            allowed = target.is_pending and (
                resolution is Resolution.EXPIRE or not is_expired(target, now)
            )
            try:
                done = resolve(target, resolution, by="mod", now=now)
            except RequestAlreadyResolved:
                assert not allowed
            else:
                assert allowed
                replace_stored(done)
                if resolution is Resolution.ACCEPT:
                    member = with_granted(member, done.permissions)
                    assert done.permissions <= held()
                    auto_accept()
        elif kind == "grant":
            member = with_granted(member, step[1])
            assert step[1] <= held()
            auto_accept()
        elif kind == "revoke":
            member = with_revoked(member, step[1])
            assert not step[1] & held()
        elif kind == "sweep":
            for r in list(store):
                if is_expired(r, now):
                    replace_stored(resolve(r, Resolution.EXPIRE, by=None, now=now))

        live = live_pending(store, now)
        for i, a in enumerate(live):
            assert a.permissions, "a request always asks for something"
            assert a.permissions <= ct.requestable
            assert not a.permissions <= held(), "fully held requests are auto-accepted"
            for b in live[i + 1 :]:
                assert not a.permissions & b.permissions, (a, b)
        assert len({r.id for r in store}) == len(store)
