"""The SDK's stage/audience state against a real `podium serve --dev` process.

The state lists the stage plus your own record and counts the audience; a
moderator's `watch(audience=True)` hands audience joins to its handlers without
listing them; a grant and a revoke move a participant on and off the stage.
"""

from __future__ import annotations

import pytest

from podium.client import PodiumAPIError
from tests.client.test_call import client, collect, eventually, live_room, next_event
from tests.server import ServerProcess

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)


async def test_audience_counted_opted_in_and_moved(server: ServerProcess) -> None:
    async with client(server, "host") as host, client(server, "listener") as listener:
        stage = await live_room(host)
        await stage.watch(audience=True)
        joins = collect(stage, "call.participant_joined")
        seat = listener.call("audio_room", stage.id)
        await seat.join()
        assert seat.state.participants["listener"]["tier"] == "audience"

        joined = await next_event(joins)
        assert joined["participant"]["user_id"] == "listener"
        assert joined["participant"]["tier"] == "audience"
        assert "listener" not in stage.state.participants
        await eventually(lambda: stage.state.audience_count == 1, "the coalesced count")

        await stage.grant_permissions("listener", ["send-audio"])
        await eventually(lambda: "listener" in stage.state.participants, "moved on stage")
        assert stage.state.participants["listener"]["tier"] == "stage"
        await eventually(lambda: seat.state.participants["listener"]["tier"] == "stage", "own")

        await stage.revoke_permissions("listener", ["send-audio"])
        await eventually(lambda: "listener" not in stage.state.participants, "moved off")
        await eventually(lambda: seat.state.participants["listener"]["tier"] == "audience", "own")


async def test_audience_opt_in_needs_a_moderator(server: ServerProcess) -> None:
    async with client(server, "host") as host, client(server, "listener") as listener:
        stage = await live_room(host)
        seat = listener.call("audio_room", stage.id)
        with pytest.raises(PodiumAPIError) as refused:
            await seat.watch(audience=True)
        assert refused.value.code == "permission_denied"
