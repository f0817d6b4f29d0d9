"""The shared behaviour fixtures (tests/fixtures/sdk_behaviour), run against the Python SDK.

podium.js runs the same files (tests/web/behaviour-fixtures.test.mjs), so a change in how
one SDK folds events into its state fails here or there instead of drifting apart. No
server: `call.get()` is answered by `httpx.MockTransport` with the fixture's snapshot (so
the re-read after a phase change is older than the state and ignored) or a step's
`reread`, and each event goes through the client's dispatch, where its event connection
hands every frame over.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from podium.client import Call, CallState, Client
from podium.protocol.ids import parse_call_cid

FOLDER = Path(__file__).parents[1] / "fixtures" / "sdk_behaviour"
FIXTURES = {path.name: json.loads(path.read_text()) for path in sorted(FOLDER.glob("*.json"))}


def token(user_id: str) -> str:
    """An unsigned JWT naming `user_id` (the SDK only decodes it)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'sub': user_id, 'exp': 2**40})}.sig"


def normalized(state: CallState) -> dict[str, Any]:
    """The view of the state that the fixtures spell out (README.md)."""
    return {
        "phase": state.phase,
        "live": state.live,
        "backstage": state.backstage,
        "ended": state.ended,
        "participants": sorted(state.participants),
        "members": {user_id: member.get("role") for user_id, member in state.members.items()},
        "own_capabilities": sorted(state.own_capabilities),
        "pending_requests": sorted(state.pending_requests),
        "blocked_user_ids": sorted(state.blocked_user_ids),
        "audience_count": state.audience_count,
        "seq": state.seq,
    }


def handles(call: Call, capabilities: list[str]) -> dict[str, dict[str, bool]]:
    views = {}
    for capability in capabilities:
        handle = call.permission(capability)
        views[capability] = {
            "has": handle.has_permission,
            "can_request": handle.can_request_permission,
            "awaiting": handle.is_awaiting_permission,
        }
    return views


def check(call: Call, expect: dict[str, Any], where: str) -> None:
    assert normalized(call.state) == expect["state"], where
    assert handles(call, list(expect["permissions"])) == expect["permissions"], where


@pytest.mark.parametrize("name", FIXTURES)
async def test_fixture(name: str) -> None:
    fixture = FIXTURES[name]
    answers = {"snapshot": fixture["snapshot"]}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answers["snapshot"])

    transport = httpx.MockTransport(answer)
    async with (
        httpx.AsyncClient(transport=transport) as http,
        Client("http://podium.test", token(fixture["user_id"]), http=http) as client,
    ):
        call = client.call(*parse_call_cid(fixture["snapshot"]["call"]["cid"]))
        delivered: list[dict[str, Any]] = []
        call.on("*", delivered.append)
        await call.get()
        check(call, fixture["expect"], f"{name}: after the snapshot")
        for number, step in enumerate(fixture["steps"], 1):
            expect = step.get("expect_python", step["expect"])
            before = len(delivered)
            if "reread" in step:
                answers["snapshot"] = step["reread"]
                await call.get()
                where = f"{name}: after step {number} (a read)"
            else:
                client._dispatch(step["event"])
                where = f"{name}: after step {number} ({step['event']['type']})"
            check(call, expect, where)
            if "delivered" in expect:
                assert (len(delivered) > before) == expect["delivered"], where


def test_there_are_fixtures() -> None:
    assert len(FIXTURES) >= 6
