"""`/metrics`: Prometheus text that follows what the server did, for server tokens only."""

from __future__ import annotations

import re

from tests.api.helpers import ClientFactory, WsFactory, create, expect_error, uid
from tests.server import ServerProcess


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


async def test_metrics_follow_events_and_connections(
    server: ServerProcess, clients: ClientFactory, ws_connect: WsFactory
) -> None:
    host_id = uid("host")
    host = clients(host_id)
    operator = clients()
    before = (await operator.get(f"{server.url}/metrics")).text
    probe = await ws_connect(server.token(host_id))
    await probe.connected()
    room, _ = await create(host, "default")
    await probe.watch(room.cid)
    await host.post(room.path("/mute"), json={"user_ids": ["nobody"]})
    await probe.wait_type("call.user_muted")

    response = await operator.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    created = 'podium_events_published_total{type="call.created"}'
    assert _value(after, created) >= 1 + (_value(before, created) if created in before else 0)
    assert _value(after, "podium_ws_connections") >= 1
    assert _value(after, "podium_watched_calls") >= 1
    assert _value(after, "podium_frames_delivered_total") > _value(
        before, "podium_frames_delivered_total"
    )


async def test_metrics_need_a_server_token(server: ServerProcess, clients: ClientFactory) -> None:
    expect_error(await clients(uid("u")).get("/metrics"), 403, "permission_denied")
    expect_error(await clients(token="garbage").get("/metrics"), 401, "invalid_token")
