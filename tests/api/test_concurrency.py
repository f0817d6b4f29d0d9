"""Issue point 9: two hosts answer the same request at once; exactly one wins.

Over real HTTP with two separate clients (two connection pools) fired together
by `asyncio.gather`, for many rounds; both hosts' WebSockets must see exactly
one `call.permission_request_resolved` per request, naming the winner.
"""

from __future__ import annotations

import asyncio

from tests.api.helpers import (
    JSON,
    ClientFactory,
    WsFactory,
    ask,
    barrier,
    caps_of,
    create,
    expect_error,
    live_audio_room,
    ok,
    put_call_type,
    requests_of,
    uid,
)
from tests.server import ServerProcess

ROUNDS = 30


async def test_two_hosts_answer_the_same_request(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host1_id, host2_id = uid("host1"), uid("host2")
    room, host1, _ = await live_audio_room(clients, host1_id)
    ok(
        await host1.post(
            room.path("/members"), json={"update": [{"user_id": host2_id, "role": "host"}]}
        )
    )
    host2 = clients(host2_id)
    assert "update-call-permissions" in await caps_of(host2, room)
    ws1, ws2 = await ws_connect(server.token(host1_id)), await ws_connect(server.token(host2_id))
    for probe in (ws1, ws2):
        await probe.connected()
        assert (await probe.watch(room.cid))["type"] == "watch.ok"

    winners: dict[str, tuple[str, str]] = {}  # request id -> (state, resolved_by)
    outcomes = {"accepted": 0, "rejected": 0}
    for round_ in range(ROUNDS):
        listener_id = f"{uid('l')}-{round_}"
        listener = clients(listener_id)
        ok(await listener.post(room.path("/join")))
        request = await ask(listener, room, "send-audio")
        path = room.path(f"/permission-requests/{request['id']}")
        # alternate who accepts, so both sides of the race get to win
        accepter, rejecter = (host1, host2) if round_ % 2 == 0 else (host2, host1)
        accept = accepter.post(f"{path}/accept")
        reject = rejecter.post(f"{path}/reject", json={"reason": f"round {round_}"})
        # and which request leaves first, so either answer can win
        if (round_ // 2) % 2 == 0:
            accept_response, reject_response = await asyncio.gather(accept, reject)
        else:
            reject_response, accept_response = await asyncio.gather(reject, accept)
        statuses = sorted((accept_response.status_code, reject_response.status_code))
        assert statuses == [200, 409], (round_, accept_response.text, reject_response.text)
        winner, loser = (
            (accept_response, reject_response)
            if accept_response.status_code == 200
            else (reject_response, accept_response)
        )
        expect_error(loser, 409, "request_already_resolved")
        won: JSON = winner.json()["request"]
        expected_state = "accepted" if winner is accept_response else "rejected"
        expected_by = host1_id if (winner is accept_response) == (accepter is host1) else host2_id
        assert won["state"] == expected_state
        assert won["resolved_by"] == expected_by
        outcomes[expected_state] += 1
        winners[request["id"]] = (expected_state, expected_by)

        # the final state matches the winner, as the requester and the hosts see it
        [own] = await requests_of(listener, room)
        assert (own["state"], own["resolved_by"]) == (expected_state, expected_by)
        held = "send-audio" in await caps_of(listener, room)
        assert held is (expected_state == "accepted"), (round_, own)

    # every request was told to both hosts exactly once, as it was really resolved
    await barrier(host1, room, [ws1, ws2])
    for probe in (ws1, ws2):
        resolved = probe.events(room.cid, "call.permission_request_resolved")
        ids = [f["request"]["id"] for f in resolved]
        assert sorted(ids) == sorted(winners), (len(ids), len(winners))
        for frame in resolved:
            request = frame["request"]
            assert (request["state"], request["resolved_by"]) == winners[request["id"]]
        told = probe.events(room.cid, "call.permission_request")
        assert sorted(f["request"]["id"] for f in told) == sorted(winners)
        seqs = [f["seq"] for f in probe.events(room.cid)]
        assert seqs == sorted(set(seqs))
    everything = {r["id"]: r for r in await requests_of(host2, room)}
    assert {rid: (r["state"], r["resolved_by"]) for rid, r in everything.items()} == winners
    assert sum(outcomes.values()) == ROUNDS


async def test_many_concurrent_answers_one_winner(clients: ClientFactory) -> None:
    """Six answers at once (three accept, three reject) from two hosts: one 200, five 409."""
    name = uid("race")
    await put_call_type(clients(), name, request_cooldown_s=0)
    host1_id, host2_id, a_id = uid("host1"), uid("host2"), uid("a")
    host1, a = clients(host1_id), clients(a_id)
    room, _ = await create(host1, name)
    ok(
        await host1.post(
            room.path("/members"), json={"update": [{"user_id": host2_id, "role": "host"}]}
        )
    )
    ok(await a.post(room.path("/join")))
    hosts = [host1, clients(host2_id)]
    for round_ in range(10):
        request = await ask(a, room, "send-audio")
        path = room.path(f"/permission-requests/{request['id']}")
        responses = await asyncio.gather(
            *(hosts[i % 2].post(f"{path}/{'accept' if i < 3 else 'reject'}") for i in range(6))
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 409, 409, 409, 409, 409], (round_, [r.text for r in responses])
        for response in responses:
            if response.status_code == 409:
                expect_error(response, 409, "request_already_resolved")
        [winner] = [r.json()["request"] for r in responses if r.status_code == 200]
        held = "send-audio" in await caps_of(a, room)
        assert held is (winner["state"] == "accepted")
        [listed] = [r for r in await requests_of(a, room) if r["id"] == request["id"]]
        assert (listed["state"], listed["resolved_by"]) == (winner["state"], winner["resolved_by"])
        if held:  # revoke, so the next round may ask again
            ok(
                await host1.post(
                    room.path("/user-permissions"), json={"user_id": a_id, "revoke": ["send-audio"]}
                )
            )


async def test_concurrent_get_or_create_makes_one_call(clients: ClientFactory) -> None:
    room_id = uid("race")
    users = [uid(f"u{i}") for i in range(8)]
    responses = await asyncio.gather(
        *(clients(user).post(f"/v1/calls/default/{room_id}") for user in users)
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 7 + [201], [r.text for r in responses]
    [created] = [r.json() for r in responses if r.status_code == 201]
    creator = created["call"]["created_by"]
    for response in responses:
        state = response.json()
        assert state["call"]["created_by"] == creator
        assert state["call"]["created_at"] == created["call"]["created_at"]
    hosts = [m for m in created["members"] if m["role"] == "host"]
    assert [m["user_id"] for m in hosts] == [creator]


async def test_concurrent_asks_make_one_request(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, _ = await live_audio_room(clients, host_id, [a_id])
    askers = [clients(a_id) for _ in range(8)]
    responses = await asyncio.gather(
        *(
            c.post(room.path("/permission-requests"), json={"permissions": ["send-audio"]})
            for c in askers
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 7 + [201], [r.text for r in responses]
    assert len({r.json()["request"]["id"] for r in responses}) == 1
    assert len(await requests_of(host, room, "pending")) == 1


async def test_concurrent_joins_announce_once(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, _ = await live_audio_room(clients, host_id)
    watcher = await ws_connect(server.token(host_id))
    await watcher.connected()
    await watcher.watch(room.cid, audience=True)
    responses = await asyncio.gather(*(clients(a_id).post(room.path("/join")) for _ in range(6)))
    assert [r.status_code for r in responses] == [200] * 6
    await barrier(host, room, [watcher])
    joined = watcher.events(room.cid, "call.participant_joined")
    assert [f["participant"]["user_id"] for f in joined] == [a_id]
