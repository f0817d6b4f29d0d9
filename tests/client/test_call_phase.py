"""A phase change makes the SDK re-read the call; a read that comes back older is read again.

The network is `httpx.MockTransport` answering canned call state objects: what is
tested is the SDK's own ordering logic, which a real server cannot be made to race
on demand.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx

from podium.client import Client

CID = "audio_room:stage"
LISTENER = ["read-call", "create-call", "join-call"]


def token(user_id: str) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'sub': user_id, 'exp': 2**40})}.sig"


def snapshot(seq: int, phase: str, capabilities: list[str]) -> dict[str, Any]:
    call = {"cid": CID, "type": "audio_room", "id": "stage", "phase": phase}
    call |= {"live": phase == "live", "backstage": phase == "backstage", "ended": False}
    return {"call": call, "settings": {}, "own_capabilities": capabilities, "seq": seq}


async def test_a_phase_reread_older_than_the_state_is_read_again() -> None:
    answered = asyncio.Event()
    reads: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("GET", "/v1/calls/audio_room/stage")
        reads.append(len(reads))
        if len(reads) == 1:
            await answered.wait()  # read at seq 6, answered after event 7 arrived
            return httpx.Response(200, json=snapshot(6, "live", LISTENER))
        return httpx.Response(200, json=snapshot(7, "live", LISTENER))

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with Client("http://podium.test", token("lee"), http=http) as client:
        call = client.call("audio_room", "stage")
        call._snapshot(snapshot(5, "backstage", ["read-call", "create-call"]))
        phases: list[str] = []
        call.on("call.live_started", lambda event: phases.append(event["call"]["phase"]))

        live = snapshot(6, "live", [])["call"]
        call.handle_frame({"type": "call.live_started", "call_cid": CID, "seq": 6, "call": live})
        joined = {"user_id": "bob", "name": "Bob", "image": None, "joined_at": "x"}
        call.handle_frame(
            {"type": "call.participant_joined", "call_cid": CID, "seq": 7, "participant": joined}
        )
        await asyncio.sleep(0.05)
        answered.set()
        for _ in range(100):
            if phases:
                break
            await asyncio.sleep(0.01)
        assert phases == ["live"]  # handlers run after the re-read
        assert call.state.own_capabilities == set(LISTENER)
        assert call.state.seq == 7
        assert len(reads) == 2
    await http.aclose()
