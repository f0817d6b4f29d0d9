"""RTP packets rewritten in place on `bytearray`s (RFC 3550, RFC 8285).

A full parse and re-serialise costs 40-57 µs per forwarded packet; the SFU only
changes a few header fields at fixed or quickly found offsets, so it edits the
received buffer instead. Payload bytes are never copied or touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from struct import Struct
from typing import Final, Generic, NamedTuple, TypeVar

FIXED_HEADER_SIZE = 12
#: "Defined by profile" value of RFC 8285 one-byte header extensions.
ONE_BYTE_PROFILE = 0xBEDE
#: RFC 8285 two-byte header extensions: 0x100 then 4 application bits.
TWO_BYTE_PROFILE = 0x1000
SEQUENCE_MODULO = 1 << 16
TIMESTAMP_MODULO = 1 << 32
#: Sent packets kept per subscriber to answer NACKs (a power of two dividing 2**16).
DEFAULT_CACHE_SIZE = 512
#: The largest RTP packet forwarded: more than a 1500-byte MTU leaves room for.
MAX_PACKET_SIZE: Final = 1500

_T = TypeVar("_T")

_U16 = Struct("!H")
_U32 = Struct("!I")


class ExtensionElement(NamedTuple):
    """One RFC 8285 element: its id and where its value lies in the packet buffer."""

    id: int
    offset: int
    length: int


def _check_range(name: str, value: int, limit: int) -> None:
    if not 0 <= value < limit:
        raise ValueError(f"{name} {value} is outside 0..{limit - 1}")


class RtpHeaderView:
    """Validated offsets into one RTP packet; every read and write goes to the buffer.

    Build one per received packet: the constructor checks the lengths once, the
    accessors then trust them. The buffer must keep its length while viewed.
    `payload_offset` and `payload_end` bound the payload (padding excluded);
    `extension_offset` is where the extension's profile field is, if any.
    """

    __slots__ = ("buf", "extension_offset", "payload_end", "payload_offset")

    def __init__(self, buf: bytearray) -> None:
        size = len(buf)
        if size < FIXED_HEADER_SIZE:
            raise ValueError(f"RTP packet of {size} bytes is shorter than its 12-byte header")
        first = buf[0]
        if first >> 6 != 2:
            raise ValueError(f"RTP version is {first >> 6}, not 2")
        pos = FIXED_HEADER_SIZE + 4 * (first & 0x0F)
        if pos > size:
            raise ValueError("RTP CSRC list overruns the packet")
        extension_offset = None
        if first & 0x10:
            if pos + 4 > size:
                raise ValueError("RTP header extension header overruns the packet")
            extension_offset = pos
            pos += 4 + 4 * _U16.unpack_from(buf, pos + 2)[0]
            if pos > size:
                raise ValueError("RTP header extension overruns the packet")
        end = size
        if first & 0x20:
            padding = buf[-1]
            if padding == 0 or padding > size - pos:
                raise ValueError(f"RTP padding of {padding} bytes does not fit the payload")
            end -= padding
        self.buf = buf
        self.extension_offset: int | None = extension_offset
        self.payload_offset = pos
        self.payload_end = end

    @property
    def padding(self) -> bool:
        return bool(self.buf[0] & 0x20)

    @property
    def has_extension(self) -> bool:
        return self.extension_offset is not None

    @property
    def csrc_count(self) -> int:
        return self.buf[0] & 0x0F

    @property
    def csrcs(self) -> tuple[int, ...]:
        return tuple(
            _U32.unpack_from(self.buf, FIXED_HEADER_SIZE + 4 * i)[0] for i in range(self.csrc_count)
        )

    @property
    def marker(self) -> bool:
        return bool(self.buf[1] & 0x80)

    @marker.setter
    def marker(self, value: bool) -> None:
        self.buf[1] = (self.buf[1] & 0x7F) | (0x80 if value else 0)

    @property
    def payload_type(self) -> int:
        return self.buf[1] & 0x7F

    @payload_type.setter
    def payload_type(self, value: int) -> None:
        _check_range("payload type", value, 128)
        self.buf[1] = (self.buf[1] & 0x80) | value

    @property
    def sequence_number(self) -> int:
        value: int = _U16.unpack_from(self.buf, 2)[0]
        return value

    @sequence_number.setter
    def sequence_number(self, value: int) -> None:
        _check_range("sequence number", value, SEQUENCE_MODULO)
        _U16.pack_into(self.buf, 2, value)

    @property
    def timestamp(self) -> int:
        value: int = _U32.unpack_from(self.buf, 4)[0]
        return value

    @timestamp.setter
    def timestamp(self, value: int) -> None:
        _check_range("timestamp", value, TIMESTAMP_MODULO)
        _U32.pack_into(self.buf, 4, value)

    @property
    def ssrc(self) -> int:
        value: int = _U32.unpack_from(self.buf, 8)[0]
        return value

    @ssrc.setter
    def ssrc(self, value: int) -> None:
        _check_range("SSRC", value, TIMESTAMP_MODULO)
        _U32.pack_into(self.buf, 8, value)

    @property
    def extension_profile(self) -> int | None:
        if self.extension_offset is None:
            return None
        value: int = _U16.unpack_from(self.buf, self.extension_offset)[0]
        return value

    @property
    def padding_size(self) -> int:
        return len(self.buf) - self.payload_end

    @property
    def payload_size(self) -> int:
        return self.payload_end - self.payload_offset

    def extension_elements(self) -> list[ExtensionElement]:
        """The RFC 8285 elements in wire order; none for other extension profiles.

        Parsing stops early where RFC 8285 says so (one-byte id 15, or id 0 with
        a length); a value overrunning the extension block raises `ValueError`.
        """
        return [ExtensionElement._make(element) for element in self.extension_layout().elements]

    def rewrite_extension_ids(
        self, mapping: Mapping[int, int], *, drop_unknown: bool = False
    ) -> None:
        """Renumber RFC 8285 elements in place from the publisher's ids to a subscriber's.

        Ids missing from `mapping` stay as they are, or with `drop_unknown` are
        overwritten with zero bytes, which RFC 8285 defines as padding in both
        profiles. Everything is checked before the first byte is written.
        """
        layout = self.extension_layout()
        if not layout.elements:
            return
        highest = 14 if layout.one_byte else 255
        for new_id in mapping.values():
            if not 1 <= new_id <= highest:
                raise ValueError(f"extension id {new_id} is outside 1..{highest} for this profile")
        layout.rewrite_ids(self.buf, mapping, drop_unknown=drop_unknown)

    def extension_layout(self) -> ExtensionLayout:
        """Where the RFC 8285 elements are: found once per packet, applied to every copy."""
        if self.extension_offset is None:
            return _NO_EXTENSIONS
        buf = self.buf
        profile: int = _U16.unpack_from(buf, self.extension_offset)[0]
        pos = self.extension_offset + 4
        end = self.payload_offset  # the extension block ends where the payload starts
        elements: list[tuple[int, int, int]] = []
        if profile == ONE_BYTE_PROFILE:
            while pos < end:
                byte = buf[pos]
                if byte == 0:
                    pos += 1
                    continue
                ext_id = byte >> 4
                if ext_id == 0 or ext_id == 15:
                    break
                length = (byte & 0x0F) + 1
                pos += 1
                if pos + length > end:
                    raise ValueError(f"RTP header extension {ext_id} overruns its block")
                elements.append((ext_id, pos, length))
                pos += length
            return ExtensionLayout(True, tuple(elements))
        if profile & 0xFFF0 == TWO_BYTE_PROFILE:
            while pos < end:
                ext_id = buf[pos]
                if ext_id == 0:
                    pos += 1
                    continue
                if pos + 2 > end:
                    raise ValueError(f"RTP header extension {ext_id} has no length byte")
                length = buf[pos + 1]
                pos += 2
                if pos + length > end:
                    raise ValueError(f"RTP header extension {ext_id} overruns its block")
                elements.append((ext_id, pos, length))
                pos += length
        return ExtensionLayout(False, tuple(elements))


class ExtensionLayout(NamedTuple):
    """The RFC 8285 elements of one packet: (id, value offset, length), in wire order.

    Plain tuples: this is built for every forwarded packet. It describes every
    copy of that packet, so the elements are found once, not once per subscriber.
    """

    one_byte: bool
    elements: tuple[tuple[int, int, int], ...]

    def rewrite_ids(
        self, buf: bytearray | memoryview, mapping: Mapping[int, int], *, drop_unknown: bool = True
    ) -> None:
        """Renumber the elements of `buf` (a copy of the packet this layout describes).

        An id the mapping does not name, or names with an id this profile cannot
        carry, is kept or (with `drop_unknown`) zeroed: never an exception, so a
        rewrite cannot fail halfway through a packet's subscribers.
        """
        one_byte = self.one_byte
        header_size = 1 if one_byte else 2
        highest = 14 if one_byte else 255
        for ext_id, offset, length in self.elements:
            header = offset - header_size
            target = mapping.get(ext_id)
            if target is None or not 1 <= target <= highest:
                if drop_unknown:
                    buf[header : offset + length] = bytes(header_size + length)
            elif one_byte:
                buf[header] = (target << 4) | (buf[header] & 0x0F)
            else:
                buf[header] = target


_NO_EXTENSIONS: Final = ExtensionLayout(False, ())


def unwrap_rtx(packet: bytes | bytearray, payload_type: int, ssrc: int | None) -> bytearray | None:
    """The original packet an RTX retransmission (RFC 4588 §4) carries, or None.

    The original sequence number is the payload's first two bytes; the payload
    type becomes the RTX codec's `apt` and the SSRC the media stream's (kept as
    it is when `ssrc` is None). Header extensions and padding stay. None means
    there is no media in it: padding-only RTX packets are bandwidth probes.
    Raises `ValueError` for a malformed packet.
    """
    _check_range("payload type", payload_type, 128)
    buf = bytearray(packet)
    view = RtpHeaderView(buf)
    start = view.payload_offset
    if view.payload_size <= 2:
        return None
    original = bytearray(buf[:start])
    original += memoryview(buf)[start + 2 :]
    original[1] = (original[1] & 0x80) | payload_type
    original[2:4] = buf[start : start + 2]
    if ssrc is not None:
        _U32.pack_into(original, 8, ssrc)
    return original


class SequenceRewriter:
    """Maps one publisher stream into one subscriber's continuous numbering.

    Forwarding happens in runs. The first packet of a run picks the offsets: its
    output sequence number follows the last one sent, and its timestamp is the
    last sent plus the increment given to `start_new_run` (so the subscriber
    sees neither a sequence gap nor a jump in time when the gate reopens or the
    source changes). Within a run the offsets are fixed, so reordered and
    duplicated packets map consistently and losses stay visible for NACKs;
    packets from before the run's first packet are dropped.
    """

    __slots__ = (
        "_highest",
        "_in_run",
        "_last_sequence",
        "_last_timestamp",
        "_next_sequence",
        "_next_timestamp",
        "_run_start",
        "_sequence_offset",
        "_timestamp_offset",
    )

    def __init__(self, first_sequence: int, first_timestamp: int) -> None:
        """`first_sequence` and `first_timestamp` are what the first forwarded packet gets."""
        _check_range("sequence number", first_sequence, SEQUENCE_MODULO)
        _check_range("timestamp", first_timestamp, TIMESTAMP_MODULO)
        self._next_sequence = first_sequence
        self._next_timestamp = first_timestamp
        self._in_run = False
        # Input sequence numbers of the run, extended past 16 bits so they compare.
        self._run_start = 0
        self._highest = 0
        self._sequence_offset = 0
        self._timestamp_offset = 0
        self._last_sequence: int | None = None
        self._last_timestamp: int | None = None

    @property
    def last_sequence(self) -> int | None:
        """Output sequence number of the newest packet sent, if any."""
        return self._last_sequence

    @property
    def last_timestamp(self) -> int | None:
        """Output timestamp of the newest packet sent, if any."""
        return self._last_timestamp

    def start_new_run(self, timestamp_increment: int) -> None:
        """End the current run; the next packet continues the numbering.

        `timestamp_increment` (≥ 1, in the stream's clock rate) is added to the
        last sent timestamp for the next packet, typically the wall time elapsed
        since that packet was sent. Calling this again before any packet replaces
        the increment rather than adding to it.
        """
        if not 1 <= timestamp_increment < 1 << 31:
            raise ValueError(f"timestamp increment {timestamp_increment} is outside 1..2**31-1")
        self._in_run = False
        if self._last_sequence is not None and self._last_timestamp is not None:
            self._next_sequence = (self._last_sequence + 1) % SEQUENCE_MODULO
            self._next_timestamp = (self._last_timestamp + timestamp_increment) % TIMESTAMP_MODULO

    def rewrite(self, sequence_number: int, timestamp: int) -> tuple[int, int] | None:
        """The output (sequence number, timestamp) for an input packet, or None to drop it."""
        if not self._in_run:
            self._in_run = True
            self._run_start = self._highest = extended = sequence_number
            self._sequence_offset = self._next_sequence - sequence_number
            self._timestamp_offset = self._next_timestamp - timestamp
        else:
            delta = ((sequence_number - self._highest + 0x8000) & 0xFFFF) - 0x8000
            extended = self._highest + delta
            if extended < self._run_start:
                return None
        output = (
            (extended + self._sequence_offset) % SEQUENCE_MODULO,
            (timestamp + self._timestamp_offset) % TIMESTAMP_MODULO,
        )
        if extended >= self._highest:
            self._highest = extended
            self._last_sequence, self._last_timestamp = output
        return output

    def original_sequence(self, sequence_number: int) -> int | None:
        """The input sequence number behind an output one of the current run, if any.

        Lets a NACK the cache cannot answer be passed on to the publisher.
        """
        if not self._in_run:
            return None
        run_start_output = (self._run_start + self._sequence_offset) % SEQUENCE_MODULO
        distance = (sequence_number - run_start_output) % SEQUENCE_MODULO
        if distance > self._highest - self._run_start:
            return None
        return (self._run_start + distance) % SEQUENCE_MODULO


class PacketCache(Generic[_T]):
    """What was sent to one subscriber, by output sequence number, to answer NACKs.

    A ring buffer: `size` slots indexed by the low bits of the sequence number.
    It keeps a reference to each item, so a stored buffer must not be changed.
    """

    __slots__ = ("_items", "_newest", "_sequences", "_size")

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        if not 1 <= size <= SEQUENCE_MODULO or size & (size - 1):
            raise ValueError(f"cache size {size} is not a power of two in 1..65536")
        self._size = size
        self._sequences = [-1] * size
        self._items: list[_T | None] = [None] * size
        self._newest: int | None = None

    def put(self, sequence_number: int, item: _T) -> None:
        """Remember what was just sent with this output sequence number."""
        if not 0 <= sequence_number < SEQUENCE_MODULO:
            raise ValueError(f"sequence number {sequence_number} is outside 0..65535")
        slot = sequence_number & (self._size - 1)
        self._sequences[slot] = sequence_number
        self._items[slot] = item
        newest = self._newest
        if newest is None or 0 < (sequence_number - newest) % SEQUENCE_MODULO < 0x8000:
            self._newest = sequence_number

    def get(self, sequence_number: int) -> _T | None:
        """What was sent with this sequence number, if it is among the last `size`."""
        newest = self._newest
        if newest is None or (newest - sequence_number) % SEQUENCE_MODULO >= self._size:
            return None
        slot = sequence_number & (self._size - 1)
        if self._sequences[slot] != sequence_number:
            return None
        return self._items[slot]
