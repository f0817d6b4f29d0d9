"""The VP8 RTP payload descriptor (RFC 7741 §4.2) and keyframe detection.

The SFU reads it straight from the packet buffer to tell where a keyframe
starts (forwarding resumes there after a gate reopens) and which frames no
other frame references.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """The fields of one descriptor; `size` is where the VP8 payload starts."""

    non_reference: bool
    start_of_partition: bool
    partition_id: int
    picture_id: int | None
    long_picture_id: bool
    tl0_pic_idx: int | None
    temporal_id: int | None
    layer_sync: bool | None
    key_index: int | None
    size: int

    @property
    def starts_frame(self) -> bool:
        """True on the first packet of a frame (S=1 and partition 0)."""
        return self.start_of_partition and self.partition_id == 0


def parse_vp8_descriptor(
    buf: bytes | bytearray, start: int = 0, end: int | None = None
) -> Vp8Descriptor:
    """Parse the descriptor of the payload `buf[start:end]` without copying it.

    Raises `ValueError` when a field it announces is missing or no payload
    byte follows it.
    """
    if end is None:
        end = len(buf)
    if not 0 <= start <= end <= len(buf):
        raise ValueError(f"payload bounds {start}..{end} are outside the buffer")
    if start == end:
        raise ValueError("VP8 payload is empty")
    first = buf[start]
    pos = start + 1
    picture_id = tl0_pic_idx = temporal_id = key_index = None
    long_picture_id = False
    layer_sync = None
    if first & 0x80:
        if pos == end:
            raise ValueError("VP8 descriptor announces extension bits that are missing")
        extension = buf[pos]
        pos += 1
        if extension & 0x80:
            if pos == end:
                raise ValueError("VP8 descriptor announces a PictureID that is missing")
            long_picture_id = bool(buf[pos] & 0x80)
            if long_picture_id:
                if pos + 2 > end:
                    raise ValueError("VP8 descriptor's 15-bit PictureID is truncated")
                picture_id = ((buf[pos] & 0x7F) << 8) | buf[pos + 1]
                pos += 2
            else:
                picture_id = buf[pos]
                pos += 1
        if extension & 0x40:
            if pos == end:
                raise ValueError("VP8 descriptor announces a TL0PICIDX that is missing")
            tl0_pic_idx = buf[pos]
            pos += 1
        if extension & 0x30:
            if pos == end:
                raise ValueError("VP8 descriptor announces a TID/KEYIDX byte that is missing")
            if extension & 0x20:
                temporal_id = buf[pos] >> 6
                layer_sync = bool(buf[pos] & 0x20)
            if extension & 0x10:
                key_index = buf[pos] & 0x1F
            pos += 1
    if pos == end:
        raise ValueError("VP8 payload has a descriptor but no data")
    return Vp8Descriptor(
        non_reference=bool(first & 0x20),
        start_of_partition=bool(first & 0x10),
        partition_id=first & 0x07,
        picture_id=picture_id,
        long_picture_id=long_picture_id,
        tl0_pic_idx=tl0_pic_idx,
        temporal_id=temporal_id,
        layer_sync=layer_sync,
        key_index=key_index,
        size=pos - start,
    )


def is_vp8_keyframe(buf: bytes | bytearray, start: int = 0, end: int | None = None) -> bool:
    """True if the payload `buf[start:end]` is the first packet of a keyframe.

    That is the start of partition 0 whose VP8 payload header has the inverse
    key frame flag P (bit 0 of its first byte) cleared.
    """
    descriptor = parse_vp8_descriptor(buf, start, end)
    return descriptor.starts_frame and not buf[start + descriptor.size] & 0x01
