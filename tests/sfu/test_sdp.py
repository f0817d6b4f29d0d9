"""`podium.sfu.sdp`: the server's SDP keeps the client's numbers (read back with aiortc's parser).

The fixed texts are real (ICE, DTLS and most of the RTCP feedback lines cut):
headless Chromium 156's offer publishing microphone and camera, aiortc
1.16.0's answer to it, and aiortc's own offer once it added an audio and a
video m-line to send on.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.sdp import SessionDescription
from hypothesis import given
from hypothesis import strategies as st

from podium.sfu.sdp import EXTENSION_IDS, FREE_PAYLOAD_TYPES, CodecKey, Numbering, renumber
from tests.sfu import PROPERTY_SETTINGS

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"

CHROMIUM_OFFER = """\
v=0
o=- 6848324815627826788 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendonly
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 107 108 109 114 115 116 117 39 40 45 46 98 99 100 \
101 118 119 120
a=mid:1
a=extmap:14 urn:ietf:params:rtp-hdrext:toffset
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:13 urn:3gpp:video-orientation
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay
a=extmap:6 http://www.webrtc.org/experiments/rtp-hdrext/video-content-type
a=extmap:7 http://www.webrtc.org/experiments/rtp-hdrext/video-timing
a=extmap:8 http://www.webrtc.org/experiments/rtp-hdrext/color-space
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
a=sendonly
a=rtcp-mux
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtcp-fb:96 transport-cc
a=rtcp-fb:96 ccm fir
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:103 rtx/90000
a=fmtp:103 apt=102
a=rtpmap:104 H264/90000
a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f
a=rtpmap:107 rtx/90000
a=fmtp:107 apt=104
a=rtpmap:108 H264/90000
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=rtpmap:109 rtx/90000
a=fmtp:109 apt=108
a=rtpmap:114 H264/90000
a=fmtp:114 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f
a=rtpmap:115 rtx/90000
a=fmtp:115 apt=114
a=rtpmap:116 H264/90000
a=fmtp:116 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f
a=rtpmap:117 rtx/90000
a=fmtp:117 apt=116
a=rtpmap:39 H264/90000
a=fmtp:39 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=4d001f
a=rtpmap:40 rtx/90000
a=fmtp:40 apt=39
a=rtpmap:45 AV1/90000
a=fmtp:45 level-idx=5;profile=0;tier=0
a=rtpmap:46 rtx/90000
a=fmtp:46 apt=45
a=rtpmap:98 VP9/90000
a=fmtp:98 profile-id=0
a=rtpmap:99 rtx/90000
a=fmtp:99 apt=98
a=rtpmap:100 VP9/90000
a=fmtp:100 profile-id=2
a=rtpmap:101 rtx/90000
a=fmtp:101 apt=100
a=rtpmap:118 red/90000
a=rtpmap:119 rtx/90000
a=fmtp:119 apt=118
a=rtpmap:120 ulpfec/90000
"""

AIORTC_ANSWER = """\
v=0
o=- 4004521197 4004521197 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE 0 1
m=audio 50568 UDP/TLS/RTP/SAVPF 111 9 0 8
a=recvonly
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=mid:0
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
m=video 50568 UDP/TLS/RTP/SAVPF 96 97 102 103 108 109
a=recvonly
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=mid:1
a=rtcp-mux
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtcp-fb:96 goog-remb
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=rtcp-fb:102 nack
a=rtcp-fb:102 nack pli
a=rtcp-fb:102 goog-remb
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:103 rtx/90000
a=fmtp:103 apt=102
a=rtpmap:108 H264/90000
a=rtcp-fb:108 nack
a=rtcp-fb:108 nack pli
a=rtcp-fb:108 goog-remb
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=rtpmap:109 rtx/90000
a=fmtp:109 apt=108
"""

_AIORTC_AUDIO = """\
m=audio 50568 UDP/TLS/RTP/SAVPF 96 9 0 8
a={direction}
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=mid:{mid}
a=rtcp-mux
a=rtpmap:96 opus/48000/2
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
"""
_AIORTC_VIDEO = """\
m=video 50568 UDP/TLS/RTP/SAVPF 97 98 99 100 101 102
a={direction}
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=mid:{mid}
a=rtcp-mux
a=ssrc-group:FID 2962002148 3924212350
a=rtpmap:97 VP8/90000
a=rtcp-fb:97 nack
a=rtcp-fb:97 nack pli
a=rtcp-fb:97 goog-remb
a=rtpmap:98 rtx/90000
a=fmtp:98 apt=97
a=rtpmap:99 H264/90000
a=rtcp-fb:99 nack
a=rtcp-fb:99 nack pli
a=rtcp-fb:99 goog-remb
a=fmtp:99 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:100 rtx/90000
a=fmtp:100 apt=99
a=rtpmap:101 H264/90000
a=rtcp-fb:101 nack
a=rtcp-fb:101 nack pli
a=rtcp-fb:101 goog-remb
a=fmtp:101 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=rtpmap:102 rtx/90000
a=fmtp:102 apt=101
"""
AIORTC_REOFFER = (
    "v=0\no=- 4004521197 4004521197 IN IP4 0.0.0.0\ns=-\nt=0 0\na=group:BUNDLE 0 1 2 3\n"
    + _AIORTC_AUDIO.format(direction="recvonly", mid=0)
    + _AIORTC_VIDEO.format(direction="recvonly", mid=1)
    + _AIORTC_AUDIO.format(direction="sendonly", mid=2)
    + _AIORTC_VIDEO.format(direction="sendonly", mid=3)
).replace("\n", "\r\n")


def session_of(*sdps: str) -> Numbering:
    numbering = Numbering()
    for sdp in sdps:
        numbering.learn(sdp)
    return numbering


@dataclass(frozen=True)
class Codec:
    """A codec as aiortc parsed it, numbers left out, to compare SDPs (RTX: what it repairs)."""

    mime: str
    clock_rate: int
    parameters: tuple[tuple[str, str], ...]
    repairs: Codec | None = None


def codecs(sdp: str) -> list[dict[int, Codec]]:
    """Per m-line, payload type -> codec, from aiortc's own parser."""
    tables = []
    for media in SessionDescription.parse(sdp).media:
        table: dict[int, Codec] = {}
        for codec in sorted(media.rtp.codecs, key=lambda c: c.mimeType.endswith("/rtx")):
            apt = codec.parameters.get("apt")
            parameters = tuple(
                sorted((k, str(v)) for k, v in codec.parameters.items() if k != "apt")
            )
            assert codec.payloadType is not None
            table[codec.payloadType] = Codec(
                codec.mimeType.lower(),
                codec.clockRate,
                parameters,
                table[apt] if isinstance(apt, int) else None,
            )
        assert media.fmt == [c.payloadType for c in media.rtp.codecs]
        tables.append({pt: table[pt] for pt in media.fmt})
    return tables


def extensions(sdp: str) -> list[dict[str, int]]:
    return [
        {e.uri: e.id for e in media.rtp.headerExtensions}
        for media in SessionDescription.parse(sdp).media
    ]


def payload_type_of(sdp: str, mime: str, **parameters: str) -> set[int]:
    """The payload types `mime` (with these format parameters) has, over all m-lines."""
    return {
        pt
        for table in codecs(sdp)
        for pt, codec in table.items()
        if codec.mime == mime and set(parameters.items()) <= set(codec.parameters)
    }


def test_the_servers_offer_to_chromium_uses_chromiums_numbers_everywhere() -> None:
    offer = renumber(AIORTC_REOFFER, session_of(CHROMIUM_OFFER, AIORTC_ANSWER))
    assert extensions(offer) == [
        {MID: 4, AUDIO_LEVEL: 1},
        {MID: 4, ABS_SEND_TIME: 2},
        {MID: 4, AUDIO_LEVEL: 1},
        {MID: 4, ABS_SEND_TIME: 2},
    ]
    audio, video = codecs(offer)[2:]
    assert list(audio) == [111, 9, 0, 8]
    assert list(video) == [96, 97, 102, 103, 108, 109]
    assert video[97].repairs == video[96] and video[96].mime == "video/vp8"
    assert ("profile-level-id", "42e01f") in video[108].parameters
    assert video[109].repairs == video[108]
    # Everything else is as aiortc wrote it, line for line, with its line endings.
    assert offer.count("\r\n") == AIORTC_REOFFER.count("\r\n")
    assert "a=rtcp-fb:96 nack pli\r\n" in offer and "a=fmtp:103 apt=102\r\n" in offer
    assert "a=ssrc-group:FID 2962002148 3924212350" in offer


def test_aiortcs_answer_to_chromium_already_has_chromiums_numbers() -> None:
    assert renumber(AIORTC_ANSWER, session_of(CHROMIUM_OFFER)) == AIORTC_ANSWER


def test_with_nothing_learned_an_offer_is_unchanged() -> None:
    assert renumber(AIORTC_REOFFER, Numbering()) == AIORTC_REOFFER


def test_new_extensions_and_codecs_keep_free_numbers_and_move_off_used_ones() -> None:
    # The client uses 1 and 3 for something else and offered neither opus nor VP8's RTX.
    client = """\
m=audio 9 UDP/TLS/RTP/SAVPF 96 0
a=extmap:1 urn:example:one
a=extmap:3 urn:example:three
a=rtpmap:96 L16/48000/2
a=rtpmap:0 PCMU/8000
m=video 9 UDP/TLS/RTP/SAVPF 97
a=rtpmap:97 VP8/90000
"""
    offer = renumber(AIORTC_REOFFER, session_of(client))
    # mid and abs-send-time move off 1 and 3, to ids nothing in the offer has; 2 stays.
    assert extensions(offer)[0] == {MID: 4, AUDIO_LEVEL: 2}
    assert extensions(offer)[1] == {MID: 4, ABS_SEND_TIME: 5}
    audio, video = codecs(offer)[:2]
    # Opus moves off the client's 96 (L16) to a number none of aiortc's codecs has.
    assert list(audio) == [103, 9, 0, 8]
    # VP8 takes the client's 97; everything else keeps aiortc's numbers.
    assert list(video) == [97, 98, 99, 100, 101, 102]
    assert video[97].mime == "video/vp8" and video[98].repairs == video[97]
    assert len(set(audio) | set(video)) == len(audio) + len(video)


def test_without_free_numbers_extensions_and_codecs_are_left_out() -> None:
    extmaps = "".join(f"a=extmap:{i} urn:example:{i}\n" for i in EXTENSION_IDS)
    fillers = "".join(f"a=rtpmap:{pt} L16/{8000 + pt}\n" for pt in FREE_PAYLOAD_TYPES)
    formats = " ".join(str(pt) for pt in FREE_PAYLOAD_TYPES)
    # Every id and payload type is taken except the client's opus (111) and VP8 (96).
    client = f"m=audio 9 UDP/TLS/RTP/SAVPF {formats}\n{extmaps}{fillers}".replace(
        "a=rtpmap:111 L16/8111", "a=rtpmap:111 opus/48000/2"
    ).replace("a=rtpmap:96 L16/8096", "a=rtpmap:96 VP8/90000")
    offer = renumber(AIORTC_REOFFER, session_of(client))
    assert "a=extmap" not in offer
    assert [list(table) for table in codecs(offer)] == [[111, 9, 0, 8], [96]] * 2
    assert "m=video 50568 UDP/TLS/RTP/SAVPF 96\r\n" in offer
    assert "apt=" not in offer and "H264" not in offer


def test_learning_keeps_the_first_number_of_a_codec_and_of_an_extension() -> None:
    numbering = session_of(
        "m=audio 9 RTP/SAVPF 111\na=extmap:4 urn:x\na=rtpmap:111 opus/48000/2\n",
        "m=audio 9 RTP/SAVPF 96 111\na=extmap:5 urn:x\na=extmap:4 urn:y\n"
        "a=rtpmap:96 opus/48000/2\na=rtpmap:111 PCMU/8000\n",
    )
    assert numbering.extensions == {"urn:x": 4}
    assert numbering.used_extension_ids == {4, 5}
    assert numbering.payload_types == {CodecKey("opus", 48000): 111}
    assert numbering.used_payload_types == {96, 111}


def test_codecs_are_told_apart_by_profile_and_rtx_by_what_it_repairs() -> None:
    numbering = session_of(CHROMIUM_OFFER)
    vp8 = CodecKey("vp8", 90000)
    h264 = CodecKey("h264", 90000, ("1", "constrained_baseline"))
    assert numbering.payload_types[vp8] == 96
    assert numbering.payload_types[CodecKey("rtx", 90000, repairs=vp8)] == 97
    assert numbering.payload_types[h264] == 108
    assert numbering.payload_types[CodecKey("h264", 90000, ("0", "main"))] == 39
    assert numbering.payload_types[CodecKey("vp9", 90000, ("2",))] == 100
    # A level other than the client's (here 3.1 -> 5.1) is the same codec, as for aiortc.
    offer = renumber(AIORTC_REOFFER.replace("42e01f", "42e033"), numbering)
    assert payload_type_of(offer, "video/h264", **{"profile-level-id": "42e033"}) == {108}


# Properties: a client numbering drawn at random, aiortc's offer renumbered into it.

_AUDIO_CODECS = [("opus/48000/2", ""), ("L16/48000/2", ""), ("telephone-event/8000", "")]
_VIDEO_CODECS = [
    ("VP8/90000", ""),
    ("H264/90000", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"),
    ("H264/90000", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
    ("H264/90000", "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f"),
    ("VP9/90000", "profile-id=0"),
    ("AV1/90000", "profile=0"),
]
_URIS = [MID, AUDIO_LEVEL, ABS_SEND_TIME, *(f"urn:example:{n}" for n in range(12))]


@st.composite
def client_offers(draw: st.DrawFn) -> str:
    """A client's offer: some of aiortc's codecs and extensions, others, numbered at random."""
    audio = draw(st.lists(st.sampled_from(_AUDIO_CODECS), min_size=1, unique=True))
    video = draw(st.lists(st.sampled_from(_VIDEO_CODECS), min_size=1, unique=True))
    rtx = draw(st.lists(st.booleans(), min_size=len(video), max_size=len(video)))
    count = len(audio) + len(video) + sum(rtx)
    numbers = draw(st.permutations(FREE_PAYLOAD_TYPES))[:count]
    uris = draw(st.lists(st.sampled_from(_URIS), unique=True, max_size=len(EXTENSION_IDS)))
    ids = draw(st.permutations(EXTENSION_IDS))
    extmaps = [f"a=extmap:{i} {uri}" for i, uri in zip(ids, uris, strict=False)]
    split = draw(st.integers(0, len(extmaps)))
    pts = iter(numbers)
    sections = []
    for kind, chosen, with_rtx, ext in (
        ("audio", audio, [False] * len(audio), extmaps[:split]),
        ("video", video, rtx, extmaps[split:]),
    ):
        lines, formats = [*ext], []
        for (rtpmap, fmtp), repaired in zip(chosen, with_rtx, strict=True):
            pt = next(pts)
            formats.append(pt)
            lines.append(f"a=rtpmap:{pt} {rtpmap}")
            if fmtp:
                lines.append(f"a=fmtp:{pt} {fmtp}")
            if repaired:
                rtx_pt = next(pts)
                formats.append(rtx_pt)
                lines += [f"a=rtpmap:{rtx_pt} rtx/90000", f"a=fmtp:{rtx_pt} apt={pt}"]
        m_line = f"m={kind} 9 UDP/TLS/RTP/SAVPF {' '.join(map(str, formats))}"
        sections.append("\n".join([m_line, *lines]))
    return "v=0\n" + "\n".join(sections) + "\n"


@PROPERTY_SETTINGS
@given(client_offers())
def test_every_number_the_client_used_keeps_its_meaning(client: str) -> None:
    offer = renumber(AIORTC_REOFFER, session_of(client))
    mine, theirs = codecs(offer), codecs(client)
    # One meaning per payload type and per extension id across the session (BUNDLE).
    meaning: dict[int, Codec] = {}
    for table in [*theirs, *mine]:
        for pt, codec in table.items():
            assert meaning.setdefault(pt, codec) == codec, (pt, codec, meaning[pt])
    uri_of: dict[int, str] = {}
    for ids in [*extensions(client), *extensions(offer)]:
        for uri, ext_id in ids.items():
            assert uri_of.setdefault(ext_id, uri) == uri
            assert ext_id in EXTENSION_IDS
    # Every codec of aiortc's is still offered (enough numbers are free), with its RTX.
    assert [len(t) for t in mine] == [len(t) for t in codecs(AIORTC_REOFFER)]
    # Renumbering again in what is now the session's numbering changes nothing.
    assert renumber(offer, session_of(client, offer)) == offer


@PROPERTY_SETTINGS
@given(client_offers())
def test_codecs_and_extensions_the_client_has_keep_the_clients_numbers(client: str) -> None:
    offer = renumber(AIORTC_REOFFER, session_of(client))
    client_codecs = {codec: pt for table in codecs(client) for pt, codec in table.items()}
    for table in codecs(offer):
        for pt, codec in table.items():
            if codec in client_codecs:
                assert pt == client_codecs[codec]
    client_ids = {uri: i for ids in extensions(client) for uri, i in ids.items()}
    for ids in extensions(offer):
        for uri, ext_id in ids.items():
            assert ext_id == client_ids.get(uri, ext_id)
