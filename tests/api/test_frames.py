"""`api.frames`: one text frame built per message, the bytes a websockets client reads back."""

from __future__ import annotations

from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from podium.api.frames import framed


def _parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("the frame was incomplete")


def test_a_frame_reads_back_as_the_text_whatever_its_length() -> None:
    for size in (0, 1, 125, 126, 65_535, 65_536, 200_000):
        text = "é" * (size // 2) + "x" * (size % 2)
        frame = _parse(framed(text))
        assert frame.opcode is Opcode.TEXT and frame.fin
        assert frame.data.decode() == text


def test_the_same_message_is_framed_once() -> None:
    text = "".join(["{", '"type":"call.user_muted"', "}"])
    first = framed(text)
    assert framed(text) is first
    other = "".join(["{", '"type":"call.user_muted"', "}"])
    assert framed(other) == first and framed(other) is not first
