"""Writing one event to thousands of WebSockets: frame it once, write the same bytes to each.

Through ASGI, every frame to every connection is a coroutine chain (Starlette,
then uvicorn, then the websockets protocol builds the frame) behind a writer
task that must wake up. For a stage event reaching 10,000 listeners that is
most of the server's work. Server-to-client frames are not masked, so the
bytes of one text frame are the same for every connection: `framed` builds
them once per message (the hub sends one `str` object to every recipient),
and `FrameWriter` writes them straight to the connection's transport.

Writes go through the loop's `Outbox` rather than straight to the socket,
for two reasons measured at 10,000 listeners:

- one stage change is several events (the member record, the move, the
  count), and each `write` to a socket is a system call; frames queued for a
  connection in one loop iteration leave in one `write`, so a commit costs
  one system call per connection, not one per event;
- a broadcast to every watcher takes a large part of a second to write;
  written in slices of `SLICE` connections, one loop iteration each, it no
  longer holds up requests, and frames marked prompt (those for a user or
  for moderators: the requester's new capabilities, a request reaching the
  host) are written before the rest of a broadcast. A connection keeps its
  frames in the order they were sent, whichever queue it waits in.

`FramingProtocol` is uvicorn's sans-io WebSocket protocol that puts a
`FrameWriter` in each connection's ASGI scope under `EXTENSION`; the
WebSocket endpoint uses it when present and falls back to ASGI sends under
any other server. Only complete text frames are written this way, and never
after a close was sent, so the websockets protocol state stays right.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode

#: The ASGI scope extension holding the connection's `FrameWriter`.
EXTENSION = "podium.frames"
#: Connections written per loop iteration while a broadcast drains (about 1 ms of writes).
SLICE = 64
#: The close code for a client too far behind.
CLOSE_TOO_SLOW = 4008

_last: tuple[str | None, bytes] = (None, b"")


def framed(text: str) -> bytes:
    """The WebSocket text frame of `text`; the frame of the last text asked for is reused."""
    global _last
    if _last[0] is not text:
        _last = (text, Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[]))
    return _last[1]


class Outbox:
    """The frames waiting to be written on one event loop, by connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, slice_size: int = SLICE) -> None:
        self._loop = loop
        self._slice = slice_size
        self._prompt: OrderedDict[FrameWriter, None] = OrderedDict()
        self._bulk: OrderedDict[FrameWriter, None] = OrderedDict()
        self._scheduled = False

    def __len__(self) -> int:
        """Connections with frames waiting."""
        return len(self._prompt) + len(self._bulk)

    def put(self, writer: FrameWriter, prompt: bool) -> None:
        """Queue `writer`, which has frames waiting (prompt: in this iteration's drain)."""
        if prompt:
            if writer not in self._prompt:
                self._bulk.pop(writer, None)
                self._prompt[writer] = None
        elif writer not in self._prompt and writer not in self._bulk:
            self._bulk[writer] = None
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._drain)

    def flush(self, writer: FrameWriter) -> None:
        """Write `writer`'s waiting frames now (before it closes)."""
        self._prompt.pop(writer, None)
        self._bulk.pop(writer, None)
        writer.flush()

    def _drain(self) -> None:
        """Every prompt connection, then one slice of the rest; again next iteration if needed."""
        self._scheduled = False
        prompt, bulk = self._prompt, self._bulk
        try:
            while prompt:
                prompt.popitem(last=False)[0].flush()
            for _ in range(min(self._slice, len(bulk))):
                bulk.popitem(last=False)[0].flush()
        finally:
            if (prompt or bulk) and not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self._drain)


_outboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Outbox] = (
    weakref.WeakKeyDictionary()
)


def outbox_of(loop: asyncio.AbstractEventLoop) -> Outbox:
    """The loop's one outbox (one per loop, so a broadcast drains in one sequence)."""
    box = _outboxes.get(loop)
    if box is None:
        box = _outboxes[loop] = Outbox(loop)
    return box


class FrameWriter:
    """Writes ready-made frames to one connection's transport, through the loop's outbox.

    Frames are waiting exactly while the writer is queued in the outbox, so a
    frame after the first of an iteration costs one list append. Whether the
    connection can take them is judged when they are written: `on_close` is
    told when it is closing (1006) or more than `max_unsent` bytes behind (4008).
    """

    def __init__(self, protocol: WebSocketsSansIOProtocol, outbox: Outbox) -> None:
        self._protocol = protocol
        self._outbox = outbox
        self.pending: list[bytes] = []
        self.max_unsent = 4 * 1024 * 1024
        self.on_close: Callable[[int, str], None] = _ignore

    def open(self) -> bool:
        """False once a close was sent or the transport is closing: nothing more is written."""
        protocol = self._protocol
        return not (protocol.close_sent or protocol.transport.is_closing())

    def write(self, frame: bytes, *, prompt: bool = True) -> None:
        """Queue `frame`; it is written in this loop iteration's drain (prompt) or a later slice."""
        pending = self.pending
        pending.append(frame)
        if prompt or len(pending) == 1:
            self._outbox.put(self, prompt)

    def flush(self) -> None:
        """Write the waiting frames in one call, unless the connection is closing or too slow."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        if not self.open():
            self.on_close(1006, "")
        elif self.unsent() > self.max_unsent:
            self.on_close(CLOSE_TOO_SLOW, "too slow: too much unread")
        else:
            self._protocol.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close_soon(self) -> None:
        """Write what waits now, ahead of the close frame that follows."""
        self._outbox.flush(self)

    def unsent(self) -> int:
        """Bytes written but not yet taken by the kernel: how far behind the client is."""
        return self._protocol.transport.get_write_buffer_size()


def _ignore(code: int, reason: str) -> None:
    """The default `on_close`: nobody to tell."""


class FramingProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-io protocol, with a `FrameWriter` in each connection's scope."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = FrameWriter(self, outbox_of(self.loop))
