"""SDK media against a real `podium serve --dev` (SFU on 127.0.0.1 only): publish, receive, stop.

A listener is refused, asks for `send-audio`, publishes a 440 Hz tone once the
host accepts; the SDKs of the host and of another listener announce the track
and decode the tone. Revoking the capability over HTTP stops the publisher's
track and both subscribers' inbound packets; granting it back lets the
publisher publish again, heard on the same remote track (the SFU keeps
announcing a stopped source).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiortc.mediastreams import MediaStreamTrack, VideoStreamTrack

from podium.client import Call, Client, MediaError, PublishDeniedError
from tests.server import ServerProcess
from tests.sfu.test_call import Tone, bounded, receive_tone

WAIT_S = 10.0
HOST, LISTENER, SECOND = "hana", "lina", "sami"

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)


@asynccontextmanager
async def client(server: ServerProcess, user_id: str) -> AsyncIterator[Client]:
    token = server.token(user_id, name=user_id.title())
    async with Client(server.url, token, media_loopback=True, timeout_s=WAIT_S) as c:
        yield c


def collect(call: Call, event_type: str) -> asyncio.Queue[dict[str, Any]]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    call.on(event_type, queue.put_nowait)
    return queue


async def next_event(queue: asyncio.Queue[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(queue.get(), WAIT_S)


async def inbound_packets(call: Call) -> int:
    assert call.media is not None
    report = await bounded(call.media.pc.getStats())
    return sum(s.packetsReceived for s in report.values() if s.type == "inbound-rtp")


async def eventually(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def drain(track: MediaStreamTrack) -> None:
    """Read the frames decoded so far; fail if they keep coming."""
    for _ in range(200):
        try:
            await asyncio.wait_for(track.recv(), 0.5)
        except TimeoutError:
            return
    raise AssertionError("frames keep arriving")


async def live_room(host: Client) -> Call:
    stage = host.call("audio_room", f"media-{uuid.uuid4().hex[:8]}")
    await stage.get_or_create()
    await stage.join()
    await stage.go_live()
    return stage


async def test_publish_needs_the_capability_and_revoking_stops_the_track(
    media_server: ServerProcess,
) -> None:
    async with (
        client(media_server, HOST) as host,
        client(media_server, LISTENER) as listener,
        client(media_server, SECOND) as audience,
    ):
        stage = await live_room(host)
        # A second subscriber: the revoke must stop packets reaching every one.
        hall = audience.call("audio_room", stage.id)
        await hall.join()
        hall_added = collect(hall, "media.track_added")
        await hall.connect_media()
        added = collect(stage, "media.track_added")
        removed = collect(stage, "media.track_removed")
        await stage.connect_media()
        assert stage.media is not None
        # Three m-lines, audio / video / video: microphone, camera, screen.
        kinds = [t.kind for t in stage.media.pc.getTransceivers()]
        assert kinds[:3] == ["audio", "video", "video"]
        candidates = [
            line
            for line in stage.media.pc.remoteDescription.sdp.splitlines()
            if "candidate:" in line
        ]
        assert candidates and all(" 127.0.0.1 " in line for line in candidates), candidates

        seat = listener.call("audio_room", stage.id)
        await seat.join()
        with pytest.raises(ValueError, match="microphone takes an audio track"):
            await seat.publish("microphone", VideoStreamTrack())
        with pytest.raises(ValueError, match="source must be one of"):
            await seat.publish("speaker", Tone())
        with pytest.raises(PublishDeniedError) as denied:
            await seat.publish("microphone", Tone())
        assert (denied.value.source, denied.value.capability, denied.value.reason) == (
            "microphone",
            "send-audio",
            "not_granted",
        )
        assert seat.published == {}

        requests = collect(stage, "call.permission_request")
        await seat.request_permissions(["send-audio"])
        await stage.accept((await next_event(requests))["request"])
        await eventually(lambda: seat.has_permission("send-audio"), "send-audio granted")

        stopped = collect(seat, "media.source_stopped")
        resumed = collect(seat, "media.source_resumed")
        tone = Tone()
        await seat.publish("microphone", tone)
        assert seat.published == {"microphone": tone}

        event = await next_event(added)
        assert (event["user_id"], event["source"]) == (LISTENER, "microphone")
        assert stage.remote_tracks == {(LISTENER, "microphone"): event["track"]}
        await receive_tone(event["track"])
        hall_event = await next_event(hall_added)
        assert (hall_event["user_id"], hall_event["source"]) == (LISTENER, "microphone")
        await receive_tone(hall_event["track"])

        await stage.revoke_permissions(LISTENER, ["send-audio"])
        stop = await next_event(stopped)
        assert (stop["source"], stop["reason"], stop["track"]) == ("microphone", "revoked", tone)
        assert tone.readyState == "ended"
        assert seat.published == {}
        await asyncio.sleep(0.3)  # packets already on their way
        before = [await inbound_packets(stage), await inbound_packets(hall)]
        await asyncio.sleep(0.5)
        after = [await inbound_packets(stage), await inbound_packets(hall)]
        assert after == before, "still forwarded after the revoke"
        track = event["track"]
        await drain(track)
        await drain(hall_event["track"])

        # Back: the SDK says so; a new track on the same source is heard on the same remote track.
        await stage.grant_permissions(LISTENER, ["send-audio"])
        assert (await next_event(resumed))["source"] == "microphone"
        await seat.publish("microphone", Tone())
        await receive_tone(track)
        await receive_tone(hall_event["track"])
        assert stage.remote_tracks == {(LISTENER, "microphone"): track}
        assert added.empty() and removed.empty()


async def test_second_speaker_arrives_in_a_server_offer_and_leaving_closes_media(
    media_server: ServerProcess,
) -> None:
    """The host's own offer has one audio m-line: the second speaker needs the SFU's offer."""
    async with (
        client(media_server, HOST) as host,
        client(media_server, LISTENER) as first,
        client(media_server, SECOND) as second,
    ):
        stage = await live_room(host)
        for user_id in (LISTENER, SECOND):
            await stage.grant_permissions(user_id, ["send-audio"])
        added = collect(stage, "media.track_added")
        removed = collect(stage, "media.track_removed")
        await stage.connect_media()
        assert stage.media is not None
        mlines = len(stage.media.pc.getTransceivers())

        seat = first.call("audio_room", stage.id)
        with pytest.raises(MediaError, match="join"):
            await seat.connect_media()
        await seat.join()
        closed = collect(seat, "media.closed")
        stopped = collect(seat, "media.source_stopped")
        tone = Tone()
        await seat.publish("microphone", tone)
        heard = {}
        event = await next_event(added)
        heard[event["user_id"]] = event["track"]

        other = second.call("audio_room", stage.id)
        await other.join()
        await other.publish("microphone", Tone())
        event = await next_event(added)
        heard[event["user_id"]] = event["track"]
        assert sorted(heard) == [LISTENER, SECOND]
        assert heard[LISTENER] is not heard[SECOND]
        assert len(stage.media.pc.getTransceivers()) == mlines + 1
        for track in heard.values():
            await receive_tone(track)

        session = seat.media
        assert session is not None
        await seat.leave()
        assert (await next_event(stopped))["reason"] == "left"
        assert (await next_event(closed))["reason"] == "left"
        assert seat.media is None and seat.published == {}
        assert tone.readyState == "ended"
        assert session.pc.connectionState == "closed"
        assert (await next_event(removed))["user_id"] == LISTENER
        await eventually(
            lambda: stage.remote_tracks == {(SECOND, "microphone"): heard[SECOND]},
            "the host to keep only the second speaker",
        )
