"""`podium.sfu.vp8`: the RFC 7741 payload descriptor and keyframe detection."""

from __future__ import annotations

import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor
from hypothesis import given
from hypothesis import strategies as st

from podium.sfu.rtp import RtpHeaderView
from podium.sfu.vp8 import Vp8Descriptor, is_vp8_keyframe, parse_vp8_descriptor
from tests.sfu import PROPERTY_SETTINGS

# The first 10 bytes of VP8 frames (RFC 6386 §9.1): a keyframe's frame tag has
# bit 0 clear and is followed by the start code and its size (640x480 here).
KEYFRAME_HEADER = bytes.fromhex("d0020 09d012a 8002 e001".replace(" ", ""))
INTERFRAME_HEADER = bytes.fromhex("3105 00 1122334455667788".replace(" ", ""))


def descriptor(**fields: object) -> Vp8Descriptor:
    defaults: dict[str, object] = {
        "non_reference": False,
        "start_of_partition": True,
        "partition_id": 0,
        "picture_id": None,
        "long_picture_id": False,
        "tl0_pic_idx": None,
        "temporal_id": None,
        "layer_sync": None,
        "key_index": None,
        "size": 1,
    }
    return Vp8Descriptor(**{**defaults, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ("10", descriptor()),
        ("00", descriptor(start_of_partition=False)),
        ("30", descriptor(non_reference=True)),
        ("13", descriptor(partition_id=3)),
        ("18", descriptor()),  # the reserved bit before PID is not part of it
        ("8000", descriptor(start_of_partition=False, size=2)),
        ("90 80 7f", descriptor(picture_id=127, size=3)),
        ("90 80 8001", descriptor(picture_id=1, long_picture_id=True, size=4)),
        ("90 80 ffff", descriptor(picture_id=0x7FFF, long_picture_id=True, size=4)),
        ("90 40 17", descriptor(tl0_pic_idx=0x17, size=3)),
        ("90 20 c0", descriptor(temporal_id=3, layer_sync=False, size=3)),
        ("90 10 e3", descriptor(key_index=3, size=3)),
        (
            "b1 f0 8005 17 e3",
            descriptor(
                non_reference=True,
                partition_id=1,
                picture_id=5,
                long_picture_id=True,
                tl0_pic_idx=0x17,
                temporal_id=3,
                layer_sync=True,
                key_index=3,
                size=6,
            ),
        ),
    ],
)
def test_descriptor_fields(head: str, expected: Vp8Descriptor) -> None:
    data = bytes.fromhex(head.replace(" ", "")) + b"\x01payload"
    assert parse_vp8_descriptor(data) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "payload is empty"),
        ("80", "extension bits that are missing"),
        ("90 80", "PictureID that is missing"),
        ("90 80 80", "15-bit PictureID is truncated"),
        ("90 40", "TL0PICIDX that is missing"),
        ("90 c0 01", "TL0PICIDX that is missing"),
        ("90 20", "TID/KEYIDX byte that is missing"),
        ("90 10", "TID/KEYIDX byte that is missing"),
        ("10", "descriptor but no data"),
        ("90 f0 8005 17 e3", "descriptor but no data"),
    ],
)
def test_truncated_descriptors_raise(data: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_vp8_descriptor(bytes.fromhex(data.replace(" ", "")))


@pytest.mark.parametrize(
    ("payload", "keyframe"),
    [
        # As Chrome and aiortc send them: X=1 with a 15-bit PictureID.
        (bytes.fromhex("90808001") + KEYFRAME_HEADER, True),
        (bytes.fromhex("90808002") + INTERFRAME_HEADER, False),
        # The rest of the same keyframe: not a start of partition 0.
        (bytes.fromhex("80808001") + b"\x00" * 20, False),
        (bytes.fromhex("91808001") + KEYFRAME_HEADER, False),
        # The smallest descriptor.
        (b"\x10" + KEYFRAME_HEADER, True),
        (b"\x10" + INTERFRAME_HEADER, False),
        (b"\x30" + KEYFRAME_HEADER, True),
    ],
)
def test_keyframes_are_told_apart(payload: bytes, keyframe: bool) -> None:
    assert is_vp8_keyframe(payload) is keyframe


def test_reads_inside_an_rtp_packet_without_copying() -> None:
    header = bytes.fromhex("a0e0000100000002 00000003".replace(" ", ""))
    packet = bytearray(header + b"\x10" + KEYFRAME_HEADER + b"\x00\x00\x03")
    view = RtpHeaderView(packet)
    assert is_vp8_keyframe(packet, view.payload_offset, view.payload_end)
    assert parse_vp8_descriptor(packet, view.payload_offset, view.payload_end).starts_frame


def test_the_end_bound_is_respected() -> None:
    data = b"\x90\x80\x80\x01" + KEYFRAME_HEADER
    with pytest.raises(ValueError, match="15-bit PictureID is truncated"):
        parse_vp8_descriptor(data, 0, 3)
    with pytest.raises(ValueError, match="no data"):
        parse_vp8_descriptor(data, 0, 4)
    assert parse_vp8_descriptor(data, 0, 5).size == 4


@pytest.mark.parametrize(("start", "end"), [(-1, 3), (3, 2), (0, 99)])
def test_impossible_bounds_raise(start: int, end: int) -> None:
    with pytest.raises(ValueError, match="outside the buffer"):
        parse_vp8_descriptor(b"\x10\x00\x00", start, end)


def same_as_aiortc(ours: Vp8Descriptor, theirs: VpxPayloadDescriptor) -> None:
    assert ours.start_of_partition == bool(theirs.partition_start)
    assert ours.partition_id == theirs.partition_id & 0x07
    assert ours.picture_id == theirs.picture_id
    assert ours.tl0_pic_idx == theirs.tl0picidx
    tid = None if ours.temporal_id is None else (ours.temporal_id, int(bool(ours.layer_sync)))
    assert tid == theirs.tid
    assert ours.key_index == theirs.keyidx


@PROPERTY_SETTINGS
@given(
    st.integers(0, 1),
    st.integers(0, 7),
    st.none() | st.integers(0, 0x7FFF),
    st.none() | st.integers(0, 255),
    st.none() | st.tuples(st.integers(0, 3), st.integers(0, 1)),
    st.none() | st.integers(0, 31),
    st.binary(min_size=1, max_size=20),
)
def test_reads_what_aiortc_writes(
    start: int,
    partition: int,
    picture_id: int | None,
    tl0: int | None,
    tid: tuple[int, int] | None,
    keyidx: int | None,
    payload: bytes,
) -> None:
    theirs = VpxPayloadDescriptor(start, partition, picture_id, tl0, tid, keyidx)
    head = bytes(theirs)
    ours = parse_vp8_descriptor(head + payload)
    same_as_aiortc(ours, theirs)
    assert ours.size == len(head)
    assert is_vp8_keyframe(head + payload) == (start == 1 and partition == 0 and not payload[0] & 1)


@PROPERTY_SETTINGS
@given(st.binary(max_size=12))
def test_agrees_with_aiortc_on_any_bytes(data: bytes) -> None:
    try:
        theirs, rest = VpxPayloadDescriptor.parse(data)
    except ValueError:
        with pytest.raises(ValueError):
            parse_vp8_descriptor(data)
        return
    if not rest:  # aiortc accepts a descriptor with no payload after it
        with pytest.raises(ValueError, match="no data"):
            parse_vp8_descriptor(data)
        return
    ours = parse_vp8_descriptor(data)
    same_as_aiortc(ours, theirs)
    assert data[ours.size :] == rest


def test_aiortc_reads_the_reserved_bit_into_the_partition_id() -> None:
    """RFC 7741 gives PID 3 bits; aiortc 1.16.0 reads 4, taking in the reserved bit."""
    theirs, _ = VpxPayloadDescriptor.parse(b"\x18\x00")
    assert (theirs.partition_id, parse_vp8_descriptor(b"\x18\x00").partition_id) == (8, 0)
