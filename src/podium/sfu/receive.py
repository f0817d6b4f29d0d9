"""The receive path: a publisher's RTP, as the decrypted bytes, without aiortc decoding it.

`tap_receiver` hands each packet exactly as the peer sent it (header
extensions included) to the forwarder, and stops aiortc's decoder; RTP and
RTCP datagrams of a connected transport are unprotected and handled in the
datagram callback (`_SrtpFastPath`) instead of hopping through aiortc's
receive task. `install_media_demux` is the SFU's one process-wide patch
(applied by `SfuCall`, never by the SDK).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Final, cast

import aioice.ice
import pylibsrtp
from aiortc import RTCRtpReceiver, clock
from aiortc.codecs import is_rtx
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtpPacket,
    is_rtcp,
    pack_remb_fci,
    unwrap_rtx,
)

from podium.sfu.negotiation import capture_parameters

logger = logging.getLogger(__name__)

_RAW_ATTR: Final = "_podium_raw_rtp"
_DEMUX_ATTR: Final = "_podium_media_demux"
#: ICE component 1 carries RTP and RTCP (aiortc always multiplexes RTCP).
RTP_COMPONENT: Final = 1
#: Seconds from the NTP epoch (1900) to the Unix epoch (1970).
NTP_UNIX_OFFSET: Final = 2_208_988_800


def install_media_demux() -> None:
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


def decoder_running(receiver: RTCRtpReceiver) -> bool:
    """Whether aiortc's decoder thread for `receiver` exists (it should not once tapped)."""
    thread = getattr(receiver, "_RTCRtpReceiver__decoder_thread", None)
    return thread is not None and bool(thread.is_alive())


class _RawRtp:
    """The decrypted bytes of the RTP packet a DTLS transport is handling right now."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: bytes | None = None


def raw_rtp(transport: RTCDtlsTransport) -> _RawRtp:
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
            component != RTP_COMPONENT
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
        arrival_time_ms = int((time.time() + NTP_UNIX_OFFSET) * 1000)
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
        raw = raw_rtp(receiver.transport)
        if not decode:
            cast(Callable[[], None], getattr(receiver, "_RTCRtpReceiver__stop_decoder"))()  # noqa: B009

    capture_parameters(receiver, "receive", after=started)
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
