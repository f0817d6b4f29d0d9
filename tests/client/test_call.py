"""The SDK against a real `podium serve --dev` process: flows, state, reconnects, errors.

Every wait is bounded (`WAIT_S`); every poll loop ends at a deadline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from podium.client import CAPABILITIES, Call, Client, PodiumAPIError
from tests.server import ServerProcess

WAIT_S = 10.0

# tests/server.py never closes the server's log file; with filterwarnings=error that
# ResourceWarning would fail the test. Ignored for exactly that file, nothing else.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Poll `predicate` until true; fail after `WAIT_S` seconds."""
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_S} s waiting for {what}")
        await asyncio.sleep(0.02)


def collect(call: Call, event_type: str) -> asyncio.Queue[dict[str, Any]]:
    """A queue receiving every `event_type` event of `call`."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    call.on(event_type, queue.put_nowait)
    return queue


async def next_event(queue: asyncio.Queue[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(queue.get(), WAIT_S)


@asynccontextmanager
async def client(server: ServerProcess, user_id: str, **kwargs: Any) -> AsyncIterator[Client]:
    async with Client(server.url, server.token(user_id, name=user_id.title()), **kwargs) as c:
        yield c


async def live_room(host: Client) -> Call:
    """A fresh audio room the host created, joined and took live."""
    stage = host.call("audio_room", uid("room"))
    await stage.get_or_create()
    await stage.join()
    await stage.go_live()
    return stage


async def test_request_accept_flow(server: ServerProcess) -> None:
    """The README scenario: request send-audio, the host is told and accepts, it flips."""
    async with client(server, "host") as host, client(server, "listener") as listener:
        stage = await live_room(host)
        assert stage.state.live and not stage.state.backstage
        assert stage.has_permission("update-call-permissions")
        requests = collect(stage, "call.permission_request")

        seat = listener.call("audio_room", stage.id)
        state = await seat.join()
        assert state is seat.state and seat.watching
        assert "listener" in seat.state.participants
        mic = seat.permission("send-audio")
        assert not mic.has_permission
        assert mic.can_request_permission
        assert not mic.is_awaiting_permission
        updated = collect(seat, "call.permissions_updated")
        resolved = collect(seat, "call.permission_request_resolved")

        request = await mic.request()
        assert request["state"] == "pending" and request["permissions"] == ["send-audio"]
        assert mic.is_awaiting_permission and not mic.can_request_permission
        again = await mic.request()  # one pending request per capability
        assert again["id"] == request["id"]

        event = await next_event(requests)
        assert event["request"]["id"] == request["id"]
        assert event["user"]["id"] == "listener" and event["user"]["name"] == "Listener"
        assert request["id"] in stage.state.pending_requests  # applied before the handler ran

        answer = await stage.accept(event["request"])
        assert answer["state"] == "accepted" and answer["resolved_by"] == "host"
        assert request["id"] not in stage.state.pending_requests

        flipped = await next_event(updated)
        assert "send-audio" in flipped["own_capabilities"]
        assert mic.has_permission and seat.has_permission("send-audio")
        done = await next_event(resolved)
        assert done["request"]["state"] == "accepted"
        assert not mic.is_awaiting_permission and not mic.can_request_permission


async def test_reject_flow(server: ServerProcess) -> None:
    async with client(server, "host") as host, client(server, "listener") as listener:
        stage = await live_room(host)
        requests = collect(stage, "call.permission_request")
        seat = listener.call("audio_room", stage.id)
        await seat.join()
        resolved = collect(seat, "call.permission_request_resolved")

        request = await seat.request_permissions(["send-video"])
        event = await next_event(requests)
        answer = await stage.reject(event["request"]["id"], reason="not now")
        assert answer["state"] == "rejected" and answer["reason"] == "not now"

        told = await next_event(resolved)
        assert told["request"]["id"] == request["id"]
        assert told["request"]["state"] == "rejected" and told["request"]["reason"] == "not now"
        camera = seat.permission("send-video")
        assert not camera.has_permission and not camera.is_awaiting_permission
        assert camera.can_request_permission  # the server decides the cooldown

        with pytest.raises(PodiumAPIError) as caught:
            await camera.request()
        assert caught.value.status == 429 and caught.value.code == "request_cooldown"
        assert caught.value.details["retry_after_s"] > 0

        # A second answer to a resolved request is a conflict.
        with pytest.raises(PodiumAPIError) as conflict:
            await stage.accept(request)
        assert conflict.value.status == 409
        assert conflict.value.code == "request_already_resolved"


async def test_cancel_own_request(server: ServerProcess) -> None:
    async with client(server, "host") as host, client(server, "listener") as listener:
        stage = await live_room(host)
        seat = listener.call("audio_room", stage.id)
        await seat.join()
        request = await seat.permission("screenshare").request()
        await eventually(lambda: request["id"] in stage.state.pending_requests, "host told")
        cancelled = await seat.cancel(request)
        assert cancelled["state"] == "cancelled"
        assert not seat.permission("screenshare").is_awaiting_permission
        await eventually(lambda: not stage.state.pending_requests, "host told of the cancel")


async def test_awaiting_restored_by_a_new_client(server: ServerProcess) -> None:
    """A new Client (as after a restart) learns of its pending request from `get()`."""
    async with client(server, "host") as host:
        stage = await live_room(host)
        async with client(server, "listener") as first:
            seat = first.call("audio_room", stage.id)
            await seat.join()
            request = await seat.permission("send-audio").request()

        async with client(server, "listener") as second:
            seat = second.call("audio_room", stage.id)
            assert not seat.state.loaded
            await seat.get()
            mic = seat.permission("send-audio")
            assert mic.is_awaiting_permission
            assert mic.pending_request is not None and mic.pending_request["id"] == request["id"]
            assert not mic.can_request_permission and not mic.has_permission
            assert list(seat.state.pending_requests) == [request["id"]]

            # The host's own fresh view lists it too, and answering reaches the new client.
            other_host = host.call("audio_room", stage.id)
            assert other_host is stage
            await stage.get()
            assert request["id"] in stage.state.pending_requests
            await seat.watch()
            resolved = collect(seat, "call.permission_request_resolved")
            await stage.reject(request)
            await next_event(resolved)
            assert not mic.is_awaiting_permission


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_reconnect_replays_missed_events(server: ServerProcess, how: str) -> None:
    """Events published while the connection is down arrive after the automatic re-watch."""
    async with (
        client(server, "host") as host,
        client(server, "listener", backoff_initial_s=1.5, backoff_max_s=2.0) as listener,
    ):
        stage = await live_room(host)
        seat = listener.call("audio_room", stage.id)
        await seat.join()
        seen: list[dict[str, Any]] = []
        seat.on("*", seen.append)
        added = collect(seat, "call.member_added")
        stream = listener.events
        assert stream.connects == 1
        ws = stream.websocket
        assert ws is not None

        if how == "close":
            await ws.close()
        else:
            ws.transport.abort()
        await eventually(lambda: not stream.connected, "the connection to drop")

        # While the listener is disconnected the host changes the call.
        await stage.update_members({"carol": "speaker"})
        async with client(server, "carol") as carol:
            await carol.call("audio_room", stage.id).join()
        await stage.stop_live()
        assert stream.connects == 1, "reconnected before the events were published"

        event = await next_event(added)
        assert [m["user_id"] for m in event["members"]] == ["carol"]
        await eventually(
            lambda: any(e["type"] == "call.live_stopped" for e in seen),
            "call.live_stopped to be replayed (handlers run after the state refresh)",
        )
        assert not seat.state.live
        assert stream.connects == 2
        assert seat.state.members["carol"]["role"] == "speaker"
        assert "carol" in seat.state.participants
        assert seat.state.backstage
        # The listener's own audience join is counted once a second: that count may
        # arrive at any point here, so only the other events are checked for order.
        seen = [e for e in seen if e["type"] != "call.audience_updated"]
        seqs = [e["seq"] for e in seen]
        assert seqs == sorted(set(seqs)), f"events duplicated or out of order: {seqs}"
        assert [e["type"] for e in seen] == [
            "call.member_added",
            "call.participant_joined",
            "call.live_stopped",
        ]

        # And the new connection is live: the next event arrives without a reconnect.
        await stage.go_live()
        await eventually(lambda: seat.state.live, "call.live_started on the new connection")
        assert stream.connects == 2


async def test_state_kept_current(server: ServerProcess) -> None:
    async with client(server, "host") as host, client(server, "listener") as listener:
        stage = host.call("audio_room", uid("room"))
        created = await stage.get_or_create(members={"speaker-sam": "speaker"}, custom={"t": 1})
        assert created.type == "audio_room" and created.custom == {"t": 1}
        assert created.backstage and not created.live and not created.ended
        assert created.members["host"]["role"] == "host"
        assert created.members["speaker-sam"]["role"] == "speaker"
        assert created.requestable == {"send-audio", "send-video", "screenshare"}
        await stage.join()
        assert "host" in stage.state.participants

        seat = listener.call("audio_room", stage.id)
        with pytest.raises(PodiumAPIError) as backstage:
            await seat.join()  # listeners wait for the host to go live
        assert backstage.value.status == 403
        assert backstage.value.details["capability"] == "join-backstage"
        await seat.watch()
        assert seat.state.loaded and seat.state.backstage
        phases: list[str] = []

        async def on_phase(event: dict[str, Any]) -> None:  # coroutine handlers work too
            phases.append(event["call"]["phase"])

        seat.on("call.live_started", on_phase)
        unsubscribe = seat.on("call.live_stopped", on_phase)

        await stage.go_live()
        await eventually(lambda: seat.state.live, "the listener to see the call go live")
        await seat.join()
        # The listener joins the audience: the host counts it but does not list it.
        await eventually(lambda: stage.state.audience_count == 1, "host counts the join")
        assert "listener" not in stage.state.participants
        assert seat.state.participants["listener"]["tier"] == "audience"

        await stage.update_members({"speaker-sam": "host"}, remove=["host-nobody"])
        await eventually(
            lambda: seat.state.members["speaker-sam"]["role"] == "host", "member_updated"
        )
        await stage.update_members(remove=["speaker-sam"])
        await eventually(lambda: "speaker-sam" not in seat.state.members, "member_removed")

        await seat.leave()
        assert "listener" not in seat.state.participants
        await eventually(lambda: stage.state.audience_count == 0, "host counts the leave")

        await stage.stop_live()
        await eventually(lambda: seat.state.backstage, "the listener sees stop-live")
        unsubscribe()
        await stage.go_live()
        await eventually(lambda: phases == ["live", "backstage", "live"], "handlers ran")
        await stage.stop_live()
        await eventually(lambda: seat.state.backstage, "stop-live again")
        assert phases == ["live", "backstage", "live"]  # unsubscribed from live_stopped

        ended = collect(seat, "call.ended")
        await stage.end()
        await next_event(ended)
        assert seat.state.ended and not seat.state.participants
        assert stage.state.ended
        await eventually(lambda: stage.state.seq == seat.state.seq, "host's own call.ended")


async def test_moderation_events(server: ServerProcess) -> None:
    async with client(server, "host") as host, client(server, "listener") as listener:
        stage = await live_room(host)
        seat = listener.call("audio_room", stage.id)
        await seat.join()
        updated = collect(seat, "call.permissions_updated")
        muted = collect(seat, "call.user_muted")

        caps = await stage.grant_permissions("listener", ["send-audio", "send-video"])
        assert {"send-audio", "send-video"} <= set(caps)
        await next_event(updated)
        assert seat.has_permission("send-video")
        await stage.revoke_permissions("listener", ["send-video"])
        await next_event(updated)
        assert not seat.has_permission("send-video") and seat.has_permission("send-audio")

        answer = await stage.mute(["listener"], audio=True)
        assert answer["kinds"] == ["audio"]
        event = await next_event(muted)
        assert event["user_id"] == "listener" and event["muted_by"] == "host"

        blocked = collect(stage, "call.blocked_user")
        await stage.block("listener")
        assert (await next_event(blocked))["user_id"] == "listener"
        assert "listener" in stage.state.blocked_user_ids
        assert "listener" not in stage.state.participants
        await next_event(updated)
        assert not seat.state.own_capabilities
        await stage.unblock("listener")
        await eventually(lambda: "listener" not in stage.state.blocked_user_ids, "unblocked")
        await next_event(updated)
        assert seat.has_permission("read-call")


async def test_errors_map_to_podium_api_error(server: ServerProcess) -> None:
    async with client(server, "host") as host, client(server, "listener") as listener:
        missing = host.call("audio_room", uid("missing"))
        with pytest.raises(PodiumAPIError) as not_found:
            await missing.get()
        assert not_found.value.status == 404
        assert not_found.value.code == "call_not_found"
        assert not_found.value.details == {"call_cid": missing.cid}
        assert not missing.state.loaded

        with pytest.raises(PodiumAPIError) as watch_missing:
            await listener.events.watch(f"audio_room:{uid('missing')}")
        assert watch_missing.value.code == "call_not_found"
        assert watch_missing.value.status == 404

        stage = await live_room(host)
        seat = listener.call("audio_room", stage.id)
        with pytest.raises(PodiumAPIError) as not_member:
            await seat.request_permissions(["send-audio"])
        assert not_member.value.status == 403 and not_member.value.code == "permission_denied"
        await seat.join()
        with pytest.raises(PodiumAPIError) as denied:
            await seat.go_live()
        assert denied.value.status == 403
        assert denied.value.details == {"capability": "go-live"}
        with pytest.raises(PodiumAPIError) as not_requestable:
            await seat.request_permissions(["end-call"])
        assert not_requestable.value.code == "not_requestable"
        with pytest.raises(PodiumAPIError) as held:
            await stage.request_permissions(["send-audio"])
        assert held.value.status == 409 and held.value.code == "capability_held"
        with pytest.raises(PodiumAPIError) as no_request:
            await stage.accept("0123456789abcdef")
        assert no_request.value.status == 404 and no_request.value.code == "request_not_found"

        # Unknown capability names never reach the server.
        with pytest.raises(ValueError, match="unknown capability 'sing'"):
            seat.permission("sing")
        with pytest.raises(ValueError, match="unknown capability"):
            await seat.request_permissions(["send-audio", "fly"])
        with pytest.raises(ValueError, match="call id"):
            host.call("audio_room", "no spaces")

    async with Client(server.url, "not-a-token") as stranger:
        with pytest.raises(PodiumAPIError) as bad_token:
            await stranger.call("audio_room", "x").get()
        assert bad_token.value.status == 401 and bad_token.value.code == "invalid_token"
        with pytest.raises(PodiumAPIError) as refused:
            await stranger.connect()
        assert refused.value.code == "invalid_token"


async def test_injected_http_client_and_dev_token(server: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=WAIT_S) as http:
        token = await Client.dev_token(server.url, "devon", name="Devon", http=http)
        async with Client(server.url, token, http=http) as devon:
            assert devon.user_id == "devon"
            call = devon.call("development", uid("dev"))
            state = await call.get_or_create()
            assert "send-video" in state.own_capabilities
            assert any(t["name"] == "audio_room" for t in await devon.call_types())
            assert any(c["cid"] == call.cid for c in await devon.query_calls(type="development"))
        assert not http.is_closed  # the caller's client stays the caller's
    admin_token = await Client.dev_token(server.url, "root", role="admin")
    async with Client(server.url, admin_token) as admin:
        assert admin.user_id == "root"
        with pytest.raises(PodiumAPIError) as invalid:
            await Client.dev_token(server.url, "someone", role="Not A Role")
        assert invalid.value.status in (400, 422)


async def test_expired_request_is_no_longer_awaited(server: ServerProcess) -> None:
    """Past its `expires_at` a request is not awaited any more and may be asked again."""
    room_type = uid("quick")
    async with httpx.AsyncClient(timeout=WAIT_S) as http:
        response = await http.put(
            f"{server.url}/v1/call-types/{room_type}",
            headers={"Authorization": f"Bearer {server.server_token()}"},
            json={
                "grants": {
                    "user": ["read-call", "create-call", "join-call"],
                    "host": sorted(CAPABILITIES),
                },
                "requestable": ["send-audio"],
                "request_ttl_s": 1,
            },
        )
        assert response.status_code == 200, response.text
    async with client(server, "host") as host, client(server, "listener") as listener:
        stage = host.call(room_type, uid("room"))
        await stage.get_or_create()
        seat = listener.call(room_type, stage.id)
        await seat.join()
        mic = seat.permission("send-audio")
        first = await mic.request()
        assert mic.is_awaiting_permission
        await eventually(lambda: not mic.is_awaiting_permission, "the request to expire")
        assert mic.can_request_permission
        second = await mic.request()
        assert second["id"] != first["id"] and mic.is_awaiting_permission
