"""`Call.participants_page`: the Python SDK reads the stage or the audience page by page."""

from __future__ import annotations

import pytest

from podium.client import PodiumAPIError
from tests.client.test_call import client, live_room, uid
from tests.server import ServerProcess

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)


async def test_the_audience_page_by_page(server: ServerProcess) -> None:
    prefix = uid("pp")
    listeners = sorted(f"{prefix}-{i}" for i in range(5))
    async with client(server, f"{prefix}-host") as host:
        room = await live_room(host)
        for user in listeners:
            async with client(server, user) as listener:
                await listener.call("audio_room", room.id).join()
        seen: list[str] = []
        cursor = None
        for _ in range(len(listeners)):
            page = await room.participants_page(tier="audience", limit=2, cursor=cursor)
            seen += [p["user_id"] for p in page["participants"]]
            assert all(p["tier"] == "audience" for p in page["participants"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == listeners
        stage = await room.participants_page(tier="stage")
        assert [p["user_id"] for p in stage["participants"]] == [f"{prefix}-host"]
        found = await room.participants_page(q=listeners[0])
        assert [p["user_id"] for p in found["participants"]] == [listeners[0]]
        with pytest.raises(ValueError, match="tier must be one of"):
            await room.participants_page(tier="backstage")
        with pytest.raises(PodiumAPIError) as refused:
            await room.participants_page(limit=0)
        assert refused.value.code == "validation_error"
