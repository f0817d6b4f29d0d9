"""Running the ASGI app with uvicorn: bind first, bound header reads, drain on SIGTERM.

- The listening socket is bound before anything is printed, so a port in use
  is one clear error (`PortInUse`), not a traceback after "Podium on ...".
- Each request's headers must arrive within `header_timeout_s` (uvicorn only
  bounds idle keep-alive connections): clients trickling half-sent requests
  cannot hold sockets for ever.
- SIGTERM (or Ctrl-C) drains: no new connections, WebSockets closed (1012),
  requests in flight given `DRAIN_S`, then the app shuts down within its own
  budgets. A second signal exits at once: what was committed is already safe.
- `--workers N` (N > 1): this process supervises N copies of `podium serve`,
  each binding its own socket with SO_REUSEPORT so the kernel spreads
  connections over them (no shared accept socket: one worker's stall holds up
  only its own connections). A worker that dies is restarted after a backoff;
  one that keeps dying right after its start stops the server. Signals are
  forwarded, so the workers drain as one server would. Each worker answers
  with an `X-Podium-Worker: <index>` header.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from podium.api.frames import FramingProtocol
from podium.config import Settings, WorkerSlot

log = logging.getLogger("podium.serve")

#: How long SIGTERM waits for requests and WebSockets in flight before the app shuts down.
DRAIN_S = 2
#: The environment variable telling a `podium serve` process which worker it is ("i/n/group").
WORKER_ENV = "PODIUM_WORKER_SLOT"
#: Restart backoff of a dead worker: doubled per death in a row, up to the maximum.
FIRST_RESTART_S = 0.5
MAX_RESTART_S = 10.0
#: A worker dying sooner than this after its start died "at once"; that many times in a
#: row means it cannot start (a database it cannot reach, a port taken): the server stops.
QUICK_DEATH_S = 10.0
MAX_QUICK_DEATHS = 5
#: How long the supervisor waits for drained workers to exit before it kills them.
STOP_TIMEOUT_S = 30.0
_PR_SET_PDEATHSIG = 1


class PortInUse(OSError):
    """The address to listen on is taken (or not ours to take)."""


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A socket bound to (host, port), ready for uvicorn; `PortInUse` when it cannot be.

    `reuse_port` lets the workers of one server each bind the port (SO_REUSEPORT).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise PortInUse(f"cannot listen on {host}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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
        # CPU than it saves. The sans-io protocol, with frames built once per event
        # and written without a task switch (api/frames.py).
        ws=FramingProtocol,
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        ws_max_size=settings.limits.ws_frame_bytes,
        timeout_graceful_shutdown=DRAIN_S,
        headers=[]
        if settings.worker is None
        else [("X-Podium-Worker", str(settings.worker.index))],
    )
    _Server(config).run(sockets=[sock])


def worker_slot(env: Mapping[str, str]) -> WorkerSlot | None:
    """Which worker this process is, from `WORKER_ENV` (None: not a worker)."""
    text = env.get(WORKER_ENV)
    if not text:
        return None
    index, count, group = text.split("/", 2)
    return WorkerSlot(int(index), int(count), group)


def worker_env(slot: WorkerSlot) -> str:
    return f"{slot.index}/{slot.count}/{slot.group}"


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None


class Supervisor:
    """Runs `count` worker processes until a signal, restarting those that die.

    `spawn(index)` starts worker `index`. Workers run in sessions of their own,
    so a terminal's Ctrl-C reaches this process only, and it forwards one
    SIGTERM per signal received: the first drains, a second exits at once, as
    with a single server. A worker is sent SIGTERM if this process dies.
    """

    def __init__(self, count: int, spawn: Callable[[int], subprocess.Popen[bytes]]) -> None:
        self.spawn = spawn
        self.workers = [_Worker(index) for index in range(count)]
        self.stopping_since: float | None = None
        self.failed = False

    def run(self) -> int:
        """Supervise until every worker exited after a signal; 0, or 1 if a worker cannot start."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        for worker in self.workers:
            self._start(worker)
        while True:
            now = time.monotonic()
            alive = [w for w in self.workers if w.proc is not None and w.proc.poll() is None]
            if self.stopping_since is not None:
                if not alive:
                    return 1 if self.failed else 0
                if now - self.stopping_since > STOP_TIMEOUT_S:
                    log.warning("%d worker(s) still running: killing them", len(alive))
                    self._signal_all(signal.SIGKILL)
            else:
                for worker in self.workers:
                    self._look_after(worker, now)
            time.sleep(0.05)

    def _start(self, worker: _Worker) -> None:
        worker.proc = self.spawn(worker.index)
        worker.started = time.monotonic()
        worker.restart_at = None

    def _look_after(self, worker: _Worker, now: float) -> None:
        """Restart a dead worker once its backoff is over; give up on one that cannot start."""
        if worker.restart_at is not None:
            if now >= worker.restart_at:
                self._start(worker)
            return
        if worker.proc is None or (code := worker.proc.poll()) is None:
            return
        lived = now - worker.started
        worker.quick_deaths = worker.quick_deaths + 1 if lived < QUICK_DEATH_S else 0
        if worker.quick_deaths >= MAX_QUICK_DEATHS:
            log.error(
                "worker %d exited %d times in a row within %.0f s of starting: stopping the server",
                worker.index,
                worker.quick_deaths,
                QUICK_DEATH_S,
            )
            self.failed = True
            self._stop()
            return
        delay = min(FIRST_RESTART_S * 2 ** max(worker.quick_deaths - 1, 0), MAX_RESTART_S)
        log.warning(
            "worker %d (pid %d) exited with %s after %.1f s; restarting it in %.1f s",
            worker.index,
            worker.proc.pid,
            code,
            lived,
            delay,
        )
        worker.restart_at = now + delay

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.stopping_since is None:
            self._stop()
        else:
            log.warning("second signal: the workers exit now")
            self._signal_all(signal.SIGTERM)

    def _stop(self) -> None:
        self.stopping_since = time.monotonic()
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, sig: int) -> None:
        for worker in self.workers:
            if worker.proc is not None and worker.proc.poll() is None:
                worker.proc.send_signal(sig)


def spawn_worker(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start a worker in its own session, sent SIGTERM when this process dies."""
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def bind_to_parent() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return subprocess.Popen(argv, env=dict(env), start_new_session=True, preexec_fn=bind_to_parent)
