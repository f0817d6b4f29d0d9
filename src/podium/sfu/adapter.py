"""The one module that touches aiortc's private internals (aiortc is pinned to 1.16.0).

The SFU forwards RTP without decoding: incoming packets are taken from each
receiver before aiortc decodes them, and outgoing packets are written straight
to a sender's DTLS transport. Every private attribute this needs is listed in
`REQUIRED_HOOKS`; `check_hooks()` fails loudly when one disappears, and a test
calls it, so upgrading aiortc cannot silently break forwarding.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import aioice.ice
import aiortc
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
    clock,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.rtp import AnyRtcpPacket, RtcpPsfbPacket, RtcpRtpfbPacket, RtpPacket
from av.frame import Frame

from podium.sfu.rtcp import Rtcp, parse_rtcp
from podium.sfu.rtp import RtpHeaderView

logger = logging.getLogger(__name__)

PINNED_AIORTC_VERSION: Final = "1.16.0"
LOOPBACK_ADDRESS: Final = "127.0.0.1"

#: (owner, attribute) pairs used below. Name-mangled instance attributes that are
#: only assigned in `__init__` are looked up among the names its code uses.
REQUIRED_HOOKS: Final[tuple[tuple[object, str], ...]] = (
    (aioice.ice, "get_host_addresses"),
    (RTCRtpReceiver, "receive"),
    (RTCRtpReceiver, "_handle_rtp_packet"),
    (RTCRtpReceiver, "_RTCRtpReceiver__stop_decoder"),
    (RTCRtpReceiver, "_RTCRtpReceiver__decoder_thread"),
    (RTCRtpReceiver, "_RTCRtpReceiver__started"),
    (RTCRtpReceiver, "_RTCRtpReceiver__codecs"),
    (RTCRtpSender, "send"),
    (RTCRtpSender, "_handle_rtcp_packet"),
    (RTCRtpSender, "_ssrc"),
    (RTCRtpSender, "_RTCRtpSender__ntp_timestamp"),
    (RTCRtpSender, "_RTCRtpSender__rtp_timestamp"),
    (RTCRtpSender, "_RTCRtpSender__octet_count"),
    (RTCRtpSender, "_RTCRtpSender__packet_count"),
    (RTCDtlsTransport, "_send_rtp"),
)

_NEGOTIATED_ATTR: Final = "_podium_parameters"
_loopback_only: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "podium_loopback_only", default=False
)
_original_get_host_addresses: Callable[[bool, bool], list[str]] | None = None


def _hook_present(owner: object, name: str) -> bool:
    if hasattr(owner, name):
        return True
    init = getattr(owner, "__init__", None)
    code = getattr(init, "__code__", None)
    return code is not None and name in code.co_names


def check_hooks() -> None:
    """Raise `RuntimeError` naming every missing hook, or if aiortc is not the pinned version."""
    missing = [
        f"{getattr(owner, '__qualname__', getattr(owner, '__name__', owner))}.{name}"
        for owner, name in REQUIRED_HOOKS
        if not _hook_present(owner, name)
    ]
    installed = aiortc.__version__
    if missing or installed != PINNED_AIORTC_VERSION:
        raise RuntimeError(
            f"podium.sfu.adapter needs aiortc=={PINNED_AIORTC_VERSION} "
            f"(installed: {installed}); missing private hooks: {', '.join(missing) or 'none'}"
        )


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _loopback_only.get():
        return [LOOPBACK_ADDRESS] if use_ipv4 else []
    assert _original_get_host_addresses is not None
    return _original_get_host_addresses(use_ipv4, use_ipv6)


def _install_host_address_hook() -> None:
    global _original_get_host_addresses
    if _original_get_host_addresses is None:
        _original_get_host_addresses = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _get_host_addresses


def peer_connection(
    ice_servers: list[RTCIceServer] | None = None, *, loopback_only: bool = False
) -> RTCPeerConnection:
    """An `RTCPeerConnection` with an explicit configuration: no ICE servers by default.

    aiortc's own default contacts a public STUN server; this never does unless
    `ice_servers` says so. aioice never offers 127.0.0.1; with `loopback_only`
    (off by default: tests, benchmarks, same-host setups) this connection's host
    candidates are 127.0.0.1 and nothing else. It works by running
    `setLocalDescription` (where aiortc gathers) with a context variable set that
    a wrapper around `aioice.ice.get_host_addresses` reads, so other connections
    are unaffected.
    """
    pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers or [])))
    if loopback_only:
        _install_host_address_hook()
        original = pc.setLocalDescription

        async def set_local_description(*args: Any, **kwargs: Any) -> None:
            token = _loopback_only.set(True)
            try:
                await original(*args, **kwargs)
            finally:
                _loopback_only.reset(token)

        setattr(pc, "setLocalDescription", set_local_description)  # noqa: B010
    return pc


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What one transceiver negotiated with its peer (payload types and ids are per peer)."""

    mid: str
    codecs: tuple[RTCRtpCodecParameters, ...]
    #: Header extension URI -> id.
    header_extensions: dict[str, int]
    #: Media SSRC -> RTX SSRC, where signalled.
    rtx_ssrcs: dict[int, int]

    def payload_type(self, mime_type: str) -> int:
        """The payload type of the first codec of `mime_type` (e.g. "audio/opus")."""
        for codec in self.codecs:
            if codec.mimeType.lower() == mime_type.lower() and codec.payloadType is not None:
                return codec.payloadType
        raise LookupError(f"{mime_type} was not negotiated")


def _negotiated(parameters: RTCRtpParameters) -> Negotiated:
    encodings = cast(list[Any], getattr(parameters, "encodings", []))
    return Negotiated(
        mid=parameters.muxId,
        codecs=tuple(parameters.codecs),
        header_extensions={ext.uri: ext.id for ext in parameters.headerExtensions},
        rtx_ssrcs={e.ssrc: e.rtx.ssrc for e in encodings if e.rtx is not None},
    )


def _capture_parameters(
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


def decoder_running(receiver: RTCRtpReceiver) -> bool:
    """Whether aiortc's decoder thread for `receiver` exists (it should not once tapped)."""
    thread = getattr(receiver, "_RTCRtpReceiver__decoder_thread", None)
    return thread is not None and bool(thread.is_alive())


def tap_receiver(receiver: RTCRtpReceiver, on_packet: Callable[[RtpPacket, int], None]) -> None:
    """Deliver every parsed incoming RTP packet, and its arrival time in ms, undecoded.

    Call it before negotiation completes (e.g. in the connection's "track"
    handler). The instance's `_handle_rtp_packet` (where `RtpRouter` delivers
    parsed packets) is replaced by one calling `on_packet` then aiortc's original,
    which keeps receiver reports, NACK generation and REMB towards the publisher.

    Decoding: aiortc 1.16.0 starts the decoder thread unconditionally inside
    `receive()`, and `_handle_rtp_packet` only queues frames while
    `__decoder_thread` is set. So `receive` is wrapped on the instance and, right
    after it returns, aiortc's own `__stop_decoder()` (what RTCP BYE and
    disconnect use) ends the idle thread and clears the attribute: no frame is
    ever queued or decoded. The receiver's track then ends (its `recv()` raises
    `MediaStreamError`); depacketising and the jitter buffer still run (cheap,
    and they produce aiortc's PLIs).
    """
    original = receiver._handle_rtp_packet

    async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
        try:
            on_packet(packet, arrival_time_ms)
        except Exception:
            logger.exception("RTP tap callback failed")
        await original(packet, arrival_time_ms=arrival_time_ms)

    def stop_decoder() -> None:
        cast(Callable[[], None], getattr(receiver, "_RTCRtpReceiver__stop_decoder"))()  # noqa: B009

    _capture_parameters(receiver, "receive", after=stop_decoder)
    setattr(receiver, "_handle_rtp_packet", handle_rtp_packet)  # noqa: B010


class IdleTrack(MediaStreamTrack):
    """A track whose `recv()` never returns: aiortc's send loop for it stays idle."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Frame:
        never: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        return await never


class RawSender:
    """Send already rewritten RTP through an `RTCRtpSender`, bypassing its encoder.

    The sender's track must be an `IdleTrack` (added with `addTrack` before
    negotiation). Packets go to the DTLS transport's `_send_rtp` (SRTP protect and
    send), and the sender's packet/octet counters and last NTP/RTP timestamps are
    updated as aiortc's own send loop does, so its RTCP sender reports stay right.
    RTCP feedback routed to this sender (PLI, FIR, NACK, REMB) is parsed with
    `podium.sfu.rtcp.parse_rtcp` and given to `on_feedback`; aiortc's own handler
    still runs (RTT and stats; its NACK/PLI handling finds nothing to do).
    """

    def __init__(
        self, sender: RTCRtpSender, on_feedback: Callable[[list[Rtcp]], None] | None = None
    ) -> None:
        self.sender = sender
        self.on_feedback = on_feedback
        #: Set once negotiation started the sender (`negotiated_codecs` then works).
        self.ready = asyncio.Event()
        _capture_parameters(sender, "send", after=self.ready.set)
        original = sender._handle_rtcp_packet

        async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
            if self.on_feedback is not None and isinstance(
                packet, RtcpPsfbPacket | RtcpRtpfbPacket
            ):
                try:
                    self.on_feedback(parse_rtcp(bytes(packet)))
                except Exception:
                    logger.exception("RTCP feedback callback failed")
            await original(packet)

        setattr(sender, "_handle_rtcp_packet", handle_rtcp_packet)  # noqa: B010

    @property
    def ssrc(self) -> int:
        """The SSRC aiortc signalled for this sender: rewrite packets to it."""
        return int(self.sender._ssrc)

    async def send(self, view: RtpHeaderView) -> bool:
        """Send one rewritten packet; False (dropped) if the transport is not connected."""
        try:
            await self.sender.transport._send_rtp(bytes(view.buf))
        except ConnectionError:
            return False
        sender = cast(Any, self.sender)
        sender._RTCRtpSender__ntp_timestamp = clock.current_ntp_time()
        sender._RTCRtpSender__rtp_timestamp = view.timestamp
        sender._RTCRtpSender__octet_count += view.payload_size
        sender._RTCRtpSender__packet_count += 1
        return True
