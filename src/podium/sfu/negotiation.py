"""What each transceiver negotiated, and aiortc's negotiation state kept in the session's numbers.

aiortc hides the parameters its senders and receivers start with, and numbers
its offers (and some answers) from its own defaults. The SFU needs both right:
the forwarder rewrites payload types and header extension ids from one peer's
numbers to another's, and Chromium refuses an offer that moves an extension id.
So `send`/`receive` are wrapped to keep the parameters (`negotiated_codecs`),
and the SDP rewritten by `podium.sfu.sdp.renumber` is pushed back into each
transceiver's private `_codecs` and `_headerExtensions` (`renumbered`,
`adopt_answer`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from aiortc import (
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.sdp import MediaDescription, SessionDescription

from podium.sfu.forwarder import SinkParams
from podium.sfu.sdp import Numbering, renumber

_NEGOTIATED_ATTR: Final = "_podium_parameters"
_STREAM_NAMING_EXTENSIONS = frozenset(
    {
        "urn:ietf:params:rtp-hdrext:sdes:mid",
        "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
    }
)


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What one transceiver negotiated with its peer (payload types and ids are per peer)."""

    mid: str
    codecs: tuple[RTCRtpCodecParameters, ...]
    #: Header extension URI -> id.
    header_extensions: dict[str, int]
    #: Media SSRC -> RTX SSRC, where signalled.
    rtx_ssrcs: dict[int, int]
    #: The media SSRCs signalled in SDP, if any.
    ssrcs: tuple[int, ...] = ()

    def payload_type(self, mime_type: str) -> int:
        """The payload type of the first codec of `mime_type` (e.g. "audio/opus")."""
        for codec in self.codecs:
            if codec.mimeType.lower() == mime_type.lower() and codec.payloadType is not None:
                return codec.payloadType
        raise LookupError(f"{mime_type} was not negotiated")

    def rtx_payload_types(self) -> dict[int, int]:
        """RTX payload type -> the payload type it retransmits (its `apt`)."""
        rtx: dict[int, int] = {}
        for codec in self.codecs:
            apt = codec.parameters.get("apt")
            is_rtx = codec.mimeType.lower().endswith("/rtx")
            if is_rtx and codec.payloadType is not None and isinstance(apt, int):
                rtx[codec.payloadType] = apt
        return rtx


def _negotiated(parameters: RTCRtpParameters) -> Negotiated:
    encodings = cast(list[Any], getattr(parameters, "encodings", []))
    return Negotiated(
        mid=parameters.muxId,
        codecs=tuple(parameters.codecs),
        header_extensions={ext.uri: ext.id for ext in parameters.headerExtensions},
        rtx_ssrcs={e.ssrc: e.rtx.ssrc for e in encodings if e.rtx is not None},
        ssrcs=tuple(e.ssrc for e in encodings if e.ssrc is not None),
    )


def capture_parameters(
    target: RTCRtpReceiver | RTCRtpSender, method: str, after: Callable[[], None] | None = None
) -> None:
    """Wrap `receive`/`send` on the instance to keep the parameters aiortc passes it."""
    if getattr(target, f"_{type(target).__name__}__started", False):
        raise RuntimeError(f"{type(target).__name__}.{method}() already ran: hook it earlier")
    original = cast(Callable[[RTCRtpParameters], Awaitable[None]], getattr(target, method))

    async def wrapper(parameters: RTCRtpParameters) -> None:
        setattr(target, _NEGOTIATED_ATTR, _negotiated(parameters))
        await original(parameters)
        if after is not None:
            after()

    setattr(target, method, wrapper)


def negotiated_codecs(receiver_or_sender: RTCRtpReceiver | RTCRtpSender) -> Negotiated:
    """The parameters negotiated for a tapped receiver or a `RawSender`'s sender."""
    negotiated = getattr(receiver_or_sender, _NEGOTIATED_ATTR, None)
    if not isinstance(negotiated, Negotiated):
        raise LookupError("not negotiated yet (or not hooked by tap_receiver/RawSender)")
    return negotiated


def primary_codec(receiver: RTCRtpReceiver) -> tuple[int, str, int]:
    """The payload type, MIME type and clock rate the publisher sends on (not RTX)."""
    for codec in negotiated_codecs(receiver).codecs:
        if not codec.mimeType.lower().endswith("/rtx") and codec.payloadType is not None:
            return codec.payloadType, codec.mimeType, codec.clockRate
    raise LookupError("no media codec negotiated")


def sink_params(receiver: RTCRtpReceiver, sender: RTCRtpSender, ssrc: int) -> SinkParams:
    """How to rewrite the packets `receiver` gets for `sender`, which sends on `ssrc`.

    Extensions naming the publisher's m-line or stream (mid, rid) would be
    wrong for the subscriber, whose stack may route by them: they are dropped,
    leaving the SSRC signalled in the subscriber's SDP to identify the stream.
    """
    _, mime, clock_rate = primary_codec(receiver)
    incoming = negotiated_codecs(receiver).header_extensions
    outgoing = negotiated_codecs(sender).header_extensions
    return SinkParams(
        ssrc=ssrc,
        payload_type=negotiated_codecs(sender).payload_type(mime),
        extension_ids={
            i: outgoing[uri]
            for uri, i in incoming.items()
            if uri in outgoing and uri not in _STREAM_NAMING_EXTENSIONS
        },
        clock_rate=clock_rate,
    )


def renumbered(
    pc: RTCPeerConnection, description: RTCSessionDescription, numbering: Numbering
) -> RTCSessionDescription:
    """`pc.createOffer()`'s or `createAnswer()`'s result in the session's numbers.

    Call it between creating the description and `setLocalDescription`. The SDP
    is rewritten with `podium.sfu.sdp.renumber`, and each transceiver's
    `_codecs` and `_headerExtensions` are set to its rewritten m-line's: aiortc
    builds the parameters its senders and receivers start with from those
    (`__localRtp`, `__remoteRtp`), and they configure the DTLS transport's
    header extension map and RTP router, which parse and route incoming packets.
    (`createOffer` resets them to aiortc's defaults; an answer keeps aiortc's
    own payload type for a codec the client numbered outside 96-127.)
    """
    sdp = renumber(description.sdp, numbering)
    parsed = SessionDescription.parse(sdp)
    for transceiver, media in _transceiver_media(pc, parsed):
        transceiver._codecs = media.rtp.codecs
        transceiver._headerExtensions = media.rtp.headerExtensions
    return RTCSessionDescription(sdp, description.type)


def adopt_answer(pc: RTCPeerConnection) -> None:
    """Right after `setRemoteDescription(answer)`: the transceivers use the answer's numbers.

    aiortc recomputes each transceiver's codecs from the answer but keeps its
    own default payload type for a codec answered outside 96-127, so its sender
    would not use the number the client expects. Where the answer's codecs are
    all ones the server's offer listed on that m-line (same payload types, as
    RFC 3264 asks of an answer), they and the answer's header extensions are
    used instead; any other answer is left to aiortc. It must run before the
    connection's `__connect` task (which `setRemoteDescription` schedules) gets
    to run: call it with no await in between.
    """
    offer = SessionDescription.parse(pc.localDescription.sdp)
    answer = SessionDescription.parse(pc.remoteDescription.sdp)
    offered = {m.rtp.muxId: m for m in offer.media}
    for transceiver, media in _transceiver_media(pc, answer):
        mine = offered.get(media.rtp.muxId)
        if mine is None or not media.rtp.codecs:
            continue
        payload_types = {c.payloadType for c in mine.rtp.codecs}
        if all(c.payloadType in payload_types for c in media.rtp.codecs):
            uris = {e.uri for e in mine.rtp.headerExtensions}
            transceiver._codecs = media.rtp.codecs
            transceiver._headerExtensions = [e for e in media.rtp.headerExtensions if e.uri in uris]


def _transceiver_media(
    pc: RTCPeerConnection, description: SessionDescription
) -> list[tuple[RTCRtpTransceiver, MediaDescription]]:
    """Each audio/video m-line with its transceiver, by m-line index as aiortc itself matches."""
    by_index = {t._get_mline_index(): t for t in pc.getTransceivers()}
    return [
        (by_index[i], media)
        for i, media in enumerate(description.media)
        if media.kind in ("audio", "video") and i in by_index
    ]
