"""The one module that touches aiortc's private internals (aiortc is pinned to 1.16.0).

The SFU forwards RTP without decoding: incoming packets are taken, as the
decrypted bytes, from each DTLS transport before aiortc decodes them, and
outgoing packets are SRTP-protected (calling libsrtp through pylibsrtp's
binding, in a buffer the forwarder writes into) and written to the nominated
ICE pair's socket synchronously. Every private attribute this needs is listed
in `REQUIRED_HOOKS`; `check_hooks()` fails loudly when one disappears (or
aiortc, aioice or pylibsrtp is not the version this was written against), and
a test calls it, so upgrading any of them cannot silently break forwarding.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import logging
import os
import socket
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from struct import Struct
from typing import Any, Final, cast

import aioice
import aioice.ice
import aiortc
import pylibsrtp
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
    clock,
)
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
    is_rtcp,
    pack_remb_fci,
    unwrap_rtx,
)
from aiortc.sdp import MediaDescription, SessionDescription
from av.frame import Frame

from podium.sfu.rtcp import Rtcp, parse_rtcp
from podium.sfu.rtp import MAX_PACKET_SIZE
from podium.sfu.sdp import Numbering, renumber

logger = logging.getLogger(__name__)

PINNED_AIORTC_VERSION: Final = "1.16.0"
#: aiortc's ICE library; the send path reads its nominated candidate pair.
PINNED_AIOICE_VERSION: Final = "0.13.0"
#: aiortc's SRTP library; the send path calls its libsrtp binding directly.
PINNED_PYLIBSRTP_VERSION: Final = "1.0.0"
LOOPBACK_ADDRESS: Final = "127.0.0.1"

#: pylibsrtp's cffi binding of libsrtp (untyped).
_binding: Final[Any] = importlib.import_module("pylibsrtp._binding")

#: (owner, attribute) pairs used below. Name-mangled instance attributes that are
#: only assigned in `__init__` are looked up among the names its code uses.
REQUIRED_HOOKS: Final[tuple[tuple[object, str], ...]] = (
    (aioice.ice, "get_host_addresses"),
    (pylibsrtp, "SRTP_MAX_TRAILER_LEN"),
    (pylibsrtp.Session, "_srtp"),
    (_binding, "ffi"),
    (_binding.lib, "srtp_protect"),
    (aioice.ice.StunProtocol, "datagram_received"),
    (aioice.ice.StunProtocol, "receiver"),
    (aioice.ice.StunProtocol, "local_candidate"),
    (aioice.ice.Connection, "data_received"),
    (aioice.ice.Connection, "_queue"),
    (aioice.ice.Connection, "_nominated"),
    (aioice.ice.CandidatePair, "protocol"),
    (aioice.ice.CandidatePair, "local_candidate"),
    (aioice.ice.CandidatePair, "remote_addr"),
    (aioice.ice.StunProtocol, "transport"),
    (RTCRtpReceiver, "receive"),
    (RTCRtpReceiver, "_handle_rtp_packet"),
    (RTCRtpReceiver, "_send_rtcp_pli"),
    (RTCRtpReceiver, "_RTCRtpReceiver__stop_decoder"),
    (RTCRtpReceiver, "_RTCRtpReceiver__decoder_thread"),
    (RTCRtpReceiver, "_RTCRtpReceiver__started"),
    (RTCRtpReceiver, "_RTCRtpReceiver__codecs"),
    (RTCRtpReceiver, "_enabled"),
    (RTCRtpReceiver, "_send_rtcp"),
    (RTCRtpReceiver, "_send_rtcp_nack"),
    (RTCRtpReceiver, "_RTCRtpReceiver__remote_bitrate_estimator"),
    (RTCRtpReceiver, "_RTCRtpReceiver__rtcp_ssrc"),
    (RTCRtpReceiver, "_RTCRtpReceiver__active_ssrc"),
    (RTCRtpReceiver, "_RTCRtpReceiver__remote_streams"),
    (RTCRtpReceiver, "_RTCRtpReceiver__rtx_ssrc"),
    (RTCRtpReceiver, "_RTCRtpReceiver__nack_generator"),
    (RTCRtpSender, "send"),
    (RTCRtpSender, "_handle_rtcp_packet"),
    (RTCRtpSender, "_ssrc"),
    (RTCRtpSender, "_RTCRtpSender__ntp_timestamp"),
    (RTCRtpSender, "_RTCRtpSender__rtp_timestamp"),
    (RTCRtpSender, "_RTCRtpSender__octet_count"),
    (RTCRtpSender, "_RTCRtpSender__packet_count"),
    (RTCDtlsTransport, "_handle_rtp_data"),
    (RTCDtlsTransport, "_state"),
    (RTCDtlsTransport, "_tx_srtp"),
    (RTCDtlsTransport, "_rx_srtp"),
    (RTCDtlsTransport, "_handle_rtcp_data"),
    (RTCDtlsTransport, "_RTCDtlsTransport__rx_bytes"),
    (RTCDtlsTransport, "_RTCDtlsTransport__rx_packets"),
    (RTCDtlsTransport, "_RTCDtlsTransport__tx_bytes"),
    (RTCDtlsTransport, "_RTCDtlsTransport__tx_packets"),
    (State, "CONNECTED"),
    (State, "CLOSED"),
    (State, "FAILED"),
    (RTCIceTransport, "_connection"),
    (RTCRtpTransceiver, "_codecs"),
    (RTCRtpTransceiver, "_headerExtensions"),
    (RTCRtpTransceiver, "_get_mline_index"),
)

_NEGOTIATED_ATTR: Final = "_podium_parameters"
_RAW_ATTR: Final = "_podium_raw_rtp"
_DEMUX_ATTR: Final = "_podium_media_demux"
_CONNECTED_ATTR: Final = "_podium_connected_socket"
#: RTCP feedback formats the SFU acts on (RFC 4585, RFC 5104): PLI and FIR; generic NACK.
_KEYFRAME_REQUEST_FORMATS: Final = frozenset({1, 4})
_GENERIC_NACK_FORMAT: Final = 1
#: ICE component 1 carries RTP and RTCP (aiortc always multiplexes RTCP).
_RTP_COMPONENT: Final = 1
#: Seconds from the NTP epoch (1900) to the Unix epoch (1970).
_NTP_UNIX_OFFSET: Final = 2_208_988_800
_SEQUENCE_TIMESTAMP = Struct("!HI")
_loopback_only: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "podium_loopback_only", default=False
)
_original_get_host_addresses: Callable[[bool, bool], list[str]] | None = None


def _hook_present(owner: object, name: str) -> bool:
    if hasattr(owner, name) or name in getattr(owner, "__annotations__", {}):
        return True
    init = getattr(owner, "__init__", None)
    code = getattr(init, "__code__", None)
    return code is not None and name in code.co_names


def check_hooks() -> None:
    """Raise `RuntimeError` naming every missing hook, or if aiortc, aioice or pylibsrtp
    is not the pinned version."""
    missing = [
        f"{getattr(owner, '__qualname__', getattr(owner, '__name__', owner))}.{name}"
        for owner, name in REQUIRED_HOOKS
        if not _hook_present(owner, name)
    ]
    installed = (aiortc.__version__, aioice.__version__, pylibsrtp.__version__)
    pinned = (PINNED_AIORTC_VERSION, PINNED_AIOICE_VERSION, PINNED_PYLIBSRTP_VERSION)
    if missing or installed != pinned:
        raise RuntimeError(
            f"podium.sfu.adapter needs aiortc=={pinned[0]}, aioice=={pinned[1]} and "
            f"pylibsrtp=={pinned[2]} (installed: aiortc {installed[0]}, aioice "
            f"{installed[1]}, pylibsrtp {installed[2]}); missing private hooks: "
            f"{', '.join(missing) or 'none'}"
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


def _install_media_demux() -> None:
    """Hand RTP and RTCP datagrams straight to the ICE connection (process-wide, once).

    aioice tries to parse every datagram as STUN and passes it on when that
    fails with an exception. A first byte of 128-191 is RTP or RTCP and never
    STUN (RFC 7983), so those skip the attempt: same result, less work per
    media packet.
    """
    protocol = aioice.ice.StunProtocol
    original = protocol.datagram_received
    if getattr(original, _DEMUX_ATTR, False):
        return

    def datagram_received(self: aioice.ice.StunProtocol, data: bytes, addr: Any) -> None:
        if data and 127 < data[0] < 192:
            self.receiver.data_received(data, self.local_candidate.component)
        else:
            original(self, data, addr)

    setattr(datagram_received, _DEMUX_ATTR, True)
    setattr(protocol, "datagram_received", datagram_received)  # noqa: B010


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

    Every m-line shares one transport (`max-bundle`). With aiortc's default
    (`balanced`), a third m-line of a kind already present (the second video:
    screen share) keeps a transport of its own when the BUNDLE group is
    applied, which is never connected, so its media is never received.
    """
    _install_media_demux()
    configuration = RTCConfiguration(
        iceServers=list(ice_servers or []), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
    )
    pc = RTCPeerConnection(configuration)
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


class _RawRtp:
    """The decrypted bytes of the RTP packet a DTLS transport is handling right now."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: bytes | None = None


def _raw_rtp(transport: RTCDtlsTransport) -> _RawRtp:
    """Hook `transport` (once) so its receivers' taps can read each packet's original bytes.

    aiortc parses a decrypted packet and hands the receiver an `RtpPacket`,
    which has lost the exact bytes (header extensions it does not know
    included). The transport's `_handle_rtp_data` is wrapped on the instance to
    keep the bytes while aiortc's own handler parses, routes and delivers the
    packet. That all happens in one call chain before anything can wait, so the
    receiver's hook reads the bytes of exactly its packet. RTP and RTCP
    datagrams then take `_SrtpFastPath` instead of the transport's receive task.
    """
    raw = getattr(transport, _RAW_ATTR, None)
    if isinstance(raw, _RawRtp):
        return raw
    raw = _RawRtp()
    original = transport._handle_rtp_data

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        raw.data = data
        try:
            await original(data, arrival_time_ms=arrival_time_ms)
        finally:
            raw.data = None

    setattr(transport, _RAW_ATTR, raw)
    setattr(transport, "_handle_rtp_data", handle_rtp_data)  # noqa: B010
    _SrtpFastPath(transport, raw, original)
    return raw


class _Resume:
    """Awaiting it finishes a coroutine that was started by hand and suspended on `yielded`.

    It passes what the awaiting task sends or throws on to the coroutine, as
    `await coroutine` would have from the start.
    """

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, None], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, None]:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    yielded = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration:
                    return


def drive(coro: Coroutine[Any, Any, None]) -> _Resume | None:
    """Run `coro` now, synchronously; None if it finished, else what finishes it when awaited.

    aiortc's receive handlers are coroutines that in practice never wait (their
    RTCP sends end in aioice's synchronous `sendto`), so running them to the
    end here saves a task switch per packet without changing what they do.
    """
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    return _Resume(coro, yielded)


class _SrtpFastPath:
    """SRTP and SRTCP datagrams of one connected DTLS transport, handled as they arrive.

    aioice queues every datagram for the transport's receive task, which takes
    it off the queue and awaits through several coroutines per packet. This
    replaces the ICE connection's `data_received` on the instance: an RTP or
    RTCP datagram (RFC 7983 first byte 128-191) arriving while the transport
    is connected and nothing is queued is counted, unprotected and handed to
    aiortc's `_handle_rtp_data` or `_handle_rtcp_data` right there, exactly as
    the receive task would (`_recv_next`). Everything else (DTLS, STUN, before
    connection) goes to the queue as before. If a handler ever does wait, a
    task finishes it and the packets arriving meanwhile wait in `_backlog`
    behind it, so they keep their order.
    """

    __slots__ = ("_backlog", "_handle", "_queue", "_queued", "_raw", "_task", "_transport")

    def __init__(
        self,
        transport: RTCDtlsTransport,
        raw: _RawRtp,
        handle: Callable[[bytes, int], Coroutine[Any, Any, None]],
    ) -> None:
        connection = cast(Any, transport).transport._connection
        self._transport: Any = transport
        self._raw = raw
        self._handle = handle
        self._queue: asyncio.Queue[Any] = connection._queue
        self._queued: Callable[[bytes, int], None] = connection.data_received
        self._backlog: deque[bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        connection.data_received = self.data_received

    def data_received(self, data: bytes, component: int) -> None:
        if (
            component != _RTP_COMPONENT
            or len(data) < 12
            or not 127 < data[0] < 192
            or not self._queue.empty()
            or self._transport._state is not State.CONNECTED
            or self._transport._rx_srtp is None
        ):
            self._queued(data, component)
        elif self._backlog is not None:
            self._backlog.append(data)
        else:
            resume = self._receive(data)
            if resume is not None:
                self._backlog = deque()
                self._task = asyncio.get_running_loop().create_task(self._finish(resume))

    def _receive(self, data: bytes) -> _Resume | None:
        """What aiortc's `_recv_next` does with an SRTP or SRTCP datagram, up to the first wait."""
        transport = self._transport
        transport._RTCDtlsTransport__rx_bytes += len(data)
        transport._RTCDtlsTransport__rx_packets += 1
        if is_rtcp(data):
            try:
                rtcp = transport._rx_srtp.unprotect_rtcp(data)
            except pylibsrtp.Error as exc:
                logger.debug("SRTCP unprotect failed: %s", exc)
                return None
            try:
                return drive(transport._handle_rtcp_data(rtcp))
            except Exception:
                logger.exception("RTCP handling failed")
                return None
        # aiortc's `clock.current_ms()` (milliseconds since 1900), without datetimes.
        arrival_time_ms = int((time.time() + _NTP_UNIX_OFFSET) * 1000)
        try:
            rtp = transport._rx_srtp.unprotect(data)
        except pylibsrtp.Error as exc:
            logger.debug("SRTP unprotect failed: %s", exc)
            return None
        self._raw.data = rtp
        try:
            return drive(self._handle(rtp, arrival_time_ms))
        except Exception:
            logger.exception("RTP handling failed")
            return None
        finally:
            self._raw.data = None

    async def _finish(self, resume: _Resume) -> None:
        """Finish a handler that waited, then the packets that arrived meanwhile, in order."""
        backlog = self._backlog
        assert backlog is not None
        try:
            pending: _Resume | None = resume
            while pending is not None:
                try:
                    await pending
                except Exception:
                    logger.exception("RTP handling failed")
                pending = None
                while backlog and pending is None:
                    pending = self._receive(backlog.popleft())
        finally:
            self._backlog = None
            self._task = None


def tap_receiver(
    receiver: RTCRtpReceiver, on_packet: Callable[[bytes, int], None], *, decode: bool = False
) -> None:
    """Deliver every incoming RTP packet's decrypted bytes, and its arrival time in ms.

    Call it before negotiation completes (e.g. in the connection's "track"
    handler). `on_packet` gets the packet exactly as the peer sent it, header
    extensions included, RTX packets too (the payload type tells them apart).
    The receiver's `_handle_rtp_packet` (where `RtpRouter` delivers parsed
    packets) is replaced on the instance by one calling `on_packet` then
    `_feedback_only` (or, with `decode`, aiortc's original), which keeps
    receiver reports, NACK generation and REMB towards the publisher.

    Decoding (unless `decode`, for test clients that also watch the bytes):
    aiortc 1.16.0 starts the decoder thread unconditionally inside `receive()`,
    and `_handle_rtp_packet` only queues frames while `__decoder_thread` is
    set. So `receive` is wrapped on the instance and, right after it returns,
    aiortc's own `__stop_decoder()` (what RTCP BYE and disconnect use) ends the
    idle thread and clears the attribute: no frame is ever queued or decoded.
    The receiver's track then ends (its `recv()` raises `MediaStreamError`).
    """
    original = receiver._handle_rtp_packet
    raw: _RawRtp | None = None
    then = original if decode else _feedback_only(receiver)

    async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
        data = None if raw is None else raw.data
        if data is not None:
            try:
                on_packet(data, arrival_time_ms)
            except Exception:
                logger.exception("RTP tap callback failed")
        await then(packet, arrival_time_ms)

    def started() -> None:
        # `receive()` runs once the DTLS transport is connected, so it is final by now.
        nonlocal raw
        raw = _raw_rtp(receiver.transport)
        if not decode:
            cast(Callable[[], None], getattr(receiver, "_RTCRtpReceiver__stop_decoder"))()  # noqa: B009

    _capture_parameters(receiver, "receive", after=started)
    setattr(receiver, "_handle_rtp_packet", handle_rtp_packet)  # noqa: B010


def _feedback_only(receiver: RTCRtpReceiver) -> Callable[[RtpPacket, int], Awaitable[None]]:
    """aiortc's `_handle_rtp_packet` for a receiver whose decoder is stopped.

    It keeps what the publisher hears back: the REMB estimate, the statistics
    behind receiver reports (and `getStats`), the active sources, RTX
    unwrapping and NACKs. It leaves out depacketising and the jitter buffer,
    which only assemble frames for the decoder. The jitter buffer also asks
    for a keyframe when it overflows after heavy loss; the SFU forwards its
    subscribers' own keyframe requests (and asks on every resume) instead.
    """
    r = cast(Any, receiver)

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        if not r._enabled:
            return
        estimator = r._RTCRtpReceiver__remote_bitrate_estimator
        abs_send_time = packet.extensions.abs_send_time
        if estimator is not None and abs_send_time is not None:
            remb = estimator.add(
                abs_send_time=abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            rtcp_ssrc = r._RTCRtpReceiver__rtcp_ssrc
            if rtcp_ssrc is not None and remb is not None:
                await r._send_rtcp(
                    RtcpPsfbPacket(
                        fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb)
                    )
                )
        r._RTCRtpReceiver__active_ssrc[packet.ssrc] = clock.current_datetime()
        codecs = r._RTCRtpReceiver__codecs
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        streams = r._RTCRtpReceiver__remote_streams
        stream = streams.get(packet.ssrc)
        if stream is None:
            stream = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        if is_rtx(codec):
            original_ssrc = r._RTCRtpReceiver__rtx_ssrc.get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if (
                original_ssrc is None
                or len(packet.payload) < 2
                or not isinstance(apt, int)
                or apt not in codecs
            ):
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
        nack = r._RTCRtpReceiver__nack_generator
        if nack is not None and nack.add(packet):
            await r._send_rtcp_nack(packet.ssrc, sorted(nack.missing))

    return handle


def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> Coroutine[Any, Any, None]:
    """Ask the peer sending `media_ssrc` to `receiver` for a keyframe (RTCP PLI).

    aiortc's own `_send_rtcp_pli`: it uses the receiver's RTCP SSRC and does
    nothing while the transport is not connected.
    """
    return receiver._send_rtcp_pli(media_ssrc)


class IdleTrack(MediaStreamTrack):
    """A track whose `recv()` never returns: aiortc's send loop for it stays idle."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Frame:
        never: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        return await never


#: How often a `RawSender` hands its counters and clocks to aiortc, in seconds.
COUNTER_FLUSH_S: Final = 0.05


def _unattached(*args: object) -> Any:
    raise RuntimeError("RawSender used before its transport was attached")


_ffi: Final[Any] = _binding.ffi
_srtp_protect: Final[Callable[[Any, Any, Any], int]] = _binding.lib.srtp_protect


class RawSender:
    """Send already rewritten RTP through an `RTCRtpSender`, bypassing its encoder.

    The sender's track must be an `IdleTrack` (added with `addTrack` before
    negotiation). It is a forwarder `Sink`: the packet is written into
    `buffer`, and `send` protects it there with the DTLS transport's SRTP
    session (libsrtp called directly, as pylibsrtp does behind a copy in and a
    copy out) and writes it to the nominated ICE pair's datagram transport, as
    aiortc's `_send_rtp` and aioice's `send_data` would do behind two awaits
    (neither of which ever waits in practice). aiortc's counters stay right:
    the sender's packet/octet counts and last NTP/RTP timestamps (so its RTCP
    sender reports make sense) and the transport's sent bytes and packets. A
    packet sent before the transport is connected, or after it closed, is
    dropped and counted in `dropped`.

    RTCP feedback routed to this sender that the SFU acts on (PLI, FIR, NACK;
    REMB too with `remb=True`) is parsed with `podium.sfu.rtcp.parse_rtcp` and
    given to `on_feedback`; aiortc's own handler still runs (RTT and stats; its
    NACK/PLI handling finds nothing to do).
    """

    def __init__(
        self,
        sender: RTCRtpSender,
        on_feedback: Callable[[list[Rtcp]], None] | None = None,
        *,
        remb: bool = False,
    ) -> None:
        self.sender = sender
        self.on_feedback = on_feedback
        #: Also hand REMB to `on_feedback` (the SFU itself does not use subscribers' REMB).
        self.remb = remb
        #: Set once negotiation started the sender (`negotiated_codecs` then works).
        self.ready = asyncio.Event()
        self.dropped = 0
        # libsrtp protects in place and appends its trailer after the packet.
        self._cdata = _ffi.new("char[]", MAX_PACKET_SIZE + pylibsrtp.SRTP_MAX_TRAILER_LEN)
        self._memory = memoryview(_ffi.buffer(self._cdata))
        #: Where the packet to `send` is written: it then holds the last packet sent.
        self.buffer = self._memory[:MAX_PACKET_SIZE]
        self._length = _ffi.new("int *")
        #: When the last packet was sent (monotonic), 0 before the first.
        self._last_sent_at = 0.0
        #: Counts not yet handed to aiortc, and when to hand them over next.
        self._packets = self._octets = self._tx_packets = self._tx_bytes = 0
        self._flush_at = 0.0
        self._transport: RTCDtlsTransport | None = None
        #: The transport's SRTP session (kept alive here) and its libsrtp context.
        self._session: Any = None
        self._srtp: Any = None
        self._protect: Callable[[bytes], bytes] = _unattached
        self._send_datagram: Callable[[bytes | memoryview], bool] = _unattached
        _capture_parameters(sender, "send", after=self.ready.set)
        original = sender._handle_rtcp_packet

        async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
            # Only what the SFU acts on: REMB and the rest are left to aiortc, unparsed here.
            if self.on_feedback is not None and (
                (
                    isinstance(packet, RtcpPsfbPacket)
                    and (
                        packet.fmt in _KEYFRAME_REQUEST_FORMATS
                        or (self.remb and packet.fmt == RTCP_PSFB_APP)
                    )
                )
                or (isinstance(packet, RtcpRtpfbPacket) and packet.fmt == _GENERIC_NACK_FORMAT)
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

    def send(self, length: int, payload_size: int) -> None:
        """Send the `length`-byte packet in `buffer` now, counting it as aiortc's send loop would.

        `payload_size` is its payload's size (header and padding excluded), for
        the sender's octet count.
        """
        transport = self.sender.transport
        attached = transport is self._transport and transport._state is State.CONNECTED
        if not attached and not self._connected():
            self.dropped += 1
            return
        size = self._length
        size[0] = length
        status = _srtp_protect(self._srtp, self._cdata, size)
        if status:
            logger.debug("SRTP protect failed: libsrtp status %d", status)
            self.dropped += 1
            return
        protected = size[0]
        if not self._send_datagram(self._memory[:protected]):
            self.dropped += 1
            return
        self._tx_bytes += protected
        self._tx_packets += 1
        self._packets += 1
        self._octets += payload_size
        now = self._last_sent_at = time.monotonic()
        if now >= self._flush_at:
            self._flush(now)

    def _flush(self, now: float) -> None:
        """Hand the counts and the last packet's clocks to aiortc (its SRs and stats read them).

        Done at most every `COUNTER_FLUSH_S` rather than per packet: an SR then
        pairs the NTP and RTP time of one packet sent at most that long ago,
        which is still a consistent pair.
        """
        self._flush_at = now + COUNTER_FLUSH_S
        sender = cast(Any, self.sender)
        if self._last_sent_at:
            wall = time.time()
            sender._RTCRtpSender__ntp_timestamp = (int(wall) + _NTP_UNIX_OFFSET) << 32 | int(
                (wall % 1) * (1 << 32)
            )
            # SRTP leaves the header as it was: the buffer still holds the last packet's.
            sender._RTCRtpSender__rtp_timestamp = _SEQUENCE_TIMESTAMP.unpack_from(self.buffer, 2)[1]
        sender._RTCRtpSender__octet_count += self._octets
        sender._RTCRtpSender__packet_count += self._packets
        self._octets = self._packets = 0
        if self._transport is not None:
            transport = cast(Any, self._transport)
            transport._RTCDtlsTransport__tx_bytes += self._tx_bytes
            transport._RTCDtlsTransport__tx_packets += self._tx_packets
        self._tx_bytes = self._tx_packets = 0

    def continuation(self, clock_rate: int) -> tuple[int, int] | None:
        """The (sequence number, timestamp) that continue what was sent, None if nothing was.

        For the next stream sent on this SSRC: one past the last sequence
        number, and the last timestamp plus the time since, at `clock_rate`.
        """
        if not self._last_sent_at:
            return None
        sequence_number, timestamp = _SEQUENCE_TIMESTAMP.unpack_from(self.buffer, 2)
        elapsed = max(1, round((time.monotonic() - self._last_sent_at) * clock_rate))
        return (sequence_number + 1) % (1 << 16), (timestamp + elapsed) % (1 << 32)

    def resend(self, data: bytes) -> bool:
        """Send a packet again (a NACK answer); like aiortc's retransmissions, not counted.

        It goes through pylibsrtp's own buffer, so `buffer` keeps the last packet sent.
        """
        if not self._connected():
            return False
        try:
            protected = self._protect(data)
        except (pylibsrtp.Error, ValueError):
            logger.debug("SRTP protect failed", exc_info=True)
            return False
        if not self._send_datagram(protected):
            return False
        self._tx_bytes += len(protected)
        self._tx_packets += 1
        return True

    def _connected(self) -> bool:
        """Whether the sender's transport is connected, attaching to it if it is new."""
        transport = self.sender.transport
        if transport._state is not State.CONNECTED:
            return False
        return transport is self._transport or self._attach(transport)

    def _attach(self, transport: RTCDtlsTransport) -> bool:
        """Keep what sending through this connected transport needs, looked up once.

        Its SRTP session and nominated ICE pair do not change while it stays
        connected (aiortc does no DTLS renegotiation or ICE restart); a new
        transport (bundling) is attached afresh.
        """
        pair = cast(Any, transport).transport._connection._nominated.get(_RTP_COMPONENT)
        if pair is None:
            return False
        if self._transport is not None:
            self._flush(time.monotonic())
        self._transport = transport
        # Subscribers' RTCP (NACK, PLI, receiver reports) skips the receive task too.
        _raw_rtp(transport)
        session = self._session = cast(Any, transport)._tx_srtp
        self._srtp = session._srtp[0]
        self._protect = session.protect
        self._send_datagram = _datagram_sender(transport, pair)
        return True


class _ConnectedSocket:
    """A duplicate of a nominated pair's socket, connected to the pair's remote address.

    Sending on a connected UDP socket skips the kernel's route lookup and the
    event loop's address handling for every datagram: about an eighth of the
    SFU's CPU with 16 subscribers. Connecting also makes the kernel deliver to
    that socket only what comes from the remote address, which is all that is
    expected once the pair is nominated (aiortc does no ICE restart). The
    duplicate is closed when the DTLS transport closes or fails, or is collected.
    """

    __slots__ = ("_send", "_socket", "pair")

    def __init__(self, pair: Any, sock: socket.socket) -> None:
        # Weak: the pair leads back to the transport, which must stay collectable.
        self.pair = weakref.ref(pair)
        self._socket = sock
        self._send = sock.send

    def send(self, data: bytes | memoryview) -> bool:
        """Send one datagram now; False if the kernel refused it (buffer full, port unreachable)."""
        try:
            self._send(data)
        except OSError:
            return False
        return True

    def close(self) -> None:
        self._socket.close()


def _datagram_sender(
    transport: RTCDtlsTransport, pair: Any
) -> Callable[[bytes | memoryview], bool]:
    """How to send a datagram on the transport's nominated `pair`, synchronously.

    A `_ConnectedSocket` (one per transport) for a pair on one of our own
    sockets (host or server-reflexive candidate); otherwise (a relayed pair, or
    no socket to duplicate) what aioice's `StunProtocol.send_data` does, minus
    the coroutine.
    """
    connected = getattr(transport, _CONNECTED_ATTR, None)
    if isinstance(connected, _ConnectedSocket) and connected.pair() is pair:
        return connected.send
    datagrams = pair.protocol.transport
    address = pair.remote_addr

    def send_to(data: bytes | memoryview) -> bool:
        datagrams.sendto(data, address)
        return True

    own = datagrams.get_extra_info("socket")
    if pair.local_candidate.type not in ("host", "srflx") or own is None:
        return send_to
    try:
        sock = socket.socket(fileno=os.dup(own.fileno()))
    except OSError:
        logger.debug("cannot duplicate the ICE socket", exc_info=True)
        return send_to
    try:
        sock.setblocking(False)
        sock.connect(address)
    except OSError:
        logger.debug("cannot connect the ICE socket to %s", address, exc_info=True)
        sock.close()
        return send_to
    connected = _ConnectedSocket(pair, sock)
    setattr(transport, _CONNECTED_ATTR, connected)
    finalizer = weakref.finalize(transport, connected.close)

    def on_state_change() -> None:
        if transport._state in (State.CLOSED, State.FAILED):
            finalizer()

    transport.on("statechange", on_state_change)
    return connected.send


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
