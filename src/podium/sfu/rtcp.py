"""The RTCP feedback an SFU acts on: parsed from compound packets, and built.

PLI and FIR (RFC 4585, RFC 5104) ask for a keyframe, generic NACK (RFC 4585)
for retransmissions, REMB (draft-alvestrand-rmcat-remb) carries the receiver's
bandwidth estimate. Everything else passes through untouched as `OtherRtcp`.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from struct import Struct
from typing import Generic, TypeVar

RTPFB = 205
PSFB = 206
FMT_NACK = 1
FMT_PLI = 1
FMT_FIR = 4
FMT_AFB = 15
#: Upstream keyframe requests per source are at most this far apart by default.
DEFAULT_KEYFRAME_INTERVAL_S = 0.5

_HEADER = Struct("!BBH")
_SSRCS = Struct("!II")
_U32 = Struct("!I")
_NACK_ITEM = Struct("!HH")
_FIR_ITEM = Struct("!IB3x")
_REMB_HEAD = Struct("!4sBBH")
_REMB_EXPONENT_MAX = 63


def _check_range(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} {value} does not fit in {bits} bits")


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


@dataclass(frozen=True, slots=True)
class Pli:
    """Picture Loss Indication: the receiver wants a keyframe of `media_ssrc`."""

    sender_ssrc: int
    media_ssrc: int

    def __post_init__(self) -> None:
        _check_range("sender SSRC", self.sender_ssrc, 32)
        _check_range("media SSRC", self.media_ssrc, 32)

    def __bytes__(self) -> bytes:
        return _packet(PSFB, FMT_PLI, _SSRCS.pack(self.sender_ssrc, self.media_ssrc))


@dataclass(frozen=True, slots=True)
class FirEntry:
    """One FIR request: the source to refresh and the command sequence number."""

    ssrc: int
    sequence_number: int

    def __post_init__(self) -> None:
        _check_range("FIR SSRC", self.ssrc, 32)
        _check_range("FIR sequence number", self.sequence_number, 8)


@dataclass(frozen=True, slots=True)
class Fir:
    """Full Intra Request; the media SSRC field is 0 and the targets are in `entries`.

    A FIR repeating an entry's sequence number is a retransmission, not a new
    request (RFC 5104 §4.3.1), so an SFU sends its own FIRs with its own counter
    rather than forwarding subscribers' ones.
    """

    sender_ssrc: int
    entries: tuple[FirEntry, ...]

    def __post_init__(self) -> None:
        _check_range("sender SSRC", self.sender_ssrc, 32)
        if not self.entries:
            raise ValueError("FIR needs at least one entry")

    def __bytes__(self) -> bytes:
        body = _SSRCS.pack(self.sender_ssrc, 0) + b"".join(
            _FIR_ITEM.pack(entry.ssrc, entry.sequence_number) for entry in self.entries
        )
        return _packet(PSFB, FMT_FIR, body)


@dataclass(frozen=True, slots=True)
class Nack:
    """Generic NACK: the sequence numbers of `media_ssrc` the receiver lost.

    Built in the order given (duplicates dropped), packed greedily into
    PID + bitmask items; listing them in sequence order gives the fewest items.
    """

    sender_ssrc: int
    media_ssrc: int
    lost: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_range("sender SSRC", self.sender_ssrc, 32)
        _check_range("media SSRC", self.media_ssrc, 32)
        if not self.lost:
            raise ValueError("NACK needs at least one lost sequence number")
        for sequence_number in self.lost:
            _check_range("lost sequence number", sequence_number, 16)

    def __bytes__(self) -> bytes:
        items: list[bytes] = []
        pid: int | None = None
        mask = 0
        for sequence_number in dict.fromkeys(self.lost):
            if pid is not None:
                bit = (sequence_number - pid - 1) & 0xFFFF
                if bit < 16:
                    mask |= 1 << bit
                    continue
                items.append(_NACK_ITEM.pack(pid, mask))
            pid, mask = sequence_number, 0
        assert pid is not None  # `lost` is never empty
        items.append(_NACK_ITEM.pack(pid, mask))
        body = _SSRCS.pack(self.sender_ssrc, self.media_ssrc) + b"".join(items)
        return _packet(RTPFB, FMT_NACK, body)


@dataclass(frozen=True, slots=True)
class Remb:
    """Receiver Estimated Maximum Bitrate for the streams `ssrcs`, in bits per second.

    The wire form keeps 18 significant bits: building rounds `bitrate` down.
    """

    sender_ssrc: int
    bitrate: int
    ssrcs: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_range("sender SSRC", self.sender_ssrc, 32)
        _check_range("REMB bitrate", self.bitrate, 18 + _REMB_EXPONENT_MAX)
        _check_range("REMB SSRC count", len(self.ssrcs), 8)
        for ssrc in self.ssrcs:
            _check_range("REMB SSRC", ssrc, 32)

    def __bytes__(self) -> bytes:
        exponent = max(0, self.bitrate.bit_length() - 18)
        mantissa = self.bitrate >> exponent
        head = _REMB_HEAD.pack(
            b"REMB", len(self.ssrcs), (exponent << 2) | (mantissa >> 16), mantissa & 0xFFFF
        )
        body = _SSRCS.pack(self.sender_ssrc, 0) + head
        body += b"".join(_U32.pack(ssrc) for ssrc in self.ssrcs)
        return _packet(PSFB, FMT_AFB, body)


@dataclass(frozen=True, slots=True)
class OtherRtcp:
    """Any other RTCP packet, whole (header included), as it arrived."""

    packet_type: int
    raw: bytes


Rtcp = Pli | Fir | Nack | Remb | OtherRtcp


def parse_rtcp(data: bytes | bytearray) -> list[Rtcp]:
    """Split a compound RTCP packet; a malformed part raises `ValueError` for the whole."""
    packets: list[Rtcp] = []
    pos = 0
    size = len(data)
    while pos < size:
        if pos + 4 > size:
            raise ValueError("RTCP header is truncated")
        first, packet_type, words = _HEADER.unpack_from(data, pos)
        if first >> 6 != 2:
            raise ValueError(f"RTCP version is {first >> 6}, not 2")
        end = pos + 4 + 4 * words
        if end > size:
            raise ValueError("RTCP packet overruns the compound packet")
        body_end = end
        if first & 0x20:
            padding = data[end - 1] if end > pos + 4 else 0
            if padding == 0 or padding > end - pos - 4:
                raise ValueError(f"RTCP padding of {padding} bytes does not fit the packet")
            body_end -= padding
        packets.append(_parse_one(data, packet_type, first & 0x1F, pos, body_end, end))
        pos = end
    return packets


def _parse_one(
    data: bytes | bytearray, packet_type: int, fmt: int, start: int, body_end: int, end: int
) -> Rtcp:
    """One packet of a compound; its body (after the 4-byte header) ends at `body_end`."""
    fci = start + 12
    is_feedback = (packet_type == PSFB and fmt in (FMT_PLI, FMT_FIR, FMT_AFB)) or (
        packet_type == RTPFB and fmt == FMT_NACK
    )
    if not is_feedback:
        return OtherRtcp(packet_type, bytes(data[start:end]))
    if fci > body_end:
        raise ValueError("RTCP feedback is shorter than its two SSRCs")
    sender_ssrc, media_ssrc = _SSRCS.unpack_from(data, start + 4)
    if packet_type == RTPFB:
        if fci == body_end or (body_end - fci) % 4:
            raise ValueError("NACK items must be a non-empty list of 4-byte items")
        lost: list[int] = []
        for pid, mask in _NACK_ITEM.iter_unpack(data[fci:body_end]):
            lost.append(pid)
            lost.extend((pid + bit + 1) & 0xFFFF for bit in range(16) if mask >> bit & 1)
        return Nack(sender_ssrc, media_ssrc, tuple(lost))
    if fmt == FMT_PLI:
        return Pli(sender_ssrc, media_ssrc)
    if fmt == FMT_FIR:
        if fci == body_end or (body_end - fci) % 8:
            raise ValueError("FIR entries must be a non-empty list of 8-byte items")
        entries = tuple(
            FirEntry(ssrc, sequence_number)
            for ssrc, sequence_number in _FIR_ITEM.iter_unpack(data[fci:body_end])
        )
        return Fir(sender_ssrc, entries)
    if data[fci : min(fci + 4, body_end)] != b"REMB":
        return OtherRtcp(packet_type, bytes(data[start:end]))
    if fci + 8 > body_end:
        raise ValueError("REMB is shorter than its 8-byte header")
    _, count, exponent_high, mantissa_low = _REMB_HEAD.unpack_from(data, fci)
    if fci + 8 + 4 * count > body_end:
        raise ValueError(f"REMB lists {count} SSRCs but is shorter than that")
    mantissa = ((exponent_high & 0x03) << 16) | mantissa_low
    ssrcs = tuple(_U32.unpack_from(data, fci + 8 + 4 * i)[0] for i in range(count))
    return Remb(sender_ssrc, mantissa << (exponent_high >> 2), ssrcs)


_Forwardable = TypeVar("_Forwardable", Pli, Nack)


def retarget(feedback: _Forwardable, *, sender_ssrc: int, media_ssrc: int) -> _Forwardable:
    """The same feedback as if sent by `sender_ssrc` about `media_ssrc`.

    Turns a subscriber's PLI or NACK into one for the publisher's stream. A
    NACK's sequence numbers stay as they are: map them with
    `SequenceRewriter.original_sequence` first when they come from a subscriber.
    """
    return replace(feedback, sender_ssrc=sender_ssrc, media_ssrc=media_ssrc)


_Source = TypeVar("_Source", bound=Hashable)


class KeyframeRequestLimiter(Generic[_Source]):
    """Merges keyframe requests from many subscribers into few upstream requests.

    Per source, at most one request goes upstream per interval. Call `request`
    for each subscriber's PLI or FIR: it says whether to send one now. A request
    that has to wait is remembered, and `due(now)` releases it once the interval
    has passed (schedule that call at `next_due()`), unless `keyframe_received`
    reports that a keyframe already answered it.
    """

    __slots__ = ("_interval", "_last_sent", "_pending")

    def __init__(self, interval_s: float = DEFAULT_KEYFRAME_INTERVAL_S) -> None:
        if interval_s < 0:
            raise ValueError(f"interval {interval_s} s is negative")
        self._interval = interval_s
        self._last_sent: dict[_Source, float] = {}
        self._pending: dict[_Source, None] = {}

    def request(self, source: _Source, now: float) -> bool:
        """A subscriber asked for a keyframe of `source`; True means send upstream now."""
        last = self._last_sent.get(source)
        if last is None or now >= last + self._interval:
            self._last_sent[source] = now
            self._pending.pop(source, None)
            return True
        self._pending[source] = None
        return False

    def keyframe_received(self, source: _Source) -> None:
        """A keyframe of `source` arrived, answering any request still waiting."""
        self._pending.pop(source, None)

    def due(self, now: float) -> list[_Source]:
        """Sources whose waiting request should go upstream now (each is marked sent)."""
        # Compared as `last + interval`, exactly what `next_due` returns, so that
        # calling `due(next_due())` releases the request despite float rounding.
        ready = [s for s in self._pending if now >= self._last_sent[s] + self._interval]
        for source in ready:
            del self._pending[source]
            self._last_sent[source] = now
        return ready

    def next_due(self) -> float | None:
        """When the earliest waiting request becomes due, or None if none waits."""
        if not self._pending:
            return None
        return min(self._last_sent[s] for s in self._pending) + self._interval

    def forget(self, source: _Source) -> None:
        """Drop all state about a source that is no longer published."""
        self._last_sent.pop(source, None)
        self._pending.pop(source, None)
