"""Spec §2 call endpoints over real HTTP: status codes and response shapes."""

from __future__ import annotations

from tests.api.helpers import (
    ALL_CAPS,
    ClientFactory,
    Room,
    ask,
    assert_request,
    assert_state,
    caps_of,
    create,
    expect_error,
    live_audio_room,
    members_by_id,
    ok,
    participant_ids,
    put_call_type,
    requests_of,
    uid,
)
from tests.server import ServerProcess

# get-or-create, get


async def test_get_or_create_201_then_200(clients: ClientFactory) -> None:
    host, guest = uid("host"), uid("guest")
    alice = clients(host)
    room = Room("default", uid("call"))
    body = {"members": [{"user_id": guest, "role": "user"}], "custom": {"topic": "hello"}}
    created = ok(await alice.post(room.path(), json=body), 201)
    assert_state(created, room)
    call = created["call"]
    assert call["created_by"] == host
    assert call["custom"] == {"topic": "hello"}
    assert call["live"] is True and call["backstage"] is False and call["ended"] is False
    members = members_by_id(created)
    assert members[host]["role"] == "host"
    assert members[guest]["role"] == "user"
    assert created["participants"] == []
    assert created["pending_requests"] == []
    assert set(created["own_capabilities"]) == set(ALL_CAPS)
    assert created["settings"]["name"] == "default"

    again = ok(await alice.post(room.path()), 200)
    assert_state(again, room)
    assert again["call"]["created_at"] == call["created_at"]
    assert members_by_id(again).keys() == members.keys()

    # another user with read-call gets the existing call (200), not a new one
    other = ok(await clients(uid("other")).post(room.path(), json={}), 200)
    assert other["call"]["created_by"] == host


async def test_get_or_create_backstage_type_and_unknown_type(clients: ClientFactory) -> None:
    host = clients(uid("host"))
    room, state = await create(host, "audio_room")
    assert_state(state, room)
    assert state["call"]["backstage"] is True and state["call"]["live"] is False
    assert state["settings"]["requestable"] == ["send-audio", "send-video", "screenshare"]
    expect_error(await host.post(f"/v1/calls/{uid('no-such-type')}/x"), 404, "call_type_not_found")


async def test_get_call(clients: ClientFactory) -> None:
    host_id = uid("host")
    room, _ = await create(clients(host_id), "audio_room")
    # a non-member holds read-call and create-call; backstage takes join-call away
    stranger = ok(await clients(uid("stranger")).get(room.path()))
    assert_state(stranger, room)
    assert stranger["own_capabilities"] == ["read-call", "create-call"]
    host = ok(await clients(host_id).get(room.path()))
    assert set(host["own_capabilities"]) == set(ALL_CAPS)
    expect_error(
        await clients(host_id).get(Room("default", uid("missing")).path()), 404, "call_not_found"
    )


async def test_server_token_may_create_and_read(clients: ClientFactory) -> None:
    server = clients()
    room, state = await create(server, "livestream")
    assert set(state["own_capabilities"]) == set(ALL_CAPS)
    assert state["members"] == []  # a server token is nobody: no host member
    assert set(ok(await server.get(room.path()))["own_capabilities"]) == set(ALL_CAPS)


# join / leave / live


async def test_join_and_leave(clients: ClientFactory) -> None:
    host_id, guest_id = uid("host"), uid("guest")
    room, _ = await create(clients(host_id), "default")
    guest = clients(guest_id, role=None)
    joined = ok(await guest.post(room.path("/join")))
    assert_state(joined, room)
    assert guest_id in participant_ids(joined)
    assert "send-audio" in joined["own_capabilities"]
    # joining twice is harmless
    assert participant_ids(ok(await guest.post(room.path("/join")))) == {guest_id}
    left = ok(await guest.post(room.path("/leave")))
    assert_state(left, room)
    assert guest_id not in participant_ids(left)
    expect_error(
        await guest.post(Room("default", uid("missing")).path("/join")), 404, "call_not_found"
    )


async def test_backstage_only_hosts_join_until_live(clients: ClientFactory) -> None:
    host_id, listener_id = uid("host"), uid("listener")
    host, listener = clients(host_id), clients(listener_id)
    room, _ = await create(host, "audio_room")
    details = expect_error(await listener.post(room.path("/join")), 403, "permission_denied")
    assert details["capability"] == "join-backstage"
    assert host_id in participant_ids(ok(await host.post(room.path("/join"))))

    live = ok(await host.post(room.path("/go-live")))
    assert_state(live, room)
    assert live["call"]["live"] is True and live["call"]["backstage"] is False
    assert "join-call" in await caps_of(listener, room)
    assert listener_id in participant_ids(ok(await listener.post(room.path("/join"))))
    # repeating go-live changes nothing
    assert ok(await host.post(room.path("/go-live")))["call"]["live"] is True

    back = ok(await host.post(room.path("/stop-live")))
    assert back["call"]["backstage"] is True and back["call"]["live"] is False
    assert "join-call" not in await caps_of(listener, room)


async def test_go_live_needs_go_live(clients: ClientFactory) -> None:
    room, _, by_user = await live_audio_room(clients, uid("host"), [listener := uid("listener")])
    for action in ("/go-live", "/stop-live"):
        details = expect_error(
            await by_user[listener].post(room.path(action)), 403, "permission_denied"
        )
        assert details["capability"] == "go-live"


# end


async def test_end_call(clients: ClientFactory) -> None:
    host_id, listener_id = uid("host"), uid("listener")
    room, host, by_user = await live_audio_room(clients, host_id, [listener_id])
    listener = by_user[listener_id]
    pending = await ask(listener, room, "send-audio")
    details = expect_error(await listener.post(room.path("/end")), 403, "permission_denied")
    assert details["capability"] == "end-call"

    ended = ok(await host.post(room.path("/end")))
    assert_state(ended, room)
    assert ended["call"]["ended"] is True and ended["call"]["ended_at"]
    assert ended["participants"] == []
    assert ended["own_capabilities"] == ["read-call"]
    # the pending request was cancelled: no one is left awaiting (the requester sees its
    # own; the host, holding only read-call now, is no moderator: the server token looks)
    for viewer in (listener, clients()):
        [request] = await requests_of(viewer, room)
        assert request["id"] == pending["id"]
        assert_request(request, room, listener_id, "cancelled")
        assert request["resolved_by"] == host_id
    assert await requests_of(host, room) == []

    # an ended call allows only read-call
    assert ok(await listener.get(room.path()))["own_capabilities"] == ["read-call"]
    assert ok(await host.post(room.path()))["call"]["ended"] is True  # get-or-create: 200
    expect_error(await listener.post(room.path("/join")), 409, "call_ended")
    expect_error(await host.post(room.path("/join")), 409, "call_ended")
    expect_error(await host.post(room.path("/go-live")), 409, "call_ended")
    expect_error(await host.post(room.path("/end")), 409, "call_ended")
    expect_error(
        await listener.post(
            room.path("/permission-requests"), json={"permissions": ["send-audio"]}
        ),
        409,
        "call_ended",
    )
    expect_error(
        await host.post(
            room.path("/user-permissions"), json={"user_id": listener_id, "grant": ["send-audio"]}
        ),
        409,
        "call_ended",
    )
    expect_error(
        await host.post(room.path("/mute"), json={"user_ids": [listener_id]}), 409, "call_ended"
    )


# members


async def test_update_and_remove_members(clients: ClientFactory) -> None:
    host_id, a_id, b_id = uid("host"), uid("a"), uid("b")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id])
    a = by_user[a_id]
    assert "send-audio" not in await caps_of(a, room)

    state = ok(
        await host.post(
            room.path("/members"),
            json={
                "update": [{"user_id": a_id, "role": "speaker"}, {"user_id": b_id, "role": "user"}]
            },
        )
    )
    assert_state(state, room)
    members = members_by_id(state)
    assert members[a_id]["role"] == "speaker"
    assert members[b_id]["role"] == "user"
    assert {"user_id", "role", "grants", "revokes"} <= set(members[a_id])
    assert "send-audio" in await caps_of(a, room)

    state = ok(await host.post(room.path("/members"), json={"remove": [a_id, b_id]}))
    assert a_id not in members_by_id(state) and b_id not in members_by_id(state)
    assert "send-audio" not in await caps_of(a, room)
    # removing again, or an unknown user, is a no-op
    ok(await host.post(room.path("/members"), json={"remove": [a_id, uid("nobody")]}))

    details = expect_error(
        await a.post(room.path("/members"), json={"update": [{"user_id": a_id, "role": "host"}]}),
        403,
        "permission_denied",
    )
    assert details["capability"] == "update-call-member"


# list calls


async def test_list_calls_filters(clients: ClientFactory) -> None:
    me_id = uid("me")
    me = clients(me_id)
    stranger = clients(uid("stranger"))
    backstage_room, _ = await create(me, "audio_room")
    live_room, _ = await create(me, "default")
    other_live, _ = await create(clients(uid("other")), "default")
    other_backstage, _ = await create(clients(uid("other")), "livestream")

    def cids(body: dict[str, object]) -> set[str]:
        assert set(body) == {"calls"}, body
        calls = body["calls"]
        assert isinstance(calls, list)
        for call in calls:
            assert {"cid", "type", "id", "live", "backstage", "ended"} <= set(call)
        return {call["cid"] for call in calls}

    mine = cids(ok(await me.get("/v1/calls")))
    assert {backstage_room.cid, live_room.cid, other_live.cid} <= mine
    assert other_backstage.cid not in mine  # neither a member nor live

    only_audio = cids(ok(await me.get("/v1/calls", params={"type": "audio_room"})))
    assert backstage_room.cid in only_audio and live_room.cid not in only_audio

    live = cids(ok(await me.get("/v1/calls", params={"live": "true"})))
    assert live_room.cid in live and other_live.cid in live and backstage_room.cid not in live
    not_live = cids(ok(await me.get("/v1/calls", params={"live": "false"})))
    assert backstage_room.cid in not_live and live_room.cid not in not_live

    lobby = cids(ok(await stranger.get("/v1/calls", params={"type": "default", "live": "true"})))
    assert {live_room.cid, other_live.cid} <= lobby
    assert backstage_room.cid not in cids(ok(await stranger.get("/v1/calls")))

    expect_error(await me.get("/v1/calls", params={"type": "bad type!"}), 422, "validation_error")
    expect_error(await me.get("/v1/calls", params={"live": "maybe"}), 422, "validation_error")


async def test_list_calls_hides_calls_the_caller_may_not_read(clients: ClientFactory) -> None:
    host_id, blocked_id = uid("host"), uid("blocked")
    room, host, _ = await live_audio_room(clients, host_id, [blocked_id])
    ok(await host.post(room.path("/block"), json={"user_id": blocked_id}))
    listed = ok(await clients(blocked_id).get("/v1/calls", params={"live": "true"}))["calls"]
    assert room.cid not in {c["cid"] for c in listed}


# call types


async def test_call_types_list_and_get(clients: ClientFactory) -> None:
    user = clients(uid("user"))
    body = ok(await user.get("/v1/call-types"))
    by_name = {ct["name"]: ct for ct in body["call_types"]}
    assert {"default", "audio_room", "livestream", "development"} <= set(by_name)
    for ct in by_name.values():
        assert {
            "name",
            "grants",
            "requestable",
            "backstage",
            "request_ttl_s",
            "request_cooldown_s",
        } <= set(ct)
        for caps in ct["grants"].values():
            assert {"read-call", "create-call"} <= set(caps)
    audio = ok(await user.get("/v1/call-types/audio_room"))
    assert audio["backstage"] is True
    assert audio["requestable"] == ["send-audio", "send-video", "screenshare"]
    assert audio["request_ttl_s"] == 300 and audio["request_cooldown_s"] == 30
    assert set(audio["grants"]["user"]) == {"read-call", "create-call", "join-call"}
    assert set(audio["grants"]["speaker"]) == {
        "read-call",
        "create-call",
        "join-call",
        "send-audio",
    }
    assert set(audio["grants"]["host"]) == set(ALL_CAPS)
    assert by_name["default"]["requestable"] == [] and by_name["default"]["backstage"] is False
    assert by_name["livestream"]["backstage"] is True
    assert set(by_name["development"]["grants"]["user"]) == set(ALL_CAPS)
    expect_error(await user.get(f"/v1/call-types/{uid('nope')}"), 404, "call_type_not_found")


async def test_put_call_type_needs_server_token(clients: ClientFactory) -> None:
    name = uid("ct")
    body = {"grants": {"user": ["read-call", "create-call", "join-call"]}}
    for client in (clients(uid("user")), clients(uid("admin"), role="admin")):
        details = expect_error(
            await client.put(f"/v1/call-types/{name}", json=body), 403, "permission_denied"
        )
        assert details
    expect_error(
        await clients(uid("user")).get(f"/v1/call-types/{name}"), 404, "call_type_not_found"
    )
    # built-ins cannot be changed by users either
    expect_error(
        await clients(uid("admin"), role="admin").put("/v1/call-types/default", json=body),
        403,
        "permission_denied",
    )


async def test_put_custom_call_type_then_use_it(clients: ClientFactory) -> None:
    name = uid("ct")
    written = await put_call_type(
        clients(),
        name,
        requestable=["screenshare"],
        request_ttl_s=60,
        request_cooldown_s=5,
        backstage=True,
    )
    assert written["name"] == name
    assert written["requestable"] == ["screenshare"]
    assert written["backstage"] is True
    assert written["request_ttl_s"] == 60 and written["request_cooldown_s"] == 5
    assert ok(await clients(uid("u")).get(f"/v1/call-types/{name}")) == written
    assert name in {
        ct["name"] for ct in ok(await clients(uid("u")).get("/v1/call-types"))["call_types"]
    }

    host_id, listener_id = uid("host"), uid("listener")
    host, listener = clients(host_id), clients(listener_id)
    room, state = await create(host, name)
    assert state["call"]["backstage"] is True
    assert state["settings"] == written
    ok(await host.post(room.path("/go-live")))
    ok(await listener.post(room.path("/join")))
    request = await ask(listener, room, "screenshare")
    assert_request(request, room, listener_id, "pending")
    expect_error(
        await listener.post(
            room.path("/permission-requests"), json={"permissions": ["send-video"]}
        ),
        403,
        "not_requestable",
    )
    # replacing the type changes what its calls allow
    await put_call_type(clients(), name, requestable=["screenshare", "send-video"])
    await ask(listener, room, "send-video")


async def test_put_call_type_validation(clients: ClientFactory) -> None:
    server = clients()
    name = uid("ct")
    bad_bodies = [
        {"grants": {"user": ["fly"]}},
        {"grants": {"User!": ["read-call"]}},
        {"grants": {"user": ["read-call"]}, "requestable": ["teleport"]},
        {"grants": {"user": ["read-call"]}, "request_ttl_s": 0},
        {"grants": {"user": ["read-call"]}, "request_cooldown_s": -1},
        {"grants": {"user": ["read-call"]}, "backstage": "yes please"},
        {"grants": "everything"},
        {"grants": {"user": ["read-call"]}, "colour": "blue"},
    ]
    for body in bad_bodies:
        expect_error(await server.put(f"/v1/call-types/{name}", json=body), 422, "validation_error")
    expect_error(
        await server.put(f"/v1/call-types/{'x' * 65}", json={"grants": {}}), 422, "validation_error"
    )


# user permissions


async def test_grant_and_revoke_user_permissions(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id])
    a = by_user[a_id]

    body = ok(
        await host.post(
            room.path("/user-permissions"), json={"user_id": a_id, "grant": ["send-video"]}
        )
    )
    assert body["user_id"] == a_id
    assert "send-video" in body["own_capabilities"]
    assert set(body["own_capabilities"]) == await caps_of(a, room)

    # revoke wins over role: join-call comes from the `user` role
    body = ok(
        await host.post(
            room.path("/user-permissions"),
            json={"user_id": a_id, "revoke": ["join-call", "send-video"]},
        )
    )
    assert "join-call" not in body["own_capabilities"]
    assert "send-video" not in body["own_capabilities"]
    own = await caps_of(a, room)
    assert "join-call" not in own and "send-video" not in own
    member = members_by_id(ok(await host.get(room.path())))[a_id]
    assert set(member["revokes"]) == {"join-call", "send-video"}

    # a revoke survives a role change: speaker's send-audio stays revoked
    ok(
        await host.post(
            room.path("/user-permissions"), json={"user_id": a_id, "revoke": ["send-audio"]}
        )
    )
    ok(
        await host.post(
            room.path("/members"), json={"update": [{"user_id": a_id, "role": "speaker"}]}
        )
    )
    assert "send-audio" not in await caps_of(a, room)
    # granting lifts the revoke
    body = ok(
        await host.post(
            room.path("/user-permissions"), json={"user_id": a_id, "grant": ["send-audio"]}
        )
    )
    assert "send-audio" in body["own_capabilities"]
    assert "send-audio" in await caps_of(a, room)

    # grant + revoke of the same capability at once is invalid
    expect_error(
        await host.post(
            room.path("/user-permissions"),
            json={"user_id": a_id, "grant": ["screenshare"], "revoke": ["screenshare"]},
        ),
        422,
        "validation_error",
    )
    details = expect_error(
        await a.post(room.path("/user-permissions"), json={"user_id": a_id, "grant": ["go-live"]}),
        403,
        "permission_denied",
    )
    assert details["capability"] == "update-call-permissions"


async def test_grant_to_non_member_makes_them_a_member(clients: ClientFactory) -> None:
    host_id, newbie = uid("host"), uid("newbie")
    room, host, _ = await live_audio_room(clients, host_id)
    body = ok(
        await host.post(
            room.path("/user-permissions"), json={"user_id": newbie, "grant": ["send-audio"]}
        )
    )
    assert "send-audio" in body["own_capabilities"]
    assert "send-audio" in await caps_of(clients(newbie), room)


# mute, block


async def test_mute(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id])
    body = ok(await host.post(room.path("/mute"), json={"user_ids": [a_id]}))
    assert body["user_ids"] == [a_id]
    assert body["kinds"] == ["audio", "video", "screenshare"]
    body = ok(await host.post(room.path("/mute"), json={"user_ids": [a_id], "video": True}))
    assert body["kinds"] == ["video"]
    details = expect_error(
        await by_user[a_id].post(room.path("/mute"), json={"user_ids": [host_id]}),
        403,
        "permission_denied",
    )
    assert details["capability"] == "mute-users"
    expect_error(
        await host.post(room.path("/mute"), json={"user_ids": []}), 422, "validation_error"
    )
    # muting does not revoke
    assert "send-audio" in await caps_of(host, room)


async def test_block_and_unblock(clients: ClientFactory) -> None:
    host_id, a_id, b_id = uid("host"), uid("a"), uid("b")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id, b_id])
    a = by_user[a_id]
    mine = await ask(a, room, "send-audio")
    others = await ask(by_user[b_id], room, "send-audio")

    details = expect_error(
        await a.post(room.path("/block"), json={"user_id": b_id}), 403, "permission_denied"
    )
    assert details["capability"] == "block-users"

    assert ok(await host.post(room.path("/block"), json={"user_id": a_id})) == {
        "user_id": a_id,
        "blocked": True,
    }
    state = ok(await host.get(room.path()))
    assert a_id in state["blocked_user_ids"]
    assert a_id not in participant_ids(state)
    # A's pending request was cancelled; B's is untouched
    by_id = {r["id"]: r for r in await requests_of(host, room)}
    assert_request(by_id[mine["id"]], room, a_id, "cancelled")
    assert by_id[mine["id"]]["resolved_by"] == host_id
    assert by_id[others["id"]]["state"] == "pending"
    assert [r["id"] for r in state["pending_requests"]] == [others["id"]]

    # blocked: cannot join, read or request
    details = expect_error(await a.post(room.path("/join")), 403, "permission_denied")
    assert details["capability"] == "join-call"
    expect_error(await a.get(room.path()), 403, "permission_denied")
    expect_error(
        await a.post(room.path("/permission-requests"), json={"permissions": ["send-video"]}),
        403,
        "permission_denied",
    )
    # blocking twice is a no-op
    ok(await host.post(room.path("/block"), json={"user_id": a_id}))

    assert ok(await host.post(room.path("/unblock"), json={"user_id": a_id})) == {
        "user_id": a_id,
        "blocked": False,
    }
    assert a_id not in ok(await host.get(room.path()))["blocked_user_ids"]
    assert a_id in participant_ids(ok(await a.post(room.path("/join"))))
    ok(await host.post(room.path("/unblock"), json={"user_id": a_id}))


async def test_block_keeps_out_non_participants_too(clients: ClientFactory) -> None:
    host_id, c_id = uid("host"), uid("c")
    room, host, _ = await live_audio_room(clients, host_id)
    ok(await host.post(room.path("/block"), json={"user_id": c_id}))
    expect_error(await clients(c_id).post(room.path("/join")), 403, "permission_denied")


# documentation


async def test_openapi_and_docs(server: ServerProcess, clients: ClientFactory) -> None:
    anonymous = clients(token="unused")
    spec = ok(await anonymous.get("/openapi.json"))
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path in (
        "/v1/call-types",
        "/v1/call-types/{type}",
        "/v1/calls",
        "/v1/calls/{type}/{id}",
        "/v1/calls/{type}/{id}/join",
        "/v1/calls/{type}/{id}/leave",
        "/v1/calls/{type}/{id}/go-live",
        "/v1/calls/{type}/{id}/stop-live",
        "/v1/calls/{type}/{id}/end",
        "/v1/calls/{type}/{id}/members",
        "/v1/calls/{type}/{id}/permission-requests",
        "/v1/calls/{type}/{id}/permission-requests/{rid}",
        "/v1/calls/{type}/{id}/permission-requests/{rid}/accept",
        "/v1/calls/{type}/{id}/permission-requests/{rid}/reject",
        "/v1/calls/{type}/{id}/user-permissions",
        "/v1/calls/{type}/{id}/mute",
        "/v1/calls/{type}/{id}/block",
        "/v1/calls/{type}/{id}/unblock",
    ):
        assert path in paths, path
    docs = await anonymous.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    assert "openapi.json" in docs.text
