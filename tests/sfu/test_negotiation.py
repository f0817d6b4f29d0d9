"""Negotiated parameters and aiortc's state in the session's numbers (127.0.0.1)."""

from __future__ import annotations

import pytest
from aiortc import RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

from podium.rtc import peer_connection
from podium.sfu.negotiation import _negotiated, adopt_answer, renumbered
from podium.sfu.sdp import Numbering
from podium.sfu.send import (
    IdleTrack,
)
from tests.sfu.test_receive import bounded, close_all
from tests.sfu.test_sdp import (
    ABS_SEND_TIME,
    AUDIO_LEVEL,
    CHROMIUM_OFFER,
    MID,
    codecs,
    extensions,
)


def test_negotiated_payload_type_lookup() -> None:
    params = RTCRtpParameters(
        codecs=[RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111)]
    )
    negotiated = _negotiated(params)
    assert negotiated.payload_type("AUDIO/OPUS") == 111
    with pytest.raises(LookupError):
        negotiated.payload_type("video/VP8")


def _numbers(transceiver: RTCRtpTransceiver) -> tuple[list[int | None], dict[str, int]]:
    """The payload types and header extension ids aiortc will start the transceiver with."""
    return (
        [c.payloadType for c in transceiver._codecs],
        {e.uri: e.id for e in transceiver._headerExtensions},
    )


async def test_renumbered_offer_and_aiortcs_own_state_use_the_clients_numbers() -> None:
    server = peer_connection(loopback_only=True)
    client = peer_connection(loopback_only=True)
    try:
        audio = server.addTransceiver(IdleTrack("audio"), direction="sendonly")
        video = server.addTransceiver(IdleTrack("video"), direction="sendonly")
        numbering = Numbering()
        numbering.learn(CHROMIUM_OFFER)
        offer = renumbered(server, await server.createOffer(), numbering)
        chromium_audio = ([111, 9, 0, 8], {MID: 4, AUDIO_LEVEL: 1})
        chromium_video = ([96, 97, 102, 103, 108, 109], {MID: 4, ABS_SEND_TIME: 2})
        assert (_numbers(audio), _numbers(video)) == (chromium_audio, chromium_video)
        await bounded(server.setLocalDescription(offer))
        assert extensions(server.localDescription.sdp) == [chromium_audio[1], chromium_video[1]]
        assert [list(t) for t in codecs(server.localDescription.sdp)] == [
            chromium_audio[0],
            chromium_video[0],
        ]

        # aiortc as the client echoes the offer's numbers; the server keeps them.
        await bounded(client.setRemoteDescription(server.localDescription))
        await bounded(client.setLocalDescription(await client.createAnswer()))
        await bounded(server.setRemoteDescription(client.localDescription))
        adopt_answer(server)
        assert (_numbers(audio), _numbers(video)) == (chromium_audio, chromium_video)
    finally:
        await close_all(server, client)


@pytest.mark.parametrize("conforming", [True, False])
async def test_adopt_answer_keeps_a_payload_type_aiortc_would_not(conforming: bool) -> None:
    """A client numbering Opus 63: aiortc answers 96 (non-conforming), Chromium would echo 63."""
    server = peer_connection(loopback_only=True)
    client = peer_connection(loopback_only=True)
    try:
        audio = server.addTransceiver(IdleTrack("audio"), direction="sendonly")
        numbering = Numbering()
        numbering.learn("m=audio 9 UDP/TLS/RTP/SAVPF 63\na=rtpmap:63 opus/48000/2\n")
        offer = renumbered(server, await server.createOffer(), numbering)
        await bounded(server.setLocalDescription(offer))
        assert _numbers(audio)[0] == [63, 9, 0, 8]

        await bounded(client.setRemoteDescription(server.localDescription))
        await bounded(client.setLocalDescription(await client.createAnswer()))
        answer = client.localDescription.sdp
        assert "a=rtpmap:96 opus/48000/2" in answer  # aiortc keeps its own below 96
        if conforming:
            answer = answer.replace("SAVPF 96 ", "SAVPF 63 ").replace("rtpmap:96 ", "rtpmap:63 ")
        await bounded(server.setRemoteDescription(RTCSessionDescription(answer, "answer")))
        assert _numbers(audio)[0] == [96, 9, 0, 8]  # what aiortc makes of either answer
        adopt_answer(server)
        assert _numbers(audio)[0] == ([63, 9, 0, 8] if conforming else [96, 9, 0, 8])
    finally:
        await close_all(server, client)
