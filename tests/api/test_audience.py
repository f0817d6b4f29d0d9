"""The stage and the audience through a real server: who hears of whom, the count, the state."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime

from tests.api.helpers import (
    ClientFactory,
    WsFactory,
    WsProbe,
    ask,
    barrier,
    counted_out,
    expect_error,
    live_audio_room,
    ok,
    uid,
)
from tests.server import ServerProcess


async def _watching(ws_connect: WsFactory, token: str, cid: str, **how: bool) -> WsProbe:
    probe = await ws_connect(token)
    await probe.connected()
    assert (await probe.watch(cid, **how))["type"] == "watch.ok"
    return probe


async def test_an_audience_join_is_never_delivered_to_another_listener(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id = uid("host")
    listeners = [uid("l") for _ in range(4)]
    room, host, _ = await live_audio_room(clients, host_id, listeners)
    probes = {u: await _watching(ws_connect, server.token(u), room.cid) for u in listeners}
    moderator = await _watching(ws_connect, server.token(host_id), room.cid, audience=True)
    late = [uid("late") for _ in range(5)]
    late_probes = {}
    for user in late:
        late_probes[user] = await _watching(ws_connect, server.token(user), room.cid)
        ok(await clients(user).post(room.path("/join")))
    await barrier(host, room, [*probes.values(), *late_probes.values(), moderator])
    for user, probe in [*probes.items(), *late_probes.items()]:
        joined = [
            f["participant"]["user_id"] for f in probe.events(room.cid, "call.participant_joined")
        ]
        # a listener hears of its own join only (watching before it joined)
        assert joined == ([user] if user in late else []), (user, joined)
    heard = [f["participant"] for f in moderator.events(room.cid, "call.participant_joined")]
    assert [p["user_id"] for p in heard] == late
    assert {p["tier"] for p in heard} == {"audience"}
    # and every watcher gets the count, the same event everywhere
    for probe in [*probes.values(), *late_probes.values(), moderator]:
        await probe.wait_for(
            lambda f: f.get("type") == "call.audience_updated" and f["audience_count"] == 9
        )


async def test_the_state_lists_the_stage_and_counts_the_audience(
    server: ServerProcess, clients: ClientFactory
) -> None:
    host_id, speaker_id = uid("host"), uid("speaker")
    listeners = [uid("l") for _ in range(6)]
    room, host, by_user = await live_audio_room(clients, host_id, [speaker_id, *listeners])
    ok(await host.post(room.path("/join")))
    ok(
        await host.post(
            room.path("/members"), json={"update": [{"user_id": speaker_id, "role": "speaker"}]}
        )
    )
    state = ok(await host.get(room.path()))
    assert {p["user_id"]: p["tier"] for p in state["participants"]} == {
        host_id: "stage",
        speaker_id: "stage",
    }
    assert state["audience_count"] == 6
    # a listener sees the stage and itself, the same count
    mine = ok(await by_user[listeners[0]].get(room.path()))
    assert {p["user_id"]: p["tier"] for p in mine["participants"]} == {
        host_id: "stage",
        speaker_id: "stage",
        listeners[0]: "audience",
    }
    assert mine["audience_count"] == 6
    # a pending request leaves the listener in the audience; the accept moves it
    request = await ask(by_user[listeners[1]], room, "send-audio")
    assert ok(await host.get(room.path()))["audience_count"] == 6
    ok(await host.post(room.path(f"/permission-requests/{request['id']}/accept")))
    state = ok(await host.get(room.path()))
    assert listeners[1] in {p["user_id"] for p in state["participants"]}
    assert state["audience_count"] == 5
    # the audience is read page by page
    page = ok(await host.get(room.path("/participants"), params={"tier": "audience", "limit": 3}))
    assert len(page["participants"]) == 3 and page["next_cursor"] is not None


async def test_moving_on_and_off_stage_is_told_to_every_watcher(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id, a_id, b_id = uid("host"), uid("a"), uid("b")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id, b_id])
    b = await _watching(ws_connect, server.token(b_id), room.cid)
    request = await ask(by_user[a_id], room, "send-audio")
    ok(await host.post(room.path(f"/permission-requests/{request['id']}/accept")))
    moved = await b.wait_type("call.participant_moved")
    assert moved["participant"]["user_id"] == a_id and moved["participant"]["tier"] == "stage"
    # the move follows the member event that caused it
    types = [f["type"] for f in counted_out(b.events(room.cid))]
    assert types.index("call.member_added") < types.index("call.participant_moved")
    ok(
        await host.post(
            room.path("/user-permissions"), json={"user_id": a_id, "revoke": ["send-audio"]}
        )
    )
    back = await b.wait_for(
        lambda f: (
            f.get("type") == "call.participant_moved" and f["participant"]["tier"] == "audience"
        )
    )
    assert back["participant"]["user_id"] == a_id
    # a stage participant's leave reaches every watcher, as before
    ok(await host.post(room.path("/join")))
    ok(await host.post(room.path("/leave")))
    left = await b.wait_type("call.participant_left")
    assert left["participant"] == {**left["participant"], "user_id": host_id, "tier": "stage"}


async def test_only_moderators_may_watch_the_audience_one_by_one(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, _, _ = await live_audio_room(clients, host_id, [a_id])
    probe = await ws_connect(server.token(a_id))
    await probe.connected()
    refused = await probe.watch(room.cid, audience=True)
    assert refused["type"] == "error" and refused["in_reply_to"] == "watch"
    assert refused["error"]["code"] == "permission_denied"
    assert refused["error"]["details"] == {"capability": "update-call-permissions"}
    start = len(probe.frames)
    await probe.send({"type": "watch", "call_cid": room.cid, "audience": "yes"})
    bad = await probe.wait_type("error", start=start)
    assert bad["error"]["code"] == "validation_error"


async def test_counts_are_coalesced_and_exact_after_a_burst(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id = uid("host")
    room, host, _ = await live_audio_room(clients, host_id)
    watcher = await _watching(ws_connect, server.token(host_id), room.cid)
    users = [uid("burst") for _ in range(40)]
    await asyncio.gather(*(clients(u).post(room.path("/join")) for u in users))
    await asyncio.gather(*(clients(u).post(room.path("/leave")) for u in users[:15]))
    final = await watcher.wait_for(
        lambda f: f.get("type") == "call.audience_updated" and f["audience_count"] == 25,
        within=10,
    )
    await asyncio.sleep(1.5)
    counts = watcher.events(room.cid, "call.audience_updated")
    assert counts[-1] == final, "nothing after the final count"
    times = [datetime.fromisoformat(f["created_at"]) for f in counts]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.99 for gap in gaps), gaps
    assert len({f["audience_count"] for f in counts}) == len(counts), "only changes are sent"
    # a replay gives exactly the counts a live watcher got
    again = await ws_connect(server.token(host_id))
    await again.connected()
    await again.watch(room.cid, since=counts[0]["seq"] - 1)
    assert again.events(room.cid, "call.audience_updated") == counts
    assert ok(await host.get(room.path()))["audience_count"] == 25


async def test_a_blocked_listener_leaves_the_audience(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, _ = await live_audio_room(clients, host_id, [a_id])
    moderator = await _watching(ws_connect, server.token(host_id), room.cid, audience=True)
    await moderator.wait_for(
        lambda f: f.get("type") == "call.audience_updated" and f["audience_count"] == 1
    )
    ok(await host.post(room.path("/block"), json={"user_id": a_id}))
    left = await moderator.wait_type("call.participant_left")
    assert left["participant"]["tier"] == "audience" and left["reason"] == "blocked"
    await moderator.wait_for(
        lambda f: f.get("type") == "call.audience_updated" and f["audience_count"] == 0
    )
    expect_error(
        await clients(uid("x")).get(room.path("/participants"), params={"tier": "nowhere"}),
        422,
        "validation_error",
    )


async def test_joins_that_arrive_together_each_get_their_own_answer(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    """Joins queued on one call are committed together; each still gets its own state or error."""
    host_id, blocked_id, twice_id = uid("host"), uid("blocked"), uid("twice")
    room, host, _ = await live_audio_room(clients, host_id)
    ok(await host.post(room.path("/block"), json={"user_id": blocked_id}))
    moderator = await _watching(ws_connect, server.token(host_id), room.cid, audience=True)
    users = [uid("together") for _ in range(30)]
    joining = [*users, twice_id, blocked_id, twice_id]
    answers = await asyncio.gather(*(clients(u).post(room.path("/join")) for u in joining))
    for user, answer in zip(joining, answers, strict=True):
        if user == blocked_id:
            expect_error(answer, 403, "permission_denied")
            continue
        state = ok(answer)
        own = [p for p in state["participants"] if p["user_id"] == user]
        assert [p["tier"] for p in own] == ["audience"], (user, state["participants"])
        assert 1 <= state["audience_count"] <= 31
        assert "update-call-permissions" not in state["own_capabilities"]
    assert ok(await host.get(room.path()))["audience_count"] == 31
    await barrier(host, room, [moderator])
    joined = moderator.events(room.cid, "call.participant_joined")
    assert sorted(f["participant"]["user_id"] for f in joined) == sorted([*users, twice_id])
    seqs = [f["seq"] for f in moderator.events(room.cid)]
    assert seqs == sorted(set(seqs)), "no event lost or repeated"
