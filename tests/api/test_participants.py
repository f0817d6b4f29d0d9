"""`GET /v1/calls/{type}/{id}/participants`: stage or audience, page by page, with search."""

from __future__ import annotations

from typing import Any

from tests.api.helpers import ClientFactory, expect_error, live_audio_room, ok, uid

LISTENERS = 12


async def pages(client: Any, path: str, **params: Any) -> list[list[str]]:
    """Every page's user ids, following `next_cursor` (bounded)."""
    found: list[list[str]] = []
    cursor = None
    for _ in range(LISTENERS + 2):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = ok(await client.get(path, params=query))
        assert set(body) == {"participants", "next_cursor"}
        found.append([p["user_id"] for p in body["participants"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return found
    raise AssertionError(f"paging did not end: {found}")


async def test_the_audience_is_read_page_by_page_and_searched(clients: ClientFactory) -> None:
    prefix = uid("aud")
    listeners = [f"{prefix}-l{i:02d}" for i in range(LISTENERS)]
    host_id = f"{prefix}-host"
    room, host, by_user = await live_audio_room(clients, host_id, listeners)
    ok(await host.post(room.path("/join")))
    speaker = listeners[3]
    ok(
        await host.post(
            room.path("/user-permissions"), json={"user_id": speaker, "grant": ["send-audio"]}
        )
    )
    path = room.path("/participants")
    audience = sorted(set(listeners) - {speaker})

    # Audience pages of 5 in user id order, each user once; the stage apart.
    assert await pages(by_user[listeners[0]], path, tier="audience", limit=5) == [
        audience[0:5],
        audience[5:10],
        audience[10:],
    ]
    assert await pages(host, path, tier="stage") == [sorted([host_id, speaker])]
    everyone = ok(await host.get(path, params={"limit": 200}))["participants"]
    assert {p["user_id"]: p["tier"] for p in everyone} == {
        **dict.fromkeys(audience, "audience"),
        host_id: "stage",
        speaker: "stage",
    }
    assert set(everyone[0]) == {"user_id", "name", "image", "joined_at", "tier"}

    # Name or user id prefix search, case-insensitive.
    found = await pages(host, path, tier="audience", q=f"{prefix}-L0".upper())
    assert found == [[u for u in audience if u.startswith(f"{prefix}-l0")]]

    # Revoking moves the speaker back to the audience; leaving removes from both.
    ok(
        await host.post(
            room.path("/user-permissions"), json={"user_id": speaker, "revoke": ["send-audio"]}
        )
    )
    ok(await by_user[listeners[0]].post(room.path("/leave")))
    assert await pages(host, path, tier="audience", limit=200) == [
        sorted(set(listeners) - {listeners[0]})
    ]


async def test_participants_need_read_call_and_valid_parameters(clients: ClientFactory) -> None:
    host_id = uid("host")
    room, host, _ = await live_audio_room(clients, host_id)
    path = room.path("/participants")
    for params in (
        {"tier": "backstage"},
        {"limit": 0},
        {"limit": 201},
        {"cursor": "not a user id"},
        {"q": ""},
        {"q": "x" * 65},
    ):
        expect_error(await host.get(path, params=params), 422, "validation_error")
    outsider = uid("blocked")
    ok(await host.post(room.path("/block"), json={"user_id": outsider}))
    details = expect_error(await clients(outsider).get(path), 403, "permission_denied")
    assert details["capability"] == "read-call"
    expect_error(
        await host.get(f"/v1/calls/audio_room/{uid('missing')}/participants"),
        404,
        "call_not_found",
    )
