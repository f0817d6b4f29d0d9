"""The permission request lifecycle over real HTTP (spec §1 lifecycle, §2 endpoints)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from tests.api.helpers import (
    ClientFactory,
    Room,
    ask,
    assert_request,
    caps_of,
    create,
    expect_error,
    live_audio_room,
    ok,
    put_call_type,
    requests_of,
    uid,
)


async def test_new_request_201_then_existing_200(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id])
    a = by_user[a_id]
    first = await ask(a, room, "send-audio", "send-video")
    assert_request(first, room, a_id, "pending")
    assert first["permissions"] == ["send-audio", "send-video"]
    created = datetime.fromisoformat(first["created_at"])
    expires = datetime.fromisoformat(first["expires_at"])
    assert 299 <= (expires - created).total_seconds() <= 301  # audio_room ttl: 300 s
    for key in ("resolved_by", "resolved_at", "reason"):
        assert first.get(key) is None

    again = await ask(a, room, "send-audio", "send-video", status=200)
    assert again == first
    # asking for part of what is pending returns the same request
    assert (await ask(a, room, "send-video", status=200))["id"] == first["id"]
    pending = await requests_of(host, room, "pending")
    assert [r["id"] for r in pending] == [first["id"]]
    # stored: a moderator who looks later sees it in the call state too
    state = ok(await clients(host_id).get(room.path()))
    assert [r["id"] for r in state["pending_requests"]] == [first["id"]]
    # and the requester sees its own pending request in its call state
    assert [r["id"] for r in ok(await a.get(room.path()))["pending_requests"]] == [first["id"]]

    # a different capability makes a second request
    other = await ask(a, room, "screenshare")
    assert other["id"] != first["id"]
    assert other["permissions"] == ["screenshare"]


async def test_accept_grants_exactly_what_was_asked(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id])
    a = by_user[a_id]
    before = await caps_of(a, room)
    request = await ask(a, room, "send-audio")
    body = ok(await host.post(room.path(f"/permission-requests/{request['id']}/accept")))
    assert set(body) == {"request"}
    accepted = body["request"]
    assert_request(accepted, room, a_id, "accepted")
    assert accepted["id"] == request["id"]
    assert accepted["resolved_by"] == host_id
    assert accepted["resolved_at"]
    assert await caps_of(a, room) == before | {"send-audio"}

    # resolved once: answering again is 409, whichever the answer
    for action in ("accept", "reject"):
        expect_error(
            await host.post(room.path(f"/permission-requests/{request['id']}/{action}")),
            409,
            "request_already_resolved",
        )
    # now held: asking again is capability_held
    details = expect_error(
        await a.post(room.path("/permission-requests"), json={"permissions": ["send-audio"]}),
        409,
        "capability_held",
    )
    assert details["permissions"] == ["send-audio"]
    [listed] = await requests_of(a, room)
    assert_request(listed, room, a_id, "accepted")


async def test_reject_changes_nothing_and_sets_cooldown(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id])
    a = by_user[a_id]
    before = await caps_of(a, room)
    request = await ask(a, room, "send-audio")
    body = ok(
        await host.post(
            room.path(f"/permission-requests/{request['id']}/reject"), json={"reason": "not now"}
        )
    )
    rejected = body["request"]
    assert_request(rejected, room, a_id, "rejected")
    assert rejected["resolved_by"] == host_id
    assert rejected["reason"] == "not now"
    assert await caps_of(a, room) == before

    [own] = await requests_of(a, room)
    assert own["state"] == "rejected" and own["reason"] == "not now"

    details = expect_error(
        await a.post(room.path("/permission-requests"), json={"permissions": ["send-audio"]}),
        429,
        "request_cooldown",
    )
    retry = details["retry_after_s"]
    assert isinstance(retry, int | float) and 0 < retry <= 30
    # the cooldown is per capability: another one may be asked at once
    await ask(a, room, "send-video")


async def test_reject_without_body(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id])
    request = await ask(by_user[a_id], room, "screenshare")
    rejected = ok(await host.post(room.path(f"/permission-requests/{request['id']}/reject")))
    assert_request(rejected["request"], room, a_id, "rejected")
    assert rejected["request"]["reason"] is None


async def test_cooldown_ends(clients: ClientFactory) -> None:
    name = uid("cool")
    await put_call_type(clients(), name, request_cooldown_s=2)
    host_id, a_id = uid("host"), uid("a")
    host, a = clients(host_id), clients(a_id)
    room, _ = await create(host, name)
    ok(await a.post(room.path("/join")))
    request = await ask(a, room, "send-audio")
    ok(await host.post(room.path(f"/permission-requests/{request['id']}/reject")))
    details = expect_error(
        await a.post(room.path("/permission-requests"), json={"permissions": ["send-audio"]}),
        429,
        "request_cooldown",
    )
    assert 0 < details["retry_after_s"] <= 2

    deadline = time.monotonic() + 6
    while True:
        response = await a.post(
            room.path("/permission-requests"), json={"permissions": ["send-audio"]}
        )
        if response.status_code != 429 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    again = ok(response, 201)["request"]
    assert_request(again, room, a_id, "pending")
    assert again["id"] != request["id"]


async def test_cancel_by_requester_only(clients: ClientFactory) -> None:
    host_id, a_id, b_id = uid("host"), uid("a"), uid("b")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id, b_id])
    a, b = by_user[a_id], by_user[b_id]
    request = await ask(a, room, "send-audio")
    path = room.path(f"/permission-requests/{request['id']}")
    expect_error(await b.delete(path), 404, "request_not_found")
    expect_error(await host.delete(path), 404, "request_not_found")
    body = ok(await a.delete(path))
    cancelled = body["request"]
    assert_request(cancelled, room, a_id, "cancelled")
    assert cancelled["resolved_by"] == a_id
    expect_error(await a.delete(path), 409, "request_already_resolved")
    expect_error(await host.post(f"{path}/accept"), 409, "request_already_resolved")
    assert "send-audio" not in await caps_of(a, room)
    # no cooldown after a cancel
    await ask(a, room, "send-audio")


async def test_expiry(clients: ClientFactory) -> None:
    name = uid("ttl")
    await put_call_type(clients(), name, request_ttl_s=1)
    host_id, a_id = uid("host"), uid("a")
    host, a = clients(host_id), clients(a_id)
    room, _ = await create(host, name)
    ok(await a.post(room.path("/join")))
    request = await ask(a, room, "send-audio")
    created = datetime.fromisoformat(request["created_at"])
    assert (datetime.fromisoformat(request["expires_at"]) - created).total_seconds() == 1
    await asyncio.sleep(1.3)
    expect_error(
        await host.post(room.path(f"/permission-requests/{request['id']}/accept")),
        409,
        "request_already_resolved",
    )
    [listed] = await requests_of(host, room)
    assert_request(listed, room, a_id, "expired")
    assert "send-audio" not in await caps_of(a, room)
    assert ok(await host.get(room.path()))["pending_requests"] == []
    # an expired request does not block a new one
    fresh = await ask(a, room, "send-audio")
    assert fresh["id"] != request["id"]


async def test_expired_request_is_not_returned_as_existing(clients: ClientFactory) -> None:
    name = uid("ttl")
    await put_call_type(clients(), name, request_ttl_s=1)
    host_id, a_id = uid("host"), uid("a")
    room, _ = await create(clients(host_id), name)
    a = clients(a_id)
    ok(await a.post(room.path("/join")))
    first = await ask(a, room, "screenshare")
    await asyncio.sleep(1.3)
    second = await ask(a, room, "screenshare", status=201)
    assert second["id"] != first["id"]
    states = {r["id"]: r["state"] for r in await requests_of(a, room)}
    assert states == {first["id"]: "expired", second["id"]: "pending"}


async def test_not_requestable(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, _, by_user = await live_audio_room(clients, host_id, [a_id])
    details = expect_error(
        await by_user[a_id].post(
            room.path("/permission-requests"), json={"permissions": ["update-call-permissions"]}
        ),
        403,
        "not_requestable",
    )
    assert details["permissions"] == ["update-call-permissions"]
    # one not-requestable capability spoils the whole request
    expect_error(
        await by_user[a_id].post(
            room.path("/permission-requests"), json={"permissions": ["send-audio", "go-live"]}
        ),
        403,
        "not_requestable",
    )
    assert await requests_of(by_user[a_id], room) == []

    # `livestream` makes nothing requestable
    viewer_id = uid("viewer")
    host = clients(uid("host"))
    stream, _ = await create(host, "livestream")
    ok(await host.post(stream.path("/go-live")))
    viewer = clients(viewer_id)
    ok(await viewer.post(stream.path("/join")))
    expect_error(
        await viewer.post(
            stream.path("/permission-requests"), json={"permissions": ["send-audio"]}
        ),
        403,
        "not_requestable",
    )


async def test_capability_held(clients: ClientFactory) -> None:
    host_id, s_id = uid("host"), uid("speaker")
    room, host, _ = await live_audio_room(clients, host_id)
    ok(
        await host.post(
            room.path("/members"), json={"update": [{"user_id": s_id, "role": "speaker"}]}
        )
    )
    details = expect_error(
        await clients(s_id).post(
            room.path("/permission-requests"), json={"permissions": ["send-audio"]}
        ),
        409,
        "capability_held",
    )
    assert details["permissions"] == ["send-audio"]


async def test_only_members_and_participants_may_request(clients: ClientFactory) -> None:
    host_id, stranger_id, member_id = uid("host"), uid("stranger"), uid("member")
    room, host, _ = await live_audio_room(clients, host_id)
    expect_error(
        await clients(stranger_id).post(
            room.path("/permission-requests"), json={"permissions": ["send-audio"]}
        ),
        403,
        "permission_denied",
    )
    # a member who has not joined may ask (even while backstage)
    backstage, _ = await create(host, "audio_room")
    ok(
        await host.post(
            backstage.path("/members"), json={"update": [{"user_id": member_id, "role": "user"}]}
        )
    )
    request = await ask(clients(member_id), backstage, "send-audio")
    assert_request(request, backstage, member_id, "pending")
    # a participant who left and is no member may not
    leaver_id = uid("leaver")
    leaver = clients(leaver_id)
    ok(await leaver.post(room.path("/join")))
    ok(await leaver.post(room.path("/leave")))
    expect_error(
        await leaver.post(room.path("/permission-requests"), json={"permissions": ["send-audio"]}),
        403,
        "permission_denied",
    )


async def test_answer_needs_update_call_permissions(clients: ClientFactory) -> None:
    host_id, a_id, b_id = uid("host"), uid("a"), uid("b")
    room, _, by_user = await live_audio_room(clients, host_id, [a_id, b_id])
    request = await ask(by_user[a_id], room, "send-audio")
    for requester in (by_user[a_id], by_user[b_id]):
        for action in ("accept", "reject"):
            details = expect_error(
                await requester.post(room.path(f"/permission-requests/{request['id']}/{action}")),
                403,
                "permission_denied",
            )
            assert details["capability"] == "update-call-permissions"
    assert "send-audio" not in await caps_of(by_user[a_id], room)


async def test_unknown_request_and_call(clients: ClientFactory) -> None:
    host_id = uid("host")
    room, host, _ = await live_audio_room(clients, host_id)
    for method, suffix in (("POST", "/accept"), ("POST", "/reject"), ("DELETE", "")):
        details = expect_error(
            await host.request(method, room.path(f"/permission-requests/nosuchrequest{suffix}")),
            404,
            "request_not_found",
        )
        assert details["request_id"] == "nosuchrequest"
    missing = Room("audio_room", uid("missing"))
    expect_error(
        await host.post(missing.path("/permission-requests"), json={"permissions": ["send-audio"]}),
        404,
        "call_not_found",
    )
    expect_error(await host.get(missing.path("/permission-requests")), 404, "call_not_found")


async def test_request_of_another_call_is_not_found(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id])
    other, _ = await create(host, "audio_room")
    request = await ask(by_user[a_id], room, "send-audio")
    expect_error(
        await host.post(other.path(f"/permission-requests/{request['id']}/accept")),
        404,
        "request_not_found",
    )


async def test_direct_grant_accepts_pending_request(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id])
    a = by_user[a_id]
    request = await ask(a, room, "send-video")
    untouched = await ask(a, room, "screenshare")
    ok(
        await host.post(
            room.path("/user-permissions"), json={"user_id": a_id, "grant": ["send-video"]}
        )
    )
    by_id = {r["id"]: r for r in await requests_of(a, room)}
    assert_request(by_id[request["id"]], room, a_id, "accepted")
    assert by_id[request["id"]]["resolved_by"] == host_id
    assert by_id[untouched["id"]]["state"] == "pending"
    assert "send-video" in await caps_of(a, room)
    assert [r["id"] for r in ok(await a.get(room.path()))["pending_requests"]] == [untouched["id"]]


async def test_partial_grant_leaves_request_pending(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id])
    request = await ask(by_user[a_id], room, "send-audio", "send-video")
    ok(
        await host.post(
            room.path("/user-permissions"), json={"user_id": a_id, "grant": ["send-audio"]}
        )
    )
    [listed] = await requests_of(by_user[a_id], room)
    assert listed["id"] == request["id"] and listed["state"] == "pending"


async def test_role_change_accepts_pending_request(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id])
    a = by_user[a_id]
    request = await ask(a, room, "send-audio")
    ok(
        await host.post(
            room.path("/members"), json={"update": [{"user_id": a_id, "role": "speaker"}]}
        )
    )
    [listed] = await requests_of(host, room)
    assert_request(listed, room, a_id, "accepted")
    assert listed["id"] == request["id"]
    assert listed["resolved_by"] == host_id
    assert "send-audio" in await caps_of(a, room)


async def test_listing_own_vs_all(clients: ClientFactory) -> None:
    host_id, a_id, b_id = uid("host"), uid("a"), uid("b")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id, b_id])
    a_req = await ask(by_user[a_id], room, "send-audio")
    b_req = await ask(by_user[b_id], room, "send-video")
    b_done = await ask(by_user[b_id], room, "screenshare")
    ok(await host.post(room.path(f"/permission-requests/{b_done['id']}/reject")))

    assert [r["id"] for r in await requests_of(by_user[a_id], room)] == [a_req["id"]]
    assert {r["id"] for r in await requests_of(by_user[b_id], room)} == {b_req["id"], b_done["id"]}
    assert {r["id"] for r in await requests_of(host, room)} == {
        a_req["id"],
        b_req["id"],
        b_done["id"],
    }
    assert {r["id"] for r in await requests_of(host, room, "pending")} == {a_req["id"], b_req["id"]}
    assert [r["id"] for r in await requests_of(host, room, "rejected")] == [b_done["id"]]
    assert [r["id"] for r in await requests_of(by_user[b_id], room, "pending")] == [b_req["id"]]
    assert await requests_of(host, room, "expired") == []
    # a listener's call state holds only its own pending request
    state = ok(await by_user[a_id].get(room.path()))
    assert [r["id"] for r in state["pending_requests"]] == [a_req["id"]]
    # a stranger (read-call, no requests) sees none
    assert await requests_of(clients(uid("stranger")), room) == []
    expect_error(
        await host.get(room.path("/permission-requests"), params={"state": "bogus"}),
        422,
        "validation_error",
    )


async def test_admin_token_moderates_any_call(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, _, by_user = await live_audio_room(clients, host_id, [a_id])
    request = await ask(by_user[a_id], room, "send-audio")
    admin_id = uid("admin")
    admin = clients(admin_id, role="admin")
    assert [r["id"] for r in await requests_of(admin, room)] == [request["id"]]
    accepted = ok(await admin.post(room.path(f"/permission-requests/{request['id']}/accept")))
    assert accepted["request"]["resolved_by"] == admin_id
    assert "send-audio" in await caps_of(by_user[a_id], room)
