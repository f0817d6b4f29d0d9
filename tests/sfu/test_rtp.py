"""`podium.sfu.rtp`: header reads, in-place writes, extension ids, sequence mapping, cache."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtpPacket, wrap_rtx
from hypothesis import given
from hypothesis import strategies as st

from podium.sfu.rtp import (
    ONE_BYTE_PROFILE,
    ExtensionElement,
    PacketCache,
    RtpHeaderView,
    SequenceRewriter,
    unwrap_rtx,
)
from tests.sfu import PROPERTY_SETTINGS

# --- building packets independently of the code under test ---------------------------


@dataclass
class Spec:
    """What a test packet holds; `build` lays it out by the book (RFC 3550)."""

    payload_type: int = 96
    marker: bool = False
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    csrcs: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    payload: bytes = b""
    padding: bytes = b""  # the whole padding, last byte included

    def build(self) -> bytearray:
        first = 0x80 | len(self.csrcs)
        first |= 0x20 if self.padding else 0
        first |= 0x10 if self.extension is not None else 0
        data = bytearray(
            struct.pack(
                "!BBHII",
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        )
        for csrc in self.csrcs:
            data += struct.pack("!I", csrc)
        if self.extension is not None:
            profile, block = self.extension
            assert len(block) % 4 == 0
            data += struct.pack("!HH", profile, len(block) // 4) + block
        return data + self.payload + self.padding


def one_byte_block(*parts: tuple[int, bytes] | int) -> bytes:
    """Elements (id, value) and runs of padding bytes (an int), padded to 32 bits."""
    block = b""
    for part in parts:
        if isinstance(part, int):
            block += bytes(part)
        else:
            block += bytes([(part[0] << 4) | (len(part[1]) - 1)]) + part[1]
    return block + bytes(-len(block) % 4)


def two_byte_block(*parts: tuple[int, bytes] | int) -> bytes:
    block = b""
    for part in parts:
        if isinstance(part, int):
            block += bytes(part)
        else:
            block += bytes([part[0], len(part[1])]) + part[1]
    return block + bytes(-len(block) % 4)


def values(view: RtpHeaderView) -> list[tuple[int, bytes]]:
    return [
        (e.id, bytes(view.buf[e.offset : e.offset + e.length])) for e in view.extension_elements()
    ]


u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
one_byte_elements = st.tuples(st.integers(1, 14), st.binary(min_size=1, max_size=16))
two_byte_elements = st.tuples(st.integers(1, 255), st.binary(max_size=20))


@st.composite
def extension_blocks(draw: st.DrawFn) -> tuple[int, bytes, list[tuple[int, bytes]]]:
    """(profile, block, elements) with padding bytes scattered between the elements."""
    one_byte = draw(st.booleans())
    elements = draw(st.lists(one_byte_elements if one_byte else two_byte_elements, max_size=5))
    parts: list[tuple[int, bytes] | int] = []
    for element in elements:
        parts += [draw(st.integers(0, 3)), element]
    if one_byte:
        return ONE_BYTE_PROFILE, one_byte_block(*parts), elements
    return 0x1000 | draw(st.integers(0, 15)), two_byte_block(*parts), elements


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    extension = draw(st.none() | extension_blocks())
    padding_size = draw(st.integers(0, 8))
    padding = b""
    if padding_size:
        padding = draw(st.binary(min_size=padding_size - 1, max_size=padding_size - 1))
        padding += bytes([padding_size])
    return Spec(
        payload_type=draw(st.integers(0, 127)),
        marker=draw(st.booleans()),
        sequence_number=draw(u16),
        timestamp=draw(u32),
        ssrc=draw(u32),
        csrcs=tuple(draw(st.lists(u32, max_size=15))),
        extension=None if extension is None else extension[:2],
        payload=draw(st.binary(max_size=64)),
        padding=padding,
    )


# --- reading -------------------------------------------------------------------------


def test_reads_every_field_of_a_full_packet() -> None:
    block = one_byte_block((1, b"\x80"), 2, (4, b"0"))
    spec = Spec(127, True, 0xFFFF, 0xFFFFFFFF, 0x01020304, (7, 8), (ONE_BYTE_PROFILE, block))
    spec.payload, spec.padding = b"payload", b"\x00\x00\x03"
    view = RtpHeaderView(spec.build())
    assert (view.payload_type, view.marker) == (127, True)
    assert (view.sequence_number, view.timestamp, view.ssrc) == (0xFFFF, 0xFFFFFFFF, 0x01020304)
    assert (view.csrc_count, view.csrcs) == (2, (7, 8))
    assert (view.has_extension, view.extension_profile) == (True, ONE_BYTE_PROFILE)
    assert values(view) == [(1, b"\x80"), (4, b"0")]
    assert (view.padding, view.padding_size) == (True, 3)
    assert view.buf[view.payload_offset : view.payload_end] == b"payload"
    assert view.payload_size == 7


def test_a_bare_header_has_an_empty_payload() -> None:
    view = RtpHeaderView(bytearray(b"\x80\x60" + bytes(10)))
    assert (view.payload_offset, view.payload_end, view.padding_size) == (12, 12, 0)
    assert (view.has_extension, view.extension_profile, view.extension_elements()) == (
        False,
        None,
        [],
    )
    assert (view.padding, view.csrcs) == (False, ())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "shorter than its 12-byte header"),
        (b"\x80" + bytes(10), "shorter than its 12-byte header"),
        (b"\x40" + bytes(11), "version is 1"),
        (b"\xc0" + bytes(11), "version is 3"),
        (b"\x00" + bytes(11), "version is 0"),
        (b"\x82" + bytes(15), "CSRC list overruns"),
        (b"\x8f" + bytes(11 + 4 * 14), "CSRC list overruns"),
        (b"\x90" + bytes(11) + b"\xbe\xde\x00", "extension header overruns"),
        (b"\x90" + bytes(11) + b"\xbe\xde\x00\x01", "extension overruns"),
        (b"\x90" + bytes(11) + b"\xbe\xde\x00\x02" + bytes(7), "extension overruns"),
        (b"\xa0" + bytes(11), "padding of 0 bytes"),
        (b"\xa0" + bytes(10) + b"\x01", "padding of 1 bytes"),
        (b"\xa0" + bytes(11) + b"ab\x00", "padding of 0 bytes"),
        (b"\xa0" + bytes(11) + b"ab\x04", "padding of 4 bytes"),
        (b"\xb0" + bytes(11) + b"\xbe\xde\x00\x01\x10\x01\x00\x02", "padding of 2 bytes"),
    ],
)
def test_malformed_packets_raise(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RtpHeaderView(bytearray(data))


def test_padding_may_fill_the_whole_payload() -> None:
    view = RtpHeaderView(bytearray(b"\xa0" + bytes(11) + b"\x00\x00\x03"))
    assert (view.payload_size, view.padding_size) == (0, 3)


@PROPERTY_SETTINGS
@given(specs())
def test_reads_what_was_built(spec: Spec) -> None:
    view = RtpHeaderView(spec.build())
    assert view.payload_type == spec.payload_type
    assert view.marker == spec.marker
    assert view.sequence_number == spec.sequence_number
    assert view.timestamp == spec.timestamp
    assert view.ssrc == spec.ssrc
    assert view.csrcs == spec.csrcs
    assert view.buf[view.payload_offset : view.payload_end] == spec.payload
    assert view.padding_size == len(spec.padding)
    assert view.extension_profile == (spec.extension[0] if spec.extension else None)


# --- header extension elements -------------------------------------------------------


def test_one_byte_elements_follow_rfc_8285_example_layout() -> None:
    # RFC 8285 §4.2: three elements with two padding bytes between the 2nd and 3rd.
    block = one_byte_block((1, b"a"), (2, b"bc"), 2, (3, b"defg"))
    assert len(block) == 12
    view = RtpHeaderView(Spec(extension=(ONE_BYTE_PROFILE, block)).build())
    assert values(view) == [(1, b"a"), (2, b"bc"), (3, b"defg")]
    assert view.extension_elements()[0] == ExtensionElement(1, 17, 1)


def test_two_byte_elements_follow_rfc_8285_example_layout() -> None:
    block = two_byte_block((1, b""), (2, b"b"), 1, (3, b"defg"))
    assert len(block) == 12
    view = RtpHeaderView(Spec(extension=(0x1003, block)).build())
    assert values(view) == [(1, b""), (2, b"b"), (3, b"defg")]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        # id 15 stops parsing (RFC 8285 §4.2): what follows is not looked at.
        (bytes([0x10, 0x61, 0xF0, 0x20, 0x62, 0, 0, 0]), [(1, b"a")]),
        # id 0 with a length also stops parsing (RFC 8285 §4.1.2).
        (bytes([0x10, 0x61, 0x05, 0x20, 0x62, 0, 0, 0]), [(1, b"a")]),
        (bytes(4), []),
    ],
)
def test_one_byte_parsing_stops_where_rfc_8285_says(
    block: bytes, expected: list[tuple[int, bytes]]
) -> None:
    view = RtpHeaderView(Spec(extension=(ONE_BYTE_PROFILE, block)).build())
    assert values(view) == expected


@pytest.mark.parametrize(
    ("profile", "block", "message"),
    [
        (ONE_BYTE_PROFILE, bytes([0x13, 1, 2, 3]), "extension 1 overruns"),
        (ONE_BYTE_PROFILE, bytes([0x10, 1, 0, 0x21]), "extension 2 overruns"),
        (0x1000, bytes([0, 0, 0, 7]), "extension 7 has no length byte"),
        (0x1000, bytes([9, 3, 1, 2]), "extension 9 overruns"),
    ],
)
def test_truncated_elements_raise(profile: int, block: bytes, message: str) -> None:
    view = RtpHeaderView(Spec(extension=(profile, block)).build())
    with pytest.raises(ValueError, match=message):
        view.extension_elements()


def test_other_extension_profiles_are_opaque() -> None:
    view = RtpHeaderView(Spec(extension=(0xABCD, b"\x10abc")).build())
    assert view.extension_elements() == []
    view.rewrite_extension_ids({1: 2}, drop_unknown=True)
    assert view.buf.endswith(b"\x10abc")


@PROPERTY_SETTINGS
@given(extension_blocks())
def test_elements_are_found_between_any_padding(
    extension: tuple[int, bytes, list[tuple[int, bytes]]],
) -> None:
    profile, block, elements = extension
    assert values(RtpHeaderView(Spec(extension=(profile, block)).build())) == elements


@pytest.mark.parametrize(
    ("profile", "parts", "mapping", "drop", "expected"),
    [
        (ONE_BYTE_PROFILE, [(1, b"a"), (4, b"mid")], {4: 1, 1: 4}, False, [(4, b"a"), (1, b"mid")]),
        (ONE_BYTE_PROFILE, [(1, b"a"), (4, b"mid")], {4: 9}, False, [(1, b"a"), (9, b"mid")]),
        (ONE_BYTE_PROFILE, [(1, b"a"), (4, b"mid")], {4: 9}, True, [(9, b"mid")]),
        (ONE_BYTE_PROFILE, [(1, b"a"), (4, b"mid")], {}, True, []),
        (0x1000, [(1, b""), (200, b"xyz")], {200: 3}, False, [(1, b""), (3, b"xyz")]),
        (0x1000, [(1, b""), (200, b"xyz")], {1: 255}, True, [(255, b"")]),
    ],
)
def test_extension_ids_are_remapped_in_place(
    profile: int,
    parts: list[tuple[int, bytes]],
    mapping: dict[int, int],
    drop: bool,
    expected: list[tuple[int, bytes]],
) -> None:
    build = one_byte_block if profile == ONE_BYTE_PROFILE else two_byte_block
    spec = Spec(extension=(profile, build(*parts)), payload=b"data")
    view = RtpHeaderView(spec.build())
    view.rewrite_extension_ids(mapping, drop_unknown=drop)
    assert len(view.buf) == len(spec.build())
    reparsed = RtpHeaderView(view.buf)
    assert values(reparsed) == expected
    assert reparsed.buf[reparsed.payload_offset :] == b"data"


@pytest.mark.parametrize(
    ("profile", "parts", "mapping"),
    [
        (ONE_BYTE_PROFILE, [(1, b"a")], {1: 15}),
        (ONE_BYTE_PROFILE, [(1, b"a")], {1: 0}),
        (ONE_BYTE_PROFILE, [(1, b"a")], {2: 16}),
        (0x1000, [(1, b"a")], {1: 256}),
        (0x1000, [(1, b"a")], {1: 0}),
    ],
)
def test_impossible_target_ids_raise_before_writing(
    profile: int, parts: list[tuple[int, bytes]], mapping: dict[int, int]
) -> None:
    build = one_byte_block if profile == ONE_BYTE_PROFILE else two_byte_block
    original = Spec(extension=(profile, build(*parts))).build()
    view = RtpHeaderView(bytearray(original))
    with pytest.raises(ValueError, match="outside 1"):
        view.rewrite_extension_ids(mapping, drop_unknown=True)
    assert view.buf == original


def test_a_malformed_extension_is_left_untouched() -> None:
    original = Spec(extension=(ONE_BYTE_PROFILE, bytes([0x10, 0x61, 0x23, 0]))).build()
    view = RtpHeaderView(bytearray(original))
    with pytest.raises(ValueError, match="overruns"):
        view.rewrite_extension_ids({1: 2})
    assert view.buf == original


@PROPERTY_SETTINGS
@given(extension_blocks(), st.data())
def test_remapping_changes_only_ids(
    extension: tuple[int, bytes, list[tuple[int, bytes]]], data: st.DataObject
) -> None:
    profile, block, elements = extension
    highest = 14 if profile == ONE_BYTE_PROFILE else 255
    ids = sorted({ext_id for ext_id, _ in elements})
    targets = data.draw(st.permutations(range(1, highest + 1)))
    mapping = {ext_id: targets[i] for i, ext_id in enumerate(ids) if data.draw(st.booleans())}
    drop = data.draw(st.booleans())
    view = RtpHeaderView(Spec(extension=(profile, block), payload=b"p").build())
    view.rewrite_extension_ids(mapping, drop_unknown=drop)
    expected = [(mapping[i], v) for i, v in elements if i in mapping]
    if not drop:
        expected = [(mapping.get(i, i), v) for i, v in elements]
    assert values(RtpHeaderView(view.buf)) == expected


# --- writing -------------------------------------------------------------------------


def test_payload_type_and_marker_are_written_independently() -> None:
    view = RtpHeaderView(Spec(payload_type=111, marker=True).build())
    view.payload_type = 96
    assert (view.payload_type, view.marker, view.buf[1]) == (96, True, 0x80 | 96)
    view.marker = False
    assert (view.payload_type, view.marker) == (96, False)
    view.marker = True
    assert view.buf[1] == 0x80 | 96


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("payload_type", 128),
        ("payload_type", -1),
        ("sequence_number", 0x10000),
        ("timestamp", 1 << 32),
        ("ssrc", -1),
        ("ssrc", 1 << 32),
    ],
)
def test_out_of_range_writes_raise(field: str, value: int) -> None:
    view = RtpHeaderView(Spec().build())
    with pytest.raises(ValueError, match="outside"):
        setattr(view, field, value)
    assert view.buf == Spec().build()


@PROPERTY_SETTINGS
@given(specs(), st.integers(0, 127), st.booleans(), u16, u32, u32)
def test_writes_change_only_their_fields(
    spec: Spec, payload_type: int, marker: bool, sequence_number: int, timestamp: int, ssrc: int
) -> None:
    original = spec.build()
    view = RtpHeaderView(bytearray(original))
    view.payload_type = payload_type
    view.marker = marker
    view.sequence_number = sequence_number
    view.timestamp = timestamp
    view.ssrc = ssrc
    again = RtpHeaderView(view.buf)
    assert (again.payload_type, again.marker) == (payload_type, marker)
    assert (again.sequence_number, again.timestamp, again.ssrc) == (
        sequence_number,
        timestamp,
        ssrc,
    )
    assert view.buf[0] == original[0]
    assert view.buf[12:] == original[12:]


# --- against aiortc ------------------------------------------------------------------

URIS = {
    "audio_level": "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "abs_send_time": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "transport_sequence_number": (
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
    ),
    "mid": "urn:ietf:params:rtp-hdrext:sdes:mid",
    "rtp_stream_id": "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
}
# Chrome's ids as a publisher, aiortc's own as a subscriber.
PUBLISHER_IDS = {"audio_level": 1, "abs_send_time": 2, "transport_sequence_number": 3, "mid": 4}
SUBSCRIBER_IDS = {"audio_level": 10, "abs_send_time": 3, "transport_sequence_number": 5, "mid": 1}
TWO_BYTE_IDS = {"mid": 4, "rtp_stream_id": 200}


def extension_map(ids: dict[str, int]) -> HeaderExtensionsMap:
    extensions = [RTCRtpHeaderExtensionParameters(id=i, uri=URIS[n]) for n, i in ids.items()]
    result = HeaderExtensionsMap()
    result.configure(RTCRtpParameters(headerExtensions=extensions))
    return result


@st.composite
def aiortc_packets(draw: st.DrawFn, names: tuple[str, ...]) -> RtpPacket:
    packet = RtpPacket(
        payload_type=draw(st.integers(0, 127)),
        marker=draw(st.integers(0, 1)),
        sequence_number=draw(u16),
        timestamp=draw(u32),
        ssrc=draw(u32),
        payload=draw(st.binary(max_size=64)),
    )
    packet.csrc = draw(st.lists(u32, max_size=15))
    packet.padding_size = draw(st.integers(0, 255))
    strategies = {
        "audio_level": st.tuples(st.booleans(), st.integers(0, 127)),
        "abs_send_time": st.integers(0, (1 << 24) - 1),
        "transport_sequence_number": u16,
        "mid": st.text("0123456789abc", min_size=1, max_size=16),
        "rtp_stream_id": st.text("abcdefghij", min_size=17, max_size=40),
    }
    extensions = HeaderExtensions()
    for name in names:
        setattr(extensions, name, draw(st.none() | strategies[name]))
    packet.extensions = extensions
    return packet


def same_except_padding_filler(ours: bytes | bytearray, theirs: bytes, padding: int) -> None:
    """aiortc fills padding with random bytes; everything else must match exactly."""
    assert len(ours) == len(theirs)
    assert ours[: len(ours) - padding] == theirs[: len(theirs) - padding]
    assert ours[-1:] == theirs[-1:]


@pytest.mark.parametrize("ids", [PUBLISHER_IDS, TWO_BYTE_IDS])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_in_place_writes_match_aiortc_serialize(ids: dict[str, int], data: st.DataObject) -> None:
    ext_map = extension_map(ids)
    packet = data.draw(aiortc_packets(tuple(ids)))
    wire = packet.serialize(ext_map)
    view = RtpHeaderView(bytearray(wire))
    parsed = RtpPacket.parse(wire, ext_map)
    assert (view.payload_type, int(view.marker)) == (parsed.payload_type, parsed.marker)
    assert (view.sequence_number, view.timestamp) == (parsed.sequence_number, parsed.timestamp)
    assert (view.ssrc, list(view.csrcs)) == (parsed.ssrc, parsed.csrc)
    assert view.buf[view.payload_offset : view.payload_end] == parsed.payload
    assert view.padding_size == parsed.padding_size

    new = data.draw(st.tuples(st.integers(0, 127), st.integers(0, 1), u16, u32, u32))
    parsed.payload_type, parsed.marker, parsed.sequence_number, parsed.timestamp, parsed.ssrc = new
    view.payload_type, view.marker = new[0], bool(new[1])
    view.sequence_number, view.timestamp, view.ssrc = new[2:]
    same_except_padding_filler(view.buf, parsed.serialize(ext_map), parsed.padding_size)


@PROPERTY_SETTINGS
@given(aiortc_packets(tuple(PUBLISHER_IDS)))
def test_remapped_ids_match_aiortc_serialize_with_the_subscribers_map(packet: RtpPacket) -> None:
    publisher, subscriber = extension_map(PUBLISHER_IDS), extension_map(SUBSCRIBER_IDS)
    wire = packet.serialize(publisher)
    view = RtpHeaderView(bytearray(wire))
    mapping = {PUBLISHER_IDS[name]: SUBSCRIBER_IDS[name] for name in PUBLISHER_IDS}
    view.rewrite_extension_ids(mapping)
    # aiortc writes elements in a fixed order of kinds, so renumbering keeps its layout.
    same_except_padding_filler(view.buf, packet.serialize(subscriber), packet.padding_size)
    assert RtpPacket.parse(bytes(view.buf), subscriber).extensions == packet.extensions


@PROPERTY_SETTINGS
@given(aiortc_packets(tuple(PUBLISHER_IDS)))
def test_dropped_extensions_read_as_absent_in_aiortc(packet: RtpPacket) -> None:
    publisher = extension_map(PUBLISHER_IDS)
    view = RtpHeaderView(bytearray(packet.serialize(publisher)))
    view.rewrite_extension_ids({PUBLISHER_IDS["mid"]: 1}, drop_unknown=True)
    # The reading map knows id 2 as well: a dropped element must not be read back.
    reparsed = RtpPacket.parse(bytes(view.buf), extension_map({"mid": 1, "abs_send_time": 2}))
    assert reparsed.extensions == HeaderExtensions(mid=packet.extensions.mid)
    assert reparsed.payload == packet.payload


def test_a_layout_rewrites_every_copy_and_blanks_ids_its_profile_cannot_carry() -> None:
    spec = Spec(extension=(ONE_BYTE_PROFILE, one_byte_block((1, b"a"), (2, b"bc"))), payload=b"x")
    layout = RtpHeaderView(spec.build()).extension_layout()
    kept, dropped = spec.build(), spec.build()
    layout.rewrite_ids(kept, {1: 15, 2: 3}, drop_unknown=False)
    layout.rewrite_ids(dropped, {1: 15, 2: 3})
    assert values(RtpHeaderView(kept)) == [(1, b"a"), (3, b"bc")]
    assert values(RtpHeaderView(dropped)) == [(3, b"bc")]


# --- RTX -----------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(aiortc_packets(tuple(PUBLISHER_IDS)), u16, u32, st.integers(0, 127))
def test_rtx_unwraps_to_the_packet_aiortc_wrapped(
    packet: RtpPacket, rtx_sequence: int, rtx_ssrc: int, rtx_type: int
) -> None:
    ext_map = extension_map(PUBLISHER_IDS)
    packet.padding_size = 0
    rtx = wrap_rtx(packet, rtx_type, rtx_sequence, rtx_ssrc).serialize(ext_map)
    unwrapped = unwrap_rtx(rtx, packet.payload_type, packet.ssrc)
    if not packet.payload:
        assert unwrapped is None
    else:
        assert unwrapped is not None and bytes(unwrapped) == packet.serialize(ext_map)


def test_rtx_unwrapping_keeps_padding_and_may_keep_the_ssrc() -> None:
    original = Spec(payload_type=96, sequence_number=7, ssrc=5, payload=b"vp8", padding=b"\0\0\3")
    rtx = Spec(payload_type=97, sequence_number=900, ssrc=6, payload=b"\0\7vp8", padding=b"\0\0\3")
    assert unwrap_rtx(rtx.build(), 96, 5) == original.build()
    assert unwrap_rtx(bytes(rtx.build()), 96, None) == Spec(**{**vars(original), "ssrc": 6}).build()


@pytest.mark.parametrize("payload", [b"", b"\0\7"])
def test_rtx_without_media_is_a_probe(payload: bytes) -> None:
    assert (
        unwrap_rtx(Spec(payload=payload, padding=bytes(255)[:-1] + b"\xff").build(), 96, 1) is None
    )


def test_malformed_rtx_raises() -> None:
    with pytest.raises(ValueError, match="shorter"):
        unwrap_rtx(b"\x80\x61", 96, 1)
    with pytest.raises(ValueError, match="outside"):
        unwrap_rtx(Spec(payload=b"\0\7x").build(), 128, 1)


# --- SequenceRewriter ----------------------------------------------------------------


def feed(
    rewriter: SequenceRewriter, packets: list[tuple[int, int]]
) -> list[tuple[int, int] | None]:
    return [rewriter.rewrite(seq, ts) for seq, ts in packets]


def test_first_run_starts_at_the_given_numbers() -> None:
    rewriter = SequenceRewriter(first_sequence=1000, first_timestamp=5000)
    assert (rewriter.last_sequence, rewriter.last_timestamp) == (None, None)
    assert feed(rewriter, [(40000, 90000), (40001, 93000), (40003, 96000)]) == [
        (1000, 5000),
        (1001, 8000),
        (1003, 11000),  # an input loss stays a gap, so the subscriber can NACK it
    ]
    assert (rewriter.last_sequence, rewriter.last_timestamp) == (1003, 11000)


def test_a_new_run_continues_without_a_gap() -> None:
    rewriter = SequenceRewriter(first_sequence=10, first_timestamp=0)
    feed(rewriter, [(500, 1000), (501, 4000)])
    rewriter.start_new_run(timestamp_increment=90_000)
    # A different source entirely: unrelated sequence numbers and timestamps.
    assert feed(rewriter, [(7, 123), (8, 3123), (9, 6123)]) == [
        (12, 93_000),
        (13, 96_000),
        (14, 99_000),
    ]


def test_outputs_wrap_at_16_and_32_bits() -> None:
    rewriter = SequenceRewriter(first_sequence=0xFFFE, first_timestamp=0xFFFFFFFF - 1000)
    assert feed(rewriter, [(100, 0), (101, 1000), (102, 2000)]) == [
        (0xFFFE, 0xFFFFFFFF - 1000),
        (0xFFFF, 0xFFFFFFFF),
        (0, 999),
    ]
    rewriter.start_new_run(timestamp_increment=1)
    assert rewriter.rewrite(5, 5) == (1, 1000)


def test_inputs_wrapping_within_a_run_stay_in_order() -> None:
    rewriter = SequenceRewriter(first_sequence=100, first_timestamp=0)
    assert feed(rewriter, [(0xFFFF, 0xFFFFFFF0), (0, 0x10), (1, 0x30), (0xFFFF, 0xFFFFFFF0)]) == [
        (100, 0),
        (101, 0x20),
        (102, 0x40),
        (100, 0),
    ]
    assert rewriter.last_sequence == 102


def test_reordered_and_duplicate_packets_map_consistently() -> None:
    rewriter = SequenceRewriter(first_sequence=0, first_timestamp=0)
    out = feed(rewriter, [(10, 0), (13, 9), (11, 3), (13, 9), (12, 6), (10, 0)])
    assert out == [(0, 0), (3, 9), (1, 3), (3, 9), (2, 6), (0, 0)]
    assert (rewriter.last_sequence, rewriter.last_timestamp) == (3, 9)


def test_packets_older_than_the_run_start_are_dropped() -> None:
    rewriter = SequenceRewriter(first_sequence=0, first_timestamp=0)
    feed(rewriter, [(10, 0), (11, 10)])
    rewriter.start_new_run(timestamp_increment=5)
    assert feed(rewriter, [(20, 100), (19, 90), (11, 10), (21, 110)]) == [
        (2, 15),
        None,
        None,
        (3, 25),
    ]


def test_starting_a_run_before_any_packet_keeps_the_first_numbers() -> None:
    rewriter = SequenceRewriter(first_sequence=7, first_timestamp=70)
    rewriter.start_new_run(timestamp_increment=1000)
    assert rewriter.rewrite(3, 3) == (7, 70)


def test_repeated_new_runs_use_the_latest_increment() -> None:
    rewriter = SequenceRewriter(first_sequence=0, first_timestamp=0)
    rewriter.rewrite(1, 1)
    rewriter.start_new_run(timestamp_increment=100)
    rewriter.start_new_run(timestamp_increment=300)
    assert rewriter.rewrite(50, 50) == (1, 300)


@pytest.mark.parametrize("increment", [0, -1, 1 << 31])
def test_implausible_increments_raise(increment: int) -> None:
    with pytest.raises(ValueError, match="increment"):
        SequenceRewriter(0, 0).start_new_run(increment)


@pytest.mark.parametrize(("seq", "ts"), [(-1, 0), (0x10000, 0), (0, -1), (0, 1 << 32)])
def test_first_numbers_must_fit(seq: int, ts: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        SequenceRewriter(seq, ts)


def test_original_sequence_inverts_the_current_run() -> None:
    rewriter = SequenceRewriter(first_sequence=0xFFFF, first_timestamp=0)
    assert rewriter.original_sequence(0xFFFF) is None
    feed(rewriter, [(500, 0), (502, 0)])
    assert [rewriter.original_sequence(s) for s in (0xFFFF, 0, 1, 2, 0xFFFE)] == [
        500,
        501,
        502,
        None,
        None,
    ]
    rewriter.start_new_run(timestamp_increment=1)
    assert rewriter.original_sequence(1) is None
    rewriter.rewrite(9, 0)
    assert (rewriter.original_sequence(2), rewriter.original_sequence(1)) == (9, None)


@st.composite
def runs(draw: st.DrawFn) -> list[tuple[int, list[tuple[int, int]]]]:
    """Runs of (timestamp increment, packets): consecutive inputs from a random start, shuffled."""
    result = []
    for _ in range(draw(st.integers(1, 5))):
        start_seq, start_ts = draw(u16), draw(u32)
        count = draw(st.integers(1, 40))
        packets = [
            ((start_seq + i) & 0xFFFF, (start_ts + 3000 * i) & 0xFFFFFFFF) for i in range(count)
        ]
        order = [0, *draw(st.permutations(range(1, count)))]
        duplicates = draw(st.lists(st.sampled_from(range(count)), max_size=5))
        result.append((draw(st.integers(1, 1 << 20)), [packets[i] for i in [*order, *duplicates]]))
    return result


@PROPERTY_SETTINGS
@given(u16, u32, runs())
def test_output_numbering_is_continuous_across_runs(
    first_seq: int, first_ts: int, all_runs: list[tuple[int, list[tuple[int, int]]]]
) -> None:
    rewriter = SequenceRewriter(first_seq, first_ts)
    expected_seq, expected_ts = first_seq, first_ts
    for increment, packets in all_runs:
        mapping: dict[int, tuple[int, int]] = {}
        run_start_seq, run_start_ts = packets[0]
        for seq, ts in packets:
            out = rewriter.rewrite(seq, ts)
            assert out is not None
            assert mapping.setdefault(seq, out) == out
            assert out == (
                (expected_seq + ((seq - run_start_seq) & 0xFFFF)) & 0xFFFF,
                (expected_ts + ts - run_start_ts) & 0xFFFFFFFF,
            )
            assert rewriter.original_sequence(out[0]) == seq
        assert len(mapping) == len(set(mapping.values()))
        newest = max(mapping, key=lambda s: (s - run_start_seq) & 0xFFFF)
        assert (rewriter.last_sequence, rewriter.last_timestamp) == mapping[newest]
        rewriter.start_new_run(increment)
        expected_seq = (mapping[newest][0] + 1) & 0xFFFF
        expected_ts = (mapping[newest][1] + increment) & 0xFFFFFFFF


# --- PacketCache ---------------------------------------------------------------------


def test_cache_answers_the_last_512_packets() -> None:
    cache = PacketCache()
    assert cache.get(0) is None
    for seq in range(1000):
        cache.put(seq, bytes([seq & 0xFF]))
    assert cache.get(999) == bytes([999 & 0xFF])
    assert cache.get(488) == bytes([488 & 0xFF])
    assert cache.get(487) is None
    assert cache.get(1000) is None


def test_cache_wraps_with_sequence_numbers() -> None:
    cache = PacketCache(size=8)
    for i in range(10):
        cache.put((0xFFFB + i) & 0xFFFF, bytearray([i]))
    assert [cache.get(s) for s in (0xFFFC, 0xFFFD, 0xFFFF, 0, 4, 5)] == [
        None,
        bytearray([2]),
        bytearray([4]),
        bytearray([5]),
        bytearray([9]),
        None,
    ]


def test_cache_skips_slots_never_refilled_after_a_gap() -> None:
    cache = PacketCache(size=8)
    cache.put(1, b"one")
    cache.put(9, b"nine")  # same slot as 1
    cache.put(3, b"three")  # late and older than 9, still inside the window
    assert (cache.get(1), cache.get(9), cache.get(3)) == (None, b"nine", b"three")
    cache.put(20, b"twenty")
    assert (cache.get(9), cache.get(3)) == (None, None)  # older than the newest 8


def test_cache_keeps_the_packet_it_was_given() -> None:
    cache = PacketCache(size=4)
    packet = bytearray(b"abc")
    cache.put(1, packet)
    assert cache.get(1) is packet


@pytest.mark.parametrize("size", [0, 3, 100, 1 << 17])
def test_cache_size_must_be_a_power_of_two_up_to_65536(size: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        PacketCache(size)


def test_cache_rejects_impossible_sequence_numbers() -> None:
    with pytest.raises(ValueError, match="outside"):
        PacketCache().put(0x10000, b"")
