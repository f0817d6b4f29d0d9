"""Running the ASGI app with uvicorn: bind first, bound header reads, drain on SIGTERM.

- The listening socket is bound before anything is printed, so a port in use
  is one clear error (`PortInUse`), not a traceback after "Podium on ...".
- Each request's headers must arrive within `header_timeout_s` (uvicorn only
  bounds idle keep-alive connections): clients trickling half-sent requests
  cannot hold sockets for ever.
- SIGTERM (or Ctrl-C) drains: no new connections, WebSockets closed (1012),
  requests in flight given `DRAIN_S`, then the app shuts down within its own
  budgets. A second signal exits at once: what was committed is already safe.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from podium.config import Settings

log = logging.getLogger("podium.serve")

#: How long SIGTERM waits for requests and WebSockets in flight before the app shuts down.
DRAIN_S = 2


class PortInUse(OSError):
    """The address to listen on is taken (or not ours to take)."""


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), ready for uvicorn; `PortInUse` when it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise PortInUse(f"cannot listen on {host}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def header_timeout_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, closing a connection whose headers take over `timeout_s`."""

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(timeout_s, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            log.warning("second signal: exiting now")
            os._exit(128 + sig)
        super().handle_exit(sig, frame)


def serve(app: Any, settings: Settings, sock: socket.socket) -> None:
    """Serve `app` on the bound `sock` until a signal ends it."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        http=header_timeout_protocol(settings.limits.header_timeout_s),
        # Event frames are small JSON: deflating each one per connection costs more
        # CPU than it saves. The sans-io protocol writes frames without a task switch.
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        ws_max_size=settings.limits.ws_frame_bytes,
        timeout_graceful_shutdown=DRAIN_S,
    )
    _Server(config).run(sockets=[sock])
