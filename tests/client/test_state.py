"""`CallState`, `PermissionHandle` and capability checks as pure data: no server."""

from __future__ import annotations

from typing import Any

import pytest

from podium.client import CAPABILITIES, CallState, Client, apply_event, apply_snapshot
from podium.client.state import check_capabilities, check_capability

CID = "audio_room:r1"


def snapshot(seq: int, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "call": {"cid": CID, "type": "audio_room", "id": "r1", "phase": "live", "live": True},
        "settings": {"name": "audio_room", "requestable": ["send-audio", "send-video"]},
        "members": [{"user_id": "host", "role": "host"}],
        "participants": [{"user_id": "host", "name": "Host"}],
        "blocked_user_ids": [],
        "own_capabilities": ["read-call", "join-call"],
        "pending_requests": [],
        "seq": seq,
    }
    data.update(overrides)
    return data


def event(seq: int, type: str, **payload: Any) -> dict[str, Any]:
    return {"type": type, "call_cid": CID, "seq": seq, "created_at": "t", **payload}


def test_capability_names_are_the_fourteen_of_the_spec() -> None:
    assert len(CAPABILITIES) == 14
    assert check_capability("send-audio") == "send-audio"
    with pytest.raises(ValueError, match=r"unknown capability 'send_audio'.*send-audio"):
        check_capability("send_audio")
    assert check_capabilities(["send-audio", "send-audio", "screenshare"]) == [
        "send-audio",
        "screenshare",
    ]
    with pytest.raises(TypeError):
        check_capabilities("send-audio")
    with pytest.raises(ValueError, match="at least one"):
        check_capabilities([])


def test_snapshot_then_events_in_seq_order() -> None:
    state = CallState.from_snapshot(snapshot(3))
    assert state.loaded and state.cid == CID and state.live and state.seq == 3
    assert state.type == "audio_room" and state.id == "r1"
    assert state.requestable == {"send-audio", "send-video"}

    joined = event(4, "call.participant_joined", participant={"user_id": "bob", "name": "Bob"})
    assert apply_event(state, joined, "bob")
    assert "bob" in state.participants and state.seq == 4
    assert not apply_event(state, joined, "bob"), "an event already reflected is skipped"

    apply_event(
        state, event(5, "call.member_added", members=[{"user_id": "bob", "role": "x"}]), None
    )
    apply_event(
        state, event(6, "call.member_updated", members=[{"user_id": "bob", "role": "y"}]), None
    )
    assert state.members["bob"]["role"] == "y"
    apply_event(state, event(7, "call.member_removed", user_ids=["bob"]), None)
    assert "bob" not in state.members

    request = {"id": "q1", "user_id": "bob", "permissions": ["send-audio"], "state": "pending"}
    apply_event(state, event(8, "call.permission_request", request=request, user={}), "host")
    assert state.pending_of("bob") == [request]
    resolved = {**request, "state": "accepted"}
    apply_event(state, event(9, "call.permission_request_resolved", request=resolved), "host")
    assert not state.pending_requests

    mine = event(10, "call.permissions_updated", user_id="bob", own_capabilities=["read-call"])
    apply_event(state, mine, "host")
    assert state.own_capabilities == {"read-call", "join-call"}, "someone else's update"
    apply_event(state, {**mine, "seq": 11}, "bob")
    assert state.own_capabilities == {"read-call"}

    apply_event(state, event(12, "call.blocked_user", user_id="bob", by="host"), None)
    assert "bob" in state.blocked_user_ids and "bob" not in state.participants
    apply_event(state, event(13, "call.unblocked_user", user_id="bob", by="host"), None)
    assert not state.blocked_user_ids

    stopped = {"cid": CID, "phase": "backstage", "backstage": True, "live": False}
    apply_event(state, event(14, "call.live_stopped", call=stopped), None)
    assert state.backstage and not state.live and state.phase == "backstage"
    ended = {"cid": CID, "phase": "ended", "ended": True}
    apply_event(state, event(15, "call.ended", call=ended), None)
    assert state.ended and not state.participants


def test_older_snapshots_are_ignored() -> None:
    state = CallState.from_snapshot(snapshot(5))
    assert not apply_snapshot(state, snapshot(4, own_capabilities=[]))
    assert state.own_capabilities == {"read-call", "join-call"}
    assert apply_snapshot(state, snapshot(5, own_capabilities=["read-call"]))
    assert state.own_capabilities == {"read-call"}
    pending = [{"id": "q1", "user_id": "me", "permissions": ["send-audio"], "state": "pending"}]
    assert apply_snapshot(state, snapshot(9, pending_requests=pending))
    assert list(state.pending_requests) == ["q1"] and state.seq == 9


def test_permission_handle_from_state() -> None:
    client = Client("http://127.0.0.1:1", "x.eyJzdWIiOiJtZSJ9.y")  # {"sub": "me"}; never sent
    assert client.user_id == "me"
    call = client.call("audio_room", "r1")
    assert client.call("audio_room", "r1") is call
    apply_snapshot(call.state, snapshot(1))
    mic = call.permission("send-audio")
    assert not mic.has_permission and not mic.is_awaiting_permission
    assert not mic.can_request_permission, "not a member or participant yet"

    participant = {"user_id": "me", "name": "Me"}
    apply_event(call.state, event(2, "call.participant_joined", participant=participant), "me")
    assert mic.can_request_permission
    assert not call.permission("end-call").can_request_permission, "not requestable"

    request = {"id": "q1", "user_id": "me", "permissions": ["send-audio"], "state": "pending"}
    apply_snapshot(call.state, snapshot(3, pending_requests=[request], participants=[participant]))
    assert mic.is_awaiting_permission and mic.pending_request == request
    assert not mic.can_request_permission
    assert call.permission("send-video").can_request_permission

    caps = ["read-call", "join-call", "send-audio"]
    apply_event(
        call.state, event(4, "call.permissions_updated", user_id="me", own_capabilities=caps), "me"
    )
    assert mic.has_permission and call.has_permission("send-audio")
    assert not mic.can_request_permission
    # Accepted once held, even before its resolved event arrives: never allowed and awaiting.
    assert not mic.is_awaiting_permission and not call.state.pending_requests


def test_a_partly_held_request_stays_pending() -> None:
    state = CallState.from_snapshot(snapshot(1))
    both = {"id": "q1", "user_id": "me", "permissions": ["send-audio", "send-video"]}
    other = {"id": "q2", "user_id": "bob", "permissions": ["send-audio"]}
    apply_snapshot(state, snapshot(2, pending_requests=[both, other]))
    caps = ["read-call", "send-audio"]
    apply_event(
        state, event(3, "call.permissions_updated", user_id="me", own_capabilities=caps), "me"
    )
    assert list(state.pending_requests) == ["q1", "q2"]


def test_handlers_run_after_the_state_is_updated() -> None:
    client = Client("http://127.0.0.1:1", "x.eyJzdWIiOiJtZSJ9.y")
    call = client.call("audio_room", "r1")
    apply_snapshot(call.state, snapshot(1))
    seen: list[tuple[str, bool]] = []
    call.on(
        "call.participant_joined",
        lambda e: seen.append((e["type"], "bob" in call.state.participants)),
    )
    stop = call.on("*", lambda e: seen.append(("*", True)))
    call.on("call.participant_joined", lambda e: 1 / 0)  # a failing handler harms no one
    call.handle_frame(event(2, "call.participant_joined", participant={"user_id": "bob"}))
    assert seen == [("call.participant_joined", True), ("*", True)]
    stop()
    stop()
    call.handle_frame(event(3, "call.participant_left", participant={"user_id": "bob"}))
    assert len(seen) == 2 and "bob" not in call.state.participants


def test_server_tokens_have_no_user() -> None:
    # {"server": true, "sub": "ops"}
    client = Client("http://127.0.0.1:1", "x.eyJzZXJ2ZXIiOnRydWUsInN1YiI6Im9wcyJ9.y")
    assert client.user_id is None
    with pytest.raises(ValueError, match="base_url"):
        Client("ftp://127.0.0.1", "t")
