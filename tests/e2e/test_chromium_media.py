"""Headless Chromium publishes camera and microphone to `podium serve`'s SFU; aiortc decodes them.

A real server process (its SFU offering only 127.0.0.1 candidates), Chromium
with fake capture devices running `tests/e2e/pages/publisher.js` on the
server's origin as the speaker, and the host as an aiortc peer that publishes
a tone and subscribes to everyone. Revoking `send-video` over HTTP makes the
page stop its camera: the browser's own stats show no more video packets sent
and the host receives none, while the microphone carries on.

When the page subscribes too, its m-lines are all sendonly, so the server must
offer it a new one, in the header extension ids and payload types Chromium
chose: the page accepts it, plays the host's tone and keeps publishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame, VideoFrame
from playwright.async_api import Browser

from tests.e2e.browser import BrowserPage, open_page
from tests.e2e.clients import Api, MediaClient, Watcher
from tests.server import ServerProcess
from tests.sfu.test_call import Tone, bounded

HOST, SPEAKER = "hana", "sami"
#: Chromium's fake camera (`--use-fake-device-for-media-stream`) captures 640x480 at 20 fps.
CAMERA_SIZE = (640, 480)
MEASURE_S = 3.0
MIN_FPS = 10.0
AUDIO_FRAMES_PER_S = 50  # 20 ms Opus frames
#: Louder than Opus noise on silence: the fake microphone's beep, once a second.
LOUD = 1000
FIRST_FRAME_S = 10.0


@dataclass
class Room:
    """A live audio room: the host's HTTP client and aiortc peer, the speaker's Chromium page."""

    cid: str
    path: str
    host: Api
    host_ws: Watcher
    host_peer: MediaClient
    page: BrowserPage


@contextlib.asynccontextmanager
async def live_room(tmp_path: Path, sqlite_url: str, browser: Browser) -> AsyncIterator[Room]:
    """The page publishes camera and microphone with `send-audio` and `send-video` granted."""
    call_id = f"chromium-{uuid.uuid4().hex[:12]}"
    cid, path = f"audio_room:{call_id}", f"/calls/audio_room/{call_id}"
    server = ServerProcess(
        tmp_path, sqlite_url, dev=True, extra_env={"PODIUM_MEDIA_LOOPBACK": "1"}
    ).start()
    apis: list[Api] = []
    host_ws: Watcher | None = None
    host_peer: MediaClient | None = None
    page: BrowserPage | None = None
    try:
        host, speaker = Api(server, HOST), Api(server, SPEAKER)
        apis += [host, speaker]
        await host.call("POST", path, {}, expect=201)
        await host.call("POST", f"{path}/go-live")
        await host.call("POST", f"{path}/join")
        await speaker.call("POST", f"{path}/join")
        asked = await speaker.call(
            "POST",
            f"{path}/permission-requests",
            {"permissions": ["send-audio", "send-video"]},
            expect=201,
        )
        await host.call("POST", f"{path}/permission-requests/{asked['request']['id']}/accept")

        # The host publishes a tone and has a free audio and video m-line for the speaker's.
        # It subscribes before the page publishes, so the first keyframe reaches it.
        host_ws = await Watcher(server, HOST).open()
        host_peer = MediaClient(host_ws, cid)
        host_peer.pc.addTransceiver(Tone(), direction="sendonly")
        host_peer.pc.addTransceiver("audio", direction="recvonly")
        host_peer.pc.addTransceiver("video", direction="recvonly")
        await host_peer.connect()
        await host_peer.send({"type": "sfu.publish", "source": "microphone"})
        await host_peer.expect("sfu.publish_ok")
        await host_peer.send({"type": "sfu.subscribe", "user_ids": "all"})

        page = await open_page(browser, server.url)
        await page.goto(
            "publisher.html", urlencode({"token": server.token(SPEAKER), "call_cid": cid})
        )
        await page.until(
            "window.publisher.error !== null || window.publisher.published.length === 2"
            " && window.publisher.connection === 'connected'"
        )
        status = await page.page.evaluate("window.publisher")
        assert status["state"] == "publishing", status["error"]
        assert sorted(status["published"]) == ["camera", "microphone"]
        # Loopback only, as Chromium itself reports it.
        remote_candidates = await page.page.evaluate("window.publisher.remoteCandidates()")
        assert remote_candidates and all(" 127.0.0.1 " in c for c in remote_candidates)
        assert await page.page.evaluate("window.publisher.selectedPair()") == {
            "local": "127.0.0.1",
            "remote": "127.0.0.1",
        }
        yield Room(cid, path, host, host_ws, host_peer, page)
    except BaseException:
        # Printed output is shown with the failure: what each side saw.
        print("host frames:", host_ws.types() if host_ws else None)
        print("server log:", server.log())
        if page is not None:
            print("page errors:", *page.errors, sep="\n")
            with contextlib.suppress(Exception):
                print("page:", await page.page.evaluate("JSON.stringify(window.publisher)"))
        raise
    finally:
        if page is not None:
            await page.close()
        if host_peer is not None:
            await host_peer.close()
        if host_ws is not None:
            await host_ws.close()
        for api in apis:
            await api.aclose()
        server.stop()


async def measure(track: MediaStreamTrack, kind: type[Any]) -> list[Any]:
    """Frames decoded in `MEASURE_S` after the first one (which may wait for a keyframe)."""
    first = await asyncio.wait_for(track.recv(), FIRST_FRAME_S)
    assert isinstance(first, kind), first
    frames = []
    deadline = time.monotonic() + MEASURE_S
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            frame = await asyncio.wait_for(track.recv(), remaining)
        except TimeoutError:
            break
        frames.append(frame)
    return frames


def peak(frame: AudioFrame) -> int:
    assert frame.format.name == "s16", frame.format.name
    # The plane's buffer is padded beyond the frame's samples.
    samples = array("h", bytes(frame.planes[0]))[: frame.samples * len(frame.layout.channels)]
    return max(abs(s) for s in samples)


async def host_received(pc: Any) -> dict[str, int]:
    """The host's inbound-rtp packetsReceived per kind."""
    report = await bounded(pc.getStats())
    totals = {"audio": 0, "video": 0}
    for stats in report.values():
        if stats.type == "inbound-rtp":
            totals[stats.kind] += stats.packetsReceived
    return totals


async def page_stats(page: BrowserPage) -> dict[str, Any]:
    """Chromium's own counters: packets sent and received per kind, decoded audio and its energy."""
    stats: dict[str, Any] = await page.page.evaluate("window.publisher.rtpStats()")
    return stats


async def test_chromium_publishes_camera_and_microphone_until_send_video_is_revoked(
    tmp_path: Path, sqlite_url: str, chromium: Browser
) -> None:
    async with live_room(tmp_path, sqlite_url, chromium) as room:
        page = room.page
        tracks = await room.host_ws.wait_for(
            lambda f: (
                f["type"] == "sfu.tracks" and len(f["tracks"]) == 2 and f["call_cid"] == room.cid
            )
        )
        assert sorted((t["user_id"], t["source"]) for t in tracks["tracks"]) == [
            (SPEAKER, "camera"),
            (SPEAKER, "microphone"),
        ]
        received = {}
        for _ in range(2):
            track = await bounded(room.host_peer.tracks.get())
            received[track.kind] = track
        video, audio = await asyncio.gather(
            measure(received["video"], VideoFrame), measure(received["audio"], AudioFrame)
        )
        sizes = {(f.width, f.height) for f in video}
        loud = sum(peak(f) > LOUD for f in audio)
        print(f"host decoded {len(video) / MEASURE_S:.1f} fps {sizes}, {len(audio)} audio frames")
        assert sizes == {CAMERA_SIZE}
        assert len(video) >= MIN_FPS * MEASURE_S, f"{len(video)} video frames in {MEASURE_S} s"
        assert len(audio) >= 0.8 * AUDIO_FRAMES_PER_S * MEASURE_S, f"{len(audio)} audio frames"
        assert loud > 0, "only silence from Chromium's fake microphone"
        await page.screenshot("chromium-publisher")

        await room.host.call(
            "POST", f"{room.path}/user-permissions", {"user_id": SPEAKER, "revoke": ["send-video"]}
        )
        await page.until("window.publisher.stopped.length > 0")
        assert await page.page.evaluate("window.publisher.stopped") == [
            {"source": "camera", "reason": "revoked", "readyState": "ended"}
        ]
        assert await page.page.evaluate("window.publisher.trackState('camera')") == "ended"
        assert await page.page.evaluate("window.publisher.trackState('microphone')") == "live"
        await asyncio.sleep(0.3)  # packets already on their way
        before, host_before = await page_stats(page), await host_received(room.host_peer.pc)
        await asyncio.sleep(1.0)
        after, host_after = await page_stats(page), await host_received(room.host_peer.pc)
        assert after["sent"]["video"] == before["sent"]["video"], "Chromium still sends video"
        assert host_after["video"] == host_before["video"], "the host still receives video"
        assert after["sent"]["audio"] > before["sent"]["audio"], "the microphone stopped too"
        assert host_after["audio"] > host_before["audio"], "the microphone is not forwarded"
        page.assert_no_errors()


async def test_chromium_answers_the_servers_offer_and_plays_the_hosts_tone(
    tmp_path: Path, sqlite_url: str, chromium: Browser
) -> None:
    async with live_room(tmp_path, sqlite_url, chromium) as room:
        page = room.page
        sending = await page.page.evaluate("window.publisher.sendCodecs()")
        assert {k: mime for k, (_, mime) in sending.items()} == {
            "audio": "audio/opus",
            "video": "video/VP8",
        }, sending
        # The page's m-lines are all sendonly: the server must offer it one for the tone.
        await page.page.evaluate("window.publisher.subscribe('all')")
        await page.until(
            "window.publisher.error !== null"
            " || window.publisher.rtpStats().then((stats) => stats.samples > 0)"
        )
        status = await page.page.evaluate("window.publisher")
        assert status["error"] is None, status["error"]
        assert status["serverOffers"] == 1
        assert status["remoteTracks"] == ["audio"]
        assert [(t["user_id"], t["source"]) for t in status["tracks"]] == [(HOST, "microphone")]
        # Renegotiating must not disturb what the page publishes (same payload types and ids).
        assert await page.page.evaluate("window.publisher.sendCodecs()") == sending
        before, host_before = await page_stats(page), await host_received(room.host_peer.pc)
        await asyncio.sleep(0.5)
        after, host_after = await page_stats(page), await host_received(room.host_peer.pc)
        assert after["received"]["audio"] > before["received"]["audio"], "the tone stopped"
        energy = after["energy"] - before["energy"]
        print(f"the page decoded audio energy {energy:.4f} in 0.5 s")
        # A 440 Hz sine at a third of full scale is ~0.05 per second; silence ~1e-6.
        assert energy > 0.005, "the page plays only silence"
        assert host_after["audio"] > host_before["audio"], "the page's microphone stopped"
        assert host_after["video"] > host_before["video"], "the page's camera stopped"
        page.assert_no_errors()
