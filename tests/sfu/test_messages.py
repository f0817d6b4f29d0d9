"""`podium.sfu.messages`: the signalling wire form, parsed strictly and rendered exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.core.capabilities import Capability
from podium.protocol.errors import SfuErrorCode
from podium.protocol.events import DenyReason, StopReason
from podium.sfu.messages import (
    ALL,
    Answer,
    Candidate,
    ClientMessage,
    Error,
    Leave,
    Offer,
    Publish,
    PublishDenied,
    PublishOk,
    ServerMessage,
    SourceResumed,
    StopSource,
    Subscribe,
    Track,
    Tracks,
    Unpublish,
    parse_client_message,
)
from podium.sfu.sources import Source
from tests.sfu import PROPERTY_SETTINGS

CANDIDATE = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"

# --- client -> server ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({"type": "sfu.offer", "sdp": "v=0"}, Offer("v=0")),
        ({"type": "sfu.answer", "sdp": "v=0"}, Answer("v=0")),
        (
            {"type": "sfu.candidate", "candidate": CANDIDATE, "sdp_mid": "0", "sdp_mline_index": 0},
            Candidate(CANDIDATE, "0", 0),
        ),
        (
            {"type": "sfu.candidate", "candidate": CANDIDATE, "sdp_mid": "1"},
            Candidate(CANDIDATE, "1"),
        ),
        (
            {"type": "sfu.candidate", "candidate": CANDIDATE, "sdp_mline_index": 2},
            Candidate(CANDIDATE, None, 2),
        ),
        ({"type": "sfu.candidate", "candidate": ""}, Candidate("")),
        ({"type": "sfu.publish", "source": "microphone"}, Publish(Source.MICROPHONE)),
        ({"type": "sfu.publish", "source": "camera"}, Publish(Source.CAMERA)),
        ({"type": "sfu.unpublish", "source": "screen"}, Unpublish(Source.SCREEN)),
        ({"type": "sfu.subscribe", "user_ids": "all"}, Subscribe(ALL)),
        ({"type": "sfu.subscribe", "user_ids": []}, Subscribe(())),
        ({"type": "sfu.subscribe", "user_ids": ["b", "a", "b"]}, Subscribe(("b", "a"))),
        ({"type": "sfu.leave"}, Leave()),
    ],
    ids=lambda v: v.get("type") if isinstance(v, dict) else None,
)
def test_parse_client_messages(wire: dict[str, Any], message: ClientMessage) -> None:
    assert parse_client_message(wire) == message


@pytest.mark.parametrize(
    ("wire", "fragment"),
    [
        ([], "must be a JSON object, got list"),
        ("sfu.leave", "must be a JSON object, got str"),
        ({}, "unknown message type None"),
        ({"type": 3}, "unknown message type 3"),
        ({"type": "sfu.nope"}, "unknown message type 'sfu.nope'; expected one of sfu.offer"),
        ({"type": "sfu.publish_ok", "source": "camera"}, "unknown message type 'sfu.publish_ok'"),
        ({"type": "offer", "sdp": "v=0"}, "unknown message type 'offer'"),
        ({"type": "sfu.offer"}, "sfu.offer: missing field 'sdp'"),
        ({"type": "sfu.offer", "sdp": ""}, "sfu.offer: field 'sdp' must be a non-empty string"),
        ({"type": "sfu.answer", "sdp": 1}, "sfu.answer: field 'sdp' must be a non-empty string"),
        ({"type": "sfu.offer", "sdp": "v=0", "kind": "x"}, "sfu.offer: unknown field(s) 'kind'"),
        ({"type": "sfu.offer", "sdp": "", "1": 2}, "sfu.offer: unknown field(s) '1'"),
        ({"type": "sfu.leave", "reason": "bye"}, "sfu.leave: unknown field(s) 'reason'"),
        ({"type": "sfu.candidate"}, "sfu.candidate: missing field 'candidate'"),
        (
            {"type": "sfu.candidate", "candidate": CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0},
            "sfu.candidate: unknown field(s) 'sdpMLineIndex', 'sdpMid'",
        ),
        (
            {"type": "sfu.candidate", "candidate": CANDIDATE},
            "a candidate needs 'sdp_mid' or 'sdp_mline_index'",
        ),
        (
            {"type": "sfu.candidate", "candidate": "", "sdpMid": "0"},
            "sfu.candidate: unknown field(s) 'sdpMid'",
        ),
        (
            {"type": "sfu.candidate", "candidate": CANDIDATE, "sdp_mid": 0},
            "field 'sdp_mid' must be a string or null",
        ),
        (
            {"type": "sfu.candidate", "candidate": CANDIDATE, "sdp_mline_index": "0"},
            "field 'sdp_mline_index' must be an integer or null",
        ),
        (
            {"type": "sfu.candidate", "candidate": CANDIDATE, "sdp_mline_index": True},
            "field 'sdp_mline_index' must be an integer or null",
        ),
        (
            {"type": "sfu.candidate", "candidate": CANDIDATE, "sdp_mline_index": -1},
            "field 'sdp_mline_index' must not be negative",
        ),
        ({"type": "sfu.candidate", "candidate": None}, "field 'candidate' must be a string"),
        ({"type": "sfu.publish"}, "sfu.publish: missing field 'source'"),
        (
            {"type": "sfu.publish", "source": "audio"},
            "field 'source' must be one of microphone, camera, screen, got 'audio'",
        ),
        ({"type": "sfu.unpublish", "source": None}, "field 'source' must be one of"),
        ({"type": "sfu.subscribe"}, "sfu.subscribe: missing field 'user_ids'"),
        ({"type": "sfu.subscribe", "user_ids": "ALL"}, "'user_ids' must be \"all\" or a list"),
        ({"type": "sfu.subscribe", "user_ids": "alice"}, "'user_ids' must be \"all\" or a list"),
        ({"type": "sfu.subscribe", "user_ids": ["ok", 3]}, "invalid user id 3"),
        ({"type": "sfu.subscribe", "user_ids": [""]}, "invalid user id ''"),
        ({"type": "sfu.subscribe", "user_ids": ["a b"]}, "invalid user id 'a b'"),
        ({"type": "sfu.subscribe", "user_ids": ["x" * 65]}, "invalid user id"),
        ({"type": "sfu.subscribe", "user_ids": ["ok\n"]}, "invalid user id 'ok\\n'"),
    ],
)
def test_bad_client_messages_are_clear_value_errors(wire: object, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_client_message(wire)
    assert fragment in str(info.value)


# --- server -> client ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (Offer("v=0"), {"type": "sfu.offer", "sdp": "v=0"}),
        (Answer("v=0"), {"type": "sfu.answer", "sdp": "v=0"}),
        (
            Candidate(CANDIDATE, "0", 0),
            {"type": "sfu.candidate", "candidate": CANDIDATE, "sdp_mid": "0", "sdp_mline_index": 0},
        ),
        (PublishOk(Source.CAMERA), {"type": "sfu.publish_ok", "source": "camera"}),
        (
            PublishDenied(Source.SCREEN, Capability.SCREENSHARE, DenyReason.NOT_GRANTED),
            {
                "type": "sfu.publish_denied",
                "source": "screen",
                "capability": "screenshare",
                "reason": "not_granted",
            },
        ),
        (
            StopSource(Source.MICROPHONE, StopReason.ROLE_CHANGED),
            {"type": "sfu.stop_source", "source": "microphone", "reason": "role_changed"},
        ),
        (SourceResumed(Source.MICROPHONE), {"type": "sfu.source_resumed", "source": "microphone"}),
        (Tracks((), ()), {"type": "sfu.tracks", "tracks": []}),
        (
            Tracks(
                (Track("alice", Source.MICROPHONE, "t1"), Track("bob", Source.SCREEN, "t2")),
                ("0", None),
            ),
            {
                "type": "sfu.tracks",
                "tracks": [
                    {"user_id": "alice", "source": "microphone", "track_id": "t1", "mid": "0"},
                    {"user_id": "bob", "source": "screen", "track_id": "t2", "mid": None},
                ],
            },
        ),
        (
            Error(SfuErrorCode.OFFER_REQUIRED, "send sfu.offer first"),
            {"type": "sfu.error", "code": "offer_required", "message": "send sfu.offer first"},
        ),
    ],
    ids=lambda v: v.get("type") if isinstance(v, dict) else None,
)
def test_server_messages_to_wire(message: ServerMessage, wire: dict[str, Any]) -> None:
    rendered = message.to_wire()
    assert rendered == wire
    # Plain JSON values only: no enum objects or tuples leak onto the wire.
    assert json.loads(json.dumps(rendered)) == rendered
    assert all(type(v) in (str, int, list, type(None)) for v in rendered.values())


@pytest.mark.parametrize(
    ("vocabulary", "values"),
    [
        (StopReason, ["revoked", "muted", "blocked", "role_changed", "call_ended", "left"]),
        (DenyReason, ["not_granted", "revoked", "role_changed"]),
        (
            SfuErrorCode,
            [
                "invalid_message",
                "offer_required",
                "negotiation_in_progress",
                "unexpected_answer",
                "replaced",
                "limit_exceeded",
            ],
        ),
    ],
)
def test_wire_vocabularies(vocabulary: type[StopReason], values: list[str]) -> None:
    assert [v.value for v in vocabulary] == values


# --- properties ------------------------------------------------------------------------

user_ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
sources = st.sampled_from(list(Source))
sdps = st.text(min_size=1, max_size=40)
candidates = st.one_of(
    st.builds(
        Candidate, st.just(""), st.none() | st.text(max_size=3), st.none() | st.integers(0, 9)
    ),
    st.builds(Candidate, st.just(CANDIDATE), st.text(max_size=3), st.none() | st.integers(0, 9)),
    st.builds(Candidate, st.just(CANDIDATE), st.none(), st.integers(0, 9)),
)
client_messages: st.SearchStrategy[ClientMessage] = st.one_of(
    st.builds(Offer, sdps),
    st.builds(Answer, sdps),
    candidates,
    st.builds(Publish, sources),
    st.builds(Unpublish, sources),
    st.builds(Subscribe, st.just(ALL) | st.lists(user_ids, unique=True).map(tuple)),
    st.just(Leave()),
)


@given(client_messages)
@PROPERTY_SETTINGS
def test_client_messages_round_trip_through_json(message: ClientMessage) -> None:
    wire = json.loads(json.dumps(message.to_wire()))
    assert wire["type"].startswith("sfu.")
    assert parse_client_message(wire) == message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
near_messages = st.builds(
    lambda kind, extra: {"type": kind, **extra},
    st.sampled_from(["sfu.offer", "sfu.candidate", "sfu.publish", "sfu.subscribe", "sfu.leave"]),
    st.dictionaries(
        st.sampled_from(["sdp", "candidate", "sdp_mid", "sdp_mline_index", "source", "user_ids"]),
        json_values | sources | st.just(ALL),
    ),
)


@given(json_values | near_messages)
@PROPERTY_SETTINGS
def test_any_json_parses_or_raises_value_error(data: object) -> None:
    try:
        message = parse_client_message(data)
    except ValueError as exc:
        assert str(exc)
    else:
        assert parse_client_message(message.to_wire()) == message


def test_tracks_need_one_mid_per_track() -> None:
    with pytest.raises(ValueError, match="1 tracks but 0 mids"):
        Tracks((Track("alice", Source.MICROPHONE, "t1"),), ())
