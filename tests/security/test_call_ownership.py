"""Call ownership: who may create a call of a type, and closing call-id squatting.

Real `podium serve` processes on SQLite and PostgreSQL. With the built-in
types any user creates a call and becomes its host (today's default, kept).
A deployment that follows `docs/security.md` replaces a type with
`PUT /v1/call-types/{type}` so that its `user` role lacks `create-call`: then
an ordinary token gets 403 naming `create-call` and telling the user to ask
the organiser, a token with role `admin` and server tokens may create, and a
call created ahead by a server token with `members` belongs to its organiser
when an announced id is tried by someone else. The web app's lobby message
for this case is tested in `tests/e2e/test_web_resilience.py`.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from podium.core.capabilities import ALL_CAPABILITIES, sorted_names
from tests.server import ServerProcess

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)

#: The recipe of docs/security.md: users join, hosts and admins hold everything.
CLOSED_TOWN_HALL = {
    "grants": {
        "user": ["read-call", "join-call"],
        "host": sorted_names(ALL_CAPABILITIES),
        "admin": sorted_names(ALL_CAPABILITIES),
    },
    "requestable": ["send-audio", "send-video", "screenshare"],
    "backstage": True,
}


def client(server: ServerProcess, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{server.url}/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
        trust_env=False,
    )


async def test_builtin_types_let_any_user_create_and_host(
    tmp_path: Path, database_url: str
) -> None:
    server = ServerProcess(tmp_path, database_url).start()
    path = f"/calls/audio_room/open-{uuid.uuid4().hex[:12]}"
    try:
        async with (
            client(server, server.token("ann")) as ann,
            client(server, server.token("ben")) as ben,
        ):
            created = await ann.post(path, json={})
            assert created.status_code == 201, created.text
            assert "update-call-permissions" in created.json()["own_capabilities"]
            second = await ben.post(path, json={})
            assert second.status_code == 200, second.text
            assert "update-call-permissions" not in second.json()["own_capabilities"]
    finally:
        server.stop()


async def test_a_closed_call_type_cannot_be_squatted(tmp_path: Path, database_url: str) -> None:
    server = ServerProcess(tmp_path, database_url).start()
    announced = f"/calls/town_hall/q3-all-hands-{uuid.uuid4().hex[:8]}"
    try:
        async with (
            client(server, server.server_token()) as operator,
            client(server, server.token("mallory")) as mallory,
            client(server, server.token("olga")) as organiser,
            client(server, server.token("ada", role="admin")) as admin,
        ):
            # Only a server token may define call types.
            refused = await mallory.put("/call-types/town_hall", json=CLOSED_TOWN_HALL)
            assert refused.status_code == 403, refused.text
            defined = await operator.put("/call-types/town_hall", json=CLOSED_TOWN_HALL)
            assert defined.status_code in (200, 201), defined.text

            # An ordinary token may not create a call of the type, and is told why.
            squat = await mallory.post(announced, json={})
            assert squat.status_code == 403, squat.text
            error = squat.json()["error"]
            assert error["code"] == "permission_denied"
            assert error["details"]["capability"] == "create-call"
            assert "organiser" in error["message"]
            missing = await mallory.get(announced)
            assert missing.status_code == 404, missing.text

            # The organiser's call, created ahead with a server token.
            ahead = await operator.post(
                announced, json={"members": [{"user_id": "olga", "role": "host"}]}
            )
            assert ahead.status_code == 201, ahead.text
            members = {m["user_id"]: m["role"] for m in ahead.json()["members"]}
            assert members == {"olga": "host"}

            # Now the announced id is the organiser's: others get it as users.
            later = await mallory.post(announced, json={})
            assert later.status_code == 200, later.text
            assert "go-live" not in later.json()["own_capabilities"]
            hosting = await organiser.post(announced, json={})
            assert {"go-live", "update-call-permissions"} <= set(hosting.json()["own_capabilities"])
            assert (await organiser.post(f"{announced}/go-live")).status_code == 200
            joined = await mallory.post(f"{announced}/join")
            assert joined.status_code == 200, joined.text
            assert "send-audio" not in joined.json()["own_capabilities"]

            # An admin token may still create calls of the type, and hosts them.
            own = await admin.post(f"/calls/town_hall/admin-{uuid.uuid4().hex[:8]}", json={})
            assert own.status_code == 201, own.text
            assert "end-call" in own.json()["own_capabilities"]

            # Replacing a built-in type closes it the same way.
            closed = await operator.put("/call-types/audio_room", json=CLOSED_TOWN_HALL)
            assert closed.status_code in (200, 201), closed.text
            squat = await mallory.post(f"/calls/audio_room/x-{uuid.uuid4().hex[:8]}", json={})
            assert squat.status_code == 403, squat.text
    finally:
        server.stop()
