"""Writing one event to thousands of WebSockets: frame it once, write the same bytes to each.

Through ASGI, every frame to every connection is a coroutine chain (Starlette,
then uvicorn, then the websockets protocol builds the frame) behind a writer
task that must wake up. For a stage event reaching 10,000 listeners that is
most of the server's work. Server-to-client frames are not masked, so the
bytes of one text frame are the same for every connection: `framed` builds
them once per message (the hub sends one `str` object to every recipient),
and `FrameWriter` writes them straight to the connection's transport.

`FramingProtocol` is uvicorn's sans-io WebSocket protocol that puts a
`FrameWriter` in each connection's ASGI scope under `EXTENSION`; the
WebSocket endpoint uses it when present and falls back to ASGI sends under
any other server. Only complete text frames are written this way, and never
after a close was sent, so the websockets protocol state stays right.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode

#: The ASGI scope extension holding the connection's `FrameWriter`.
EXTENSION = "podium.frames"

_last: tuple[str | None, bytes] = (None, b"")


def framed(text: str) -> bytes:
    """The WebSocket text frame of `text`; the frame of the last text asked for is reused."""
    global _last
    if _last[0] is not text:
        _last = (text, Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[]))
    return _last[1]


class FrameWriter:
    """Writes ready-made frames to one connection's transport, without a task switch."""

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    def write(self, frame: bytes) -> bool:
        """Write `frame`; False when the connection is closing (nothing is written)."""
        protocol = self._protocol
        if protocol.close_sent or protocol.transport.is_closing():
            return False
        protocol.transport.write(frame)
        return True

    def unsent(self) -> int:
        """Bytes written but not yet taken by the kernel: how far behind the client is."""
        return self._protocol.transport.get_write_buffer_size()


class FramingProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-io protocol, with a `FrameWriter` in each connection's scope."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = FrameWriter(self)
