"""`api.frames`: one text frame built per message, the bytes a websockets client reads back,
and the outbox that writes a loop iteration's frames for a connection in one write."""

from __future__ import annotations

import asyncio

from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from podium.api.frames import CLOSE_TOO_SLOW, FrameWriter, Outbox, framed


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


class _Transport:
    """A socket's transport, recording each write (what the outbox hands the kernel)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False
        self.unread = 0

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.unread


class _Protocol:
    def __init__(self) -> None:
        self.transport = _Transport()
        self.close_sent = False


def _writers(box: Outbox, n: int) -> list[tuple[FrameWriter, _Transport]]:
    made = []
    for _ in range(n):
        protocol = _Protocol()
        made.append((FrameWriter(protocol, box), protocol.transport))  # type: ignore[arg-type]
    return made


async def _iterations(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_frames_sent_in_one_loop_iteration_leave_in_one_write_in_order() -> None:
    box = Outbox(asyncio.get_running_loop())
    [(writer, transport)] = _writers(box, 1)
    for text in ("a", "b", "c"):
        writer.write(framed(text), prompt=False)
    assert transport.writes == []
    await _iterations(1)
    assert transport.writes == [framed("a") + framed("b") + framed("c")]


async def test_a_broadcast_drains_in_slices_and_prompt_frames_overtake_it() -> None:
    box = Outbox(asyncio.get_running_loop(), slice_size=10)
    conns = _writers(box, 35)
    for writer, _ in conns:
        writer.write(b"broadcast", prompt=False)
    await _iterations(1)
    assert [len(t.writes) for _, t in conns] == [1] * 10 + [0] * 25
    last, last_transport = conns[-1]
    last.write(b"for you", prompt=True)
    await _iterations(1)
    assert last_transport.writes == [b"broadcast" + b"for you"]
    assert sum(len(t.writes) for _, t in conns) == 21
    await _iterations(3)
    assert all(t.writes for _, t in conns) and len(box) == 0
    assert sum(len(t.writes) for _, t in conns) == 35


async def test_nothing_is_written_once_closing_and_close_soon_writes_what_waits() -> None:
    box = Outbox(asyncio.get_running_loop())
    (closing, closing_transport), (leaving, leaving_transport) = _writers(box, 2)
    told: list[tuple[int, str]] = []
    closing.on_close = lambda code, reason: told.append((code, reason))
    closing.write(b"late", prompt=False)
    closing_transport.closing = True
    assert not closing.open()
    leaving.write(b"last words", prompt=False)
    leaving.close_soon()
    assert leaving_transport.writes == [b"last words"]
    await _iterations(2)
    assert closing_transport.writes == [] and leaving_transport.writes == [b"last words"]
    assert told == [(1006, "")]


async def test_a_client_too_far_behind_is_told_4008_and_gets_nothing_more() -> None:
    box = Outbox(asyncio.get_running_loop())
    [(writer, transport)] = _writers(box, 1)
    told: list[int] = []
    writer.on_close = lambda code, reason: told.append(code)
    writer.max_unsent = 100
    transport.unread = 101
    writer.write(b"more", prompt=True)
    await _iterations(1)
    assert transport.writes == [] and told == [CLOSE_TOO_SLOW]
