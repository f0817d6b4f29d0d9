"""The event WebSocket (spec §3) against a real server: auth, watch, recipients, replay."""

from __future__ import annotations

import asyncio
import time

import jwt

from podium.services.audience import CHECK_INTERVAL_S, WINDOW_S
from podium.tokens import mint_user_token
from tests.api.helpers import (
    JSON,
    ClientFactory,
    WsFactory,
    WsProbe,
    ask,
    barrier,
    counted_out,
    create,
    live_audio_room,
    ok,
    put_call_type,
    requests_of,
    uid,
)
from tests.server import SECRET, ServerProcess


def assert_event(frame: JSON, cid: str) -> None:
    assert frame["type"].startswith("call.")
    assert frame["call_cid"] == cid
    assert isinstance(frame["seq"], int) and frame["seq"] > 0
    assert isinstance(frame["created_at"], str) and frame["created_at"]


def assert_increasing(probe: WsProbe, cid: str) -> None:
    seqs = [f["seq"] for f in probe.events(cid)]
    assert seqs == sorted(set(seqs)), seqs


def error_code(frame: JSON) -> str:
    assert frame["type"] == "error", frame
    error = frame["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["message"], str) and isinstance(error["details"], dict)
    code: str = error["code"]
    return code


async def pong(probe: WsProbe) -> JSON:
    start = len(probe.frames)
    await probe.send({"type": "ping"})
    return await probe.wait_type("pong", start=start)


# connecting


async def test_connection_ok_first_with_query_token(
    server: ServerProcess, ws_connect: WsFactory
) -> None:
    user = uid("u")
    probe = await ws_connect(server.token(user))
    first = await probe.wait_for(lambda f: True)
    assert probe.frames[0] is first
    assert first["type"] == "connection.ok"
    assert first["user_id"] == user
    assert "seq" not in first


async def test_auth_by_first_message(server: ServerProcess, ws_connect: WsFactory) -> None:
    user = uid("u")
    probe = await ws_connect(server.token(user), auth_message=True)
    first = await probe.wait_for(lambda f: True)
    assert first["type"] == "connection.ok" and first["user_id"] == user
    assert (await pong(probe))["type"] == "pong"


async def test_server_token_connects(server: ServerProcess, ws_connect: WsFactory) -> None:
    probe = await ws_connect(server.server_token())
    assert (await probe.connected())["type"] == "connection.ok"


async def _refused(probe: WsProbe, code: str) -> None:
    frame = await probe.wait_for(lambda f: True)
    assert error_code(frame) == code
    close_code = await probe.wait_closed()
    assert close_code is not None
    assert probe.closed
    assert not any(f["type"] == "connection.ok" for f in probe.frames)


async def test_bad_tokens_get_an_error_frame_then_close(
    server: ServerProcess, ws_connect: WsFactory
) -> None:
    now = int(time.time())
    wrong_secret = jwt.encode({"sub": "m", "exp": now + 60}, "x" * 40, algorithm="HS256")
    for token in ("garbage", wrong_secret, "a.b.c"):
        await _refused(await ws_connect(token), "invalid_token")
        await _refused(await ws_connect(token, auth_message=True), "invalid_token")
    expired = mint_user_token(SECRET, "late", ttl_s=-30)
    await _refused(await ws_connect(expired), "token_expired")
    await _refused(await ws_connect(expired, auth_message=True), "token_expired")


async def test_first_message_must_be_auth(server: ServerProcess, ws_connect: WsFactory) -> None:
    for first in ({"type": "watch", "call_cid": "default:x"}, "not json", {"type": "auth"}, [1]):
        probe = await ws_connect(None)
        await probe.send(first)  # type: ignore[arg-type]
        frame = await probe.wait_for(lambda f: True)
        assert error_code(frame) in ("validation_error", "invalid_token"), frame
        await probe.wait_closed()
        assert not any(f["type"] == "connection.ok" for f in probe.frames)


async def test_ping_pong(server: ServerProcess, ws_connect: WsFactory) -> None:
    probe = await ws_connect(server.token(uid("u")))
    await probe.connected()
    for _ in range(3):
        frame = await pong(probe)
        assert frame == {"type": "pong"}


# watching


async def test_watch_ok(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id = uid("host")
    room, _ = await create(clients(host_id), "default")
    probe = await ws_connect(server.token(host_id))
    await probe.connected()
    frame = await probe.watch(room.cid)
    assert frame["type"] == "watch.ok" and frame["call_cid"] == room.cid
    # watching twice is fine; unwatch acknowledges
    assert (await probe.watch(room.cid))["type"] == "watch.ok"
    start = len(probe.frames)
    await probe.send({"type": "unwatch", "call_cid": room.cid})
    assert (await probe.wait_type("unwatch.ok", start=start))["call_cid"] == room.cid


async def test_acknowledgements_carry_no_seq(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id = uid("host")
    room, _ = await create(clients(host_id), "default")
    probe = await ws_connect(server.token(host_id))
    await probe.connected()
    assert "seq" not in await pong(probe)
    start = len(probe.frames)
    await probe.send({"type": "unwatch", "call_cid": room.cid})
    assert "seq" not in await probe.wait_type("unwatch.ok", start=start)
    frame = await probe.watch(room.cid)
    assert frame["type"] == "watch.ok"
    assert "seq" not in frame, frame


async def test_watch_unknown_call(server: ServerProcess, ws_connect: WsFactory) -> None:
    probe = await ws_connect(server.token(uid("u")))
    await probe.connected()
    frame = await probe.watch(f"default:{uid('missing')}")
    assert error_code(frame) == "call_not_found"
    assert frame["in_reply_to"] == "watch"
    await pong(probe)


async def test_a_refused_media_frame_names_it(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id = uid("host")
    room, _ = await create(clients(host_id), "default")
    probe = await ws_connect(server.token(host_id))
    await probe.connected()
    start = len(probe.frames)
    await probe.send({"type": "sfu.offer", "sdp": "v=0", "call_cid": room.cid})
    frame = await probe.wait_type("error", start=start)
    assert error_code(frame) == "permission_denied", "not joined: no media"
    assert (frame["call_cid"], frame["in_reply_to"]) == (room.cid, "sfu.offer")


async def test_watch_without_read_call(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id, c_id = uid("host"), uid("c")
    room, host, _ = await live_audio_room(clients, host_id)
    ok(await host.post(room.path("/block"), json={"user_id": c_id}))
    probe = await ws_connect(server.token(c_id))
    await probe.connected()
    frame = await probe.watch(room.cid)
    assert error_code(frame) == "permission_denied"
    assert frame["error"]["details"]["capability"] == "read-call"
    assert frame.get("call_cid") == room.cid
    # still connected, and receives nothing of that call
    await pong(probe)
    ok(await host.post(room.path("/mute"), json={"user_ids": [host_id]}))
    await pong(probe)
    assert probe.events(room.cid) == []


async def test_invalid_frames_get_error_frames_and_keep_the_connection(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    room, _ = await create(clients(uid("host")), "default")
    probe = await ws_connect(server.token(uid("u")))
    await probe.connected()
    bad_frames: list[JSON | str] = [
        "not json at all",
        "[1, 2, 3]",
        "42",
        "null",
        {"no": "type"},
        {"type": 7},
        {"type": "dance"},
        {"type": "watch"},
        {"type": "watch", "call_cid": "no-colon"},
        {"type": "watch", "call_cid": "default:" + "x" * 65},
        {"type": "watch", "call_cid": "default:a b"},
        {"type": "watch", "call_cid": 12},
        {"type": "watch", "call_cid": room.cid, "since": -1},
        {"type": "watch", "call_cid": room.cid, "since": "3"},
        {"type": "watch", "call_cid": room.cid, "since": True},
        {"type": "watch", "call_cid": room.cid, "since": 1.5},
        {"type": "unwatch", "call_cid": None},
        '{"type": "ping", "n": NaN}',
        '{"type": "ping", "s": "\\ud800"}',
        '{"type": "ping", "deep": ' + "[" * 40 + "]" * 40 + "}",
    ]
    for frame in bad_frames:
        start = len(probe.frames)
        await probe.send(frame)
        reply = await probe.wait_for(lambda f: f["type"] in ("error", "watch.ok"), start=start)
        assert error_code(reply) == "validation_error", (frame, reply)
    assert not probe.closed
    await pong(probe)
    assert (await probe.watch(room.cid))["type"] == "watch.ok"


async def test_unwatch_stops_events(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id = uid("host")
    room, host, _ = await live_audio_room(clients, host_id)
    stays, leaves = (
        await ws_connect(server.token(host_id)),
        await ws_connect(server.token(uid("v"))),
    )
    for probe in (stays, leaves):
        await probe.connected()
        assert (await probe.watch(room.cid))["type"] == "watch.ok"
    await barrier(host, room, [stays, leaves])
    start = len(leaves.frames)
    await leaves.send({"type": "unwatch", "call_cid": room.cid})
    await leaves.wait_type("unwatch.ok", start=start)
    await barrier(host, room, [stays])
    await pong(leaves)
    assert not [f for f in leaves.frames[start:] if f["type"].startswith("call.")]


# recipients


async def test_recipients_of_request_events(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id, a_id, b_id = uid("host"), uid("a"), uid("b")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id, b_id])
    h = await ws_connect(server.token(host_id))
    a1 = await ws_connect(server.token(a_id))
    a2 = await ws_connect(server.token(a_id), auth_message=True)
    a_idle = await ws_connect(server.token(a_id))  # connected, watching nothing
    b = await ws_connect(server.token(b_id))
    watchers = [h, a1, a2, b]
    for probe in [*watchers, a_idle]:
        await probe.connected()
    for probe in watchers:
        assert (await probe.watch(room.cid))["type"] == "watch.ok"

    # A requests: only the host (update-call-permissions) hears of it
    request = await ask(by_user[a_id], room, "send-audio")
    told = await h.wait_type("call.permission_request")
    assert_event(told, room.cid)
    assert told["request"]["id"] == request["id"]
    assert told["request"]["user_id"] == a_id and told["request"]["state"] == "pending"
    assert told["request"]["permissions"] == ["send-audio"]
    await barrier(host, room, watchers)
    for probe in (a1, a2, b, a_idle):
        assert probe.events(room.cid, "call.permission_request") == []

    # the host accepts: resolved to the host and A (all connections told of it), not B
    ok(await host.post(room.path(f"/permission-requests/{request['id']}/accept")))
    for probe in (h, a1, a2):
        resolved = await probe.wait_type("call.permission_request_resolved")
        assert_event(resolved, room.cid)
        assert resolved["request"]["id"] == request["id"]
        assert resolved["request"]["state"] == "accepted"
        assert resolved["request"]["resolved_by"] == host_id
    for probe in (a1, a2, a_idle):
        updated = await probe.wait_type("call.permissions_updated", user_id=a_id)
        assert_event(updated, room.cid)
        assert "send-audio" in updated["own_capabilities"]
    await barrier(host, room, watchers)
    assert b.events(room.cid, "call.permission_request_resolved") == []
    assert b.events(room.cid, "call.permissions_updated") == []
    assert h.events(room.cid, "call.permissions_updated") == []
    for probe in (h, a1, a2):
        assert len(probe.events(room.cid, "call.permission_request_resolved")) == 1
    for probe in (a1, a2, a_idle):
        assert len([f for f in probe.frames if f["type"] == "call.permissions_updated"]) == 1

    # a listener joining reaches the host's opted-in connection only; everyone hears the count.
    # The count after the accept is sent within a window and a check; c's join must change it
    # from that (were it still pending, c's join could restore the count already sent).
    await asyncio.sleep(WINDOW_S + 2 * CHECK_INTERVAL_S + 0.3)
    h_all = await ws_connect(server.token(host_id))
    await h_all.connected()
    assert (await h_all.watch(room.cid, audience=True))["audience"] is True
    c_id = uid("c")
    ok(await clients(c_id).post(room.path("/join")))
    joined = await h_all.wait_type("call.participant_joined")
    assert_event(joined, room.cid)
    assert joined["participant"]["user_id"] == c_id
    assert joined["participant"]["tier"] == "audience"
    for probe in [*watchers, h_all]:
        await probe.wait_for(
            lambda f: f.get("type") == "call.audience_updated" and f["audience_count"] == 2
        )
    await barrier(host, room, [*watchers, h_all])
    for probe in (*watchers, a_idle):
        assert probe.events(room.cid, "call.participant_joined") == []

    # same event, same seq everywhere; seq strictly increasing on every connection
    counted = {p.events(room.cid, "call.audience_updated")[-1]["seq"] for p in [*watchers, h_all]}
    assert len(counted) == 1
    for probe in [*watchers, h_all]:
        assert_increasing(probe, room.cid)


async def test_reject_is_told_to_requester_and_moderators(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id, cohost_id, a_id, b_id = uid("host"), uid("cohost"), uid("a"), uid("b")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id, b_id])
    ok(
        await host.post(
            room.path("/members"), json={"update": [{"user_id": cohost_id, "role": "host"}]}
        )
    )
    probes = {
        user: await ws_connect(server.token(user)) for user in (host_id, cohost_id, a_id, b_id)
    }
    for probe in probes.values():
        await probe.connected()
        await probe.watch(room.cid)
    request = await ask(by_user[a_id], room, "screenshare")
    for moderator in (host_id, cohost_id):
        await probes[moderator].wait_type("call.permission_request")
    ok(
        await clients(cohost_id).post(
            room.path(f"/permission-requests/{request['id']}/reject"), json={"reason": "later"}
        )
    )
    for user in (host_id, cohost_id, a_id):
        resolved = await probes[user].wait_type("call.permission_request_resolved")
        assert resolved["request"]["state"] == "rejected"
        assert resolved["request"]["resolved_by"] == cohost_id
        assert resolved["request"]["reason"] == "later"
    await barrier(host, room, list(probes.values()))
    assert probes[b_id].events(room.cid, "call.permission_request_resolved") == []
    # a rejection changes no capability: nobody is told of one
    assert probes[a_id].events(room.cid, "call.permissions_updated") == []


async def test_watcher_events(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    """live/member/mute/block events reach every watcher holding read-call."""
    host_id, a_id, b_id = uid("host"), uid("a"), uid("b")
    host = clients(host_id)
    room, _ = await create(host, "audio_room")
    h, a = await ws_connect(server.token(host_id)), await ws_connect(server.token(a_id))
    for probe in (h, a):
        await probe.connected()
        await probe.watch(room.cid)
    ok(await host.post(room.path("/go-live")))
    ok(
        await host.post(
            room.path("/members"), json={"update": [{"user_id": b_id, "role": "speaker"}]}
        )
    )
    ok(await host.post(room.path("/members"), json={"update": [{"user_id": b_id, "role": "user"}]}))
    ok(await host.post(room.path("/members"), json={"remove": [b_id]}))
    ok(await host.post(room.path("/mute"), json={"user_ids": [b_id], "audio": True}))
    ok(await host.post(room.path("/block"), json={"user_id": b_id}))
    ok(await host.post(room.path("/unblock"), json={"user_id": b_id}))
    ok(await host.post(room.path("/stop-live")))
    ok(await host.post(room.path("/end")))
    expected = [
        "call.live_started",
        "call.member_added",
        "call.member_updated",
        "call.member_removed",
        "call.user_muted",
        "call.blocked_user",
        "call.unblocked_user",
        "call.live_stopped",
        "call.ended",
    ]
    for probe in (h, a):
        await probe.wait_type("call.ended")
        got = [f["type"] for f in probe.events(room.cid) if f["type"] in expected]
        assert got == expected
        assert_increasing(probe, room.cid)
        for frame in probe.events(room.cid):
            assert_event(frame, room.cid)
    frames = {f["type"]: f for f in a.events(room.cid)}
    assert frames["call.live_started"]["call"]["live"] is True
    assert frames["call.member_added"]["members"][0]["user_id"] == b_id
    assert frames["call.member_added"]["members"][0]["role"] == "speaker"
    assert frames["call.member_updated"]["members"][0]["role"] == "user"
    assert frames["call.member_removed"]["user_ids"] == [b_id]
    muted = frames["call.user_muted"]
    assert muted["user_id"] == b_id and muted["kinds"] == ["audio"] and muted["muted_by"] == host_id
    assert (
        frames["call.blocked_user"]["user_id"] == b_id
        and frames["call.blocked_user"]["by"] == host_id
    )
    assert frames["call.unblocked_user"]["by"] == host_id
    assert frames["call.ended"]["call"]["ended"] is True


async def test_blocked_watcher_stops_receiving(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id, c_id = uid("host"), uid("c")
    room, host, _ = await live_audio_room(clients, host_id, [c_id])
    h, c = await ws_connect(server.token(host_id)), await ws_connect(server.token(c_id))
    for probe in (h, c):
        await probe.connected()
        await probe.watch(room.cid)
    ok(await host.post(room.path("/block"), json={"user_id": c_id}))
    updated = await c.wait_type("call.permissions_updated", user_id=c_id)
    assert updated["own_capabilities"] == []
    await barrier(host, room, [h])
    await pong(c)
    after = updated["seq"]
    assert [f for f in c.events(room.cid) if f["seq"] > after] == []


async def test_late_moderator_replays_pending_requests(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    """Requests are stored: a moderator who connects later replays them from seq 0."""
    host_id, a_id, b_id = uid("host"), uid("a"), uid("b")
    room, _, by_user = await live_audio_room(clients, host_id, [a_id, b_id])
    request = await ask(by_user[a_id], room, "send-audio")
    h, b = await ws_connect(server.token(host_id)), await ws_connect(server.token(b_id))
    for probe in (h, b):
        await probe.connected()
        assert (await probe.watch(room.cid, since=0))["type"] == "watch.ok"
    [told] = h.events(room.cid, "call.permission_request")
    assert told["request"]["id"] == request["id"]
    assert b.events(room.cid, "call.permission_request") == []
    for probe in (h, b):
        types = [f["type"] for f in probe.events(room.cid)]
        assert types[:2] == ["call.created", "call.live_started"]
        assert probe.events(room.cid)[0]["seq"] == 1
        assert_increasing(probe, room.cid)


# replay


async def test_replay_after_reconnect(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id, a_id, b_id = uid("host"), uid("a"), uid("b")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id, b_id])
    h = await ws_connect(server.token(host_id))
    a = await ws_connect(server.token(a_id))
    b = await ws_connect(server.token(b_id))
    for probe in (h, a, b):
        await probe.connected()
        await probe.watch(room.cid)
    pending = await ask(by_user[a_id], room, "send-video")
    await barrier(host, room, [h, a, b])
    last_seen = max(f["seq"] for f in a.events(room.cid))
    seen_before = {f["seq"] for f in a.events(room.cid)}
    await a.close()

    # while A is away
    ok(
        await host.post(
            room.path("/members"), json={"update": [{"user_id": b_id, "role": "speaker"}]}
        )
    )
    ok(await host.post(room.path("/mute"), json={"user_ids": [b_id], "audio": True}))
    ok(
        await host.post(
            room.path(f"/permission-requests/{pending['id']}/reject"), json={"reason": "no video"}
        )
    )
    b_request = await ask(by_user[b_id], room, "screenshare")
    ok(
        await host.post(
            room.path("/user-permissions"), json={"user_id": a_id, "grant": ["screenshare"]}
        )
    )
    ok(await clients(uid("c")).post(room.path("/join")))
    await barrier(host, room, [h, b])
    # (the coalesced audience counts land wherever their second ends: left out here)
    h_missed = [f for f in counted_out(h.events(room.cid)) if f["seq"] > last_seen]
    assert [f["type"] for f in h_missed] == [
        "call.member_added",
        "call.participant_moved",
        "call.user_muted",
        "call.permission_request_resolved",
        "call.permission_request",
        "call.member_added",
        "call.participant_moved",
        "call.user_muted",
    ]
    assert [f["participant"]["user_id"] for f in h_missed if "participant" in f] == [b_id, a_id]
    assert h_missed[4]["request"]["id"] == b_request["id"]
    final_seq = h_missed[-1]["seq"]

    # A comes back and asks for what it missed
    back = await ws_connect(server.token(a_id))
    await back.connected()
    start = len(back.frames)
    watch_ok = await back.watch(room.cid, since=last_seen)
    assert watch_ok["type"] == "watch.ok"
    replayed = counted_out(f for f in back.frames[start:] if f["type"].startswith("call."))
    assert back.frames.index(watch_ok) > max((back.frames.index(f) for f in replayed), default=-1)
    assert [f["type"] for f in replayed] == [
        "call.member_added",
        "call.participant_moved",
        "call.user_muted",
        "call.permission_request_resolved",
        "call.permissions_updated",
        "call.member_added",
        "call.participant_moved",
        "call.user_muted",
    ]
    seqs = [f["seq"] for f in replayed]
    assert seqs == sorted(set(seqs))
    assert all(last_seen < s <= final_seq for s in seqs)
    assert not seen_before & set(seqs)
    # what A may see carries the very seq (and content) the host saw
    by_seq = {f["seq"]: f for f in h_missed}
    for frame in replayed:
        if frame["type"] != "call.permissions_updated":
            assert by_seq[frame["seq"]] == frame
    resolved = replayed[3]
    assert resolved["request"]["id"] == pending["id"]
    assert (
        resolved["request"]["state"] == "rejected" and resolved["request"]["reason"] == "no video"
    )
    assert replayed[4]["user_id"] == a_id and "screenshare" in replayed[4]["own_capabilities"]
    # B's own permission update and B's request were never A's to see
    assert by_seq.get(replayed[4]["seq"]) is None
    assert b_request["id"] not in str(replayed)

    # then live events follow, once each
    await barrier(host, room, [back, h])
    live = [f["seq"] for f in counted_out(back.events(room.cid))]
    assert live == sorted(set(live))
    assert len(live) == len(replayed) + 1


async def test_replay_since_now_sends_nothing(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id = uid("host")
    room, host, _ = await live_audio_room(clients, host_id)
    probe = await ws_connect(server.token(host_id))
    await probe.connected()
    current = ok(await host.get(room.path()))["seq"]
    start = len(probe.frames)
    assert (await probe.watch(room.cid, since=current))["type"] == "watch.ok"
    assert probe.events(room.cid) == []
    # a `since` beyond the end is clamped, not an error
    assert (await probe.watch(room.cid, since=current + 1000))["type"] == "watch.ok"
    assert [f for f in probe.frames[start:] if f["type"].startswith("call.")] == []


async def test_two_connections_of_one_user_both_get_events(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, _ = await live_audio_room(clients, host_id, [a_id])
    a1, a2 = await ws_connect(server.token(a_id)), await ws_connect(server.token(a_id))
    for probe in (a1, a2):
        await probe.connected()
        await probe.watch(room.cid)
    ok(
        await host.post(
            room.path("/user-permissions"), json={"user_id": a_id, "grant": ["send-video"]}
        )
    )
    await barrier(host, room, [a1, a2])
    for probe in (a1, a2):
        [updated] = probe.events(room.cid, "call.permissions_updated")
        assert "send-video" in updated["own_capabilities"]
    assert [f["seq"] for f in a1.events(room.cid)] == [f["seq"] for f in a2.events(room.cid)]


async def test_expiry_is_told_without_anyone_acting(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    """No one is left awaiting: an unanswered request expires and both sides are told."""
    name = uid("ttl")
    await put_call_type(clients(), name, request_ttl_s=1)
    host_id, a_id, b_id = uid("host"), uid("a"), uid("b")
    host = clients(host_id)
    room, _ = await create(host, name)
    for user in (a_id, b_id):
        ok(await clients(user).post(room.path("/join")))
    probes = {u: await ws_connect(server.token(u)) for u in (host_id, a_id, b_id)}
    for probe in probes.values():
        await probe.connected()
        await probe.watch(room.cid)
    request = await ask(clients(a_id), room, "send-audio")
    for user in (host_id, a_id):
        resolved = await probes[user].wait_type("call.permission_request_resolved", within=6)
        assert resolved["request"]["id"] == request["id"]
        assert resolved["request"]["state"] == "expired"
        assert resolved["request"]["resolved_by"] is None
    [listed] = await requests_of(host, room)
    assert listed["state"] == "expired"
    await barrier(host, room, list(probes.values()))
    assert probes[b_id].events(room.cid, "call.permission_request_resolved") == []
    assert len(probes[a_id].events(room.cid, "call.permission_request_resolved")) == 1


async def test_call_cid_must_match_whole_pattern(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    room, _ = await create(clients(uid("host")), "default")
    probe = await ws_connect(server.token(uid("u")))
    await probe.connected()
    for cid in (room.cid + "\n", "\n" + room.cid, room.cid + ":x", room.cid.replace(":", "::")):
        assert error_code(await probe.watch(cid)) == "validation_error", repr(cid)


async def test_members_changed_by_grants_are_announced(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id, a_id, b_id = uid("host"), uid("a"), uid("b")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id, b_id])
    watcher = await ws_connect(server.token(b_id))
    await watcher.connected()
    await watcher.watch(room.cid)
    request = await ask(by_user[a_id], room, "send-audio")
    ok(await host.post(room.path(f"/permission-requests/{request['id']}/accept")))
    await barrier(host, room, [watcher])
    members = {m["user_id"]: m for m in ok(await host.get(room.path()))["members"]}
    assert members[a_id]["grants"] == ["send-audio"]
    announced = [
        m["user_id"]
        for f in watcher.events(room.cid)
        if f["type"] in ("call.member_added", "call.member_updated")
        for m in f["members"]
    ]
    assert a_id in announced
