"""`podium bot`: a participant that asks to speak, waits for the host, then plays media.

It joins a call through the SDK, requests the capabilities it was given
(`send-audio`, `send-video`, `screenshare`) that it does not hold, and
publishes each source as soon as its capability is there: a file played with
aiortc's `MediaPlayer` (`--play`, reopened whenever it ends, so it loops), or
a generated 440 Hz tone (audio) and a moving test pattern (video). A source the
host stops (revoked, muted) stays stopped until the SFU says it may resume
(`media.source_resumed`); then it is published again. It prints one status
line per step and leaves cleanly on Ctrl-C, SIGTERM or after `duration_s`.

When it cannot go on (the server is unreachable, refuses the token, answers
as no Podium server does, or goes away while the bot runs) it prints one line
to stderr, `podium bot: ...`, and exits with code 1. The SDK reconnects its
event connection by itself, but the bot's media session does not outlive the
server: the bot gives up once that connection has been down `LOST_AFTER_S`.

Its peer connection follows the SDK: `PODIUM_MEDIA_LOOPBACK=1` keeps it on
127.0.0.1 (tests and one-machine setups).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import signal
import socket
import sys
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import av
import httpx
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import (
    AudioStreamTrack,
    MediaStreamError,
    MediaStreamTrack,
    VideoStreamTrack,
)
from av import AudioFrame, VideoFrame
from rich.console import Console

from podium.client import (
    Call,
    Client,
    PodiumAPIError,
    PodiumConnectionError,
    PodiumError,
    PublishDeniedError,
)
from podium.protocol.events import EventType
from podium.protocol.ids import parse_call_cid

#: The source each publishing capability lets the bot send.
SOURCE_OF: Final = {"send-audio": "microphone", "send-video": "camera", "screenshare": "screen"}
KIND_OF: Final = {"microphone": "audio", "camera": "video", "screen": "video"}
#: Publishing right after a grant can cross the SFU's own update: retry this often.
PUBLISH_RETRY_S: Final = 0.25
PUBLISH_ATTEMPTS: Final = 20
TONE_HZ: Final = 440.0
_RATE: Final = 48000
_SAMPLES: Final = 960  # 20 ms
_WIDTH, _HEIGHT = 320, 240
#: The SDK reconnects a dropped event connection; down this long, the server is taken as gone.
LOST_AFTER_S: Final = 5.0
_CONNECTION_CHECK_S: Final = 0.5
#: The bound of the `/healthz` probe that finds out why the server is gone.
_PROBE_TIMEOUT_S: Final = 3.0
#: `media.closed` reasons of the network rather than of a host: the bot fails on them.
MEDIA_FAILURES: Final = frozenset({"connection_failed", "lost"})
DEV_TOKEN_STEP: Final = "getting a dev token"


@dataclass(frozen=True)
class BotConfig:
    server: str
    call_type: str
    call_id: str
    user: str
    request: tuple[str, ...] = ("send-audio",)
    name: str | None = None
    token: str | None = None
    play: Path | None = None
    duration_s: float | None = None

    def __post_init__(self) -> None:
        check_server(self.server)
        unknown = [c for c in self.request if c not in SOURCE_OF]
        if unknown or not self.request:
            raise ValueError(f"--request takes {', '.join(SOURCE_OF)}; got {list(self.request)}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("--duration must be positive")


def check_server(url: str) -> None:
    """Refuse a `--server` that is no http(s) URL before anything is sent to it."""
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port out of range, unbalanced brackets
        usable = False
    if not usable:
        raise ValueError(f"--server must be an http:// or https:// URL, got {url!r}")


class BotFailure(Exception):
    """The bot cannot go on; the message is the line it prints before exiting with 1."""


def describe(exc: BaseException, server: str, doing: str) -> str:
    """One line saying why the bot failed while `doing` something against `server`."""
    if isinstance(exc, httpx.InvalidURL):
        return f"invalid --server URL {server!r} ({exc})"
    if isinstance(exc, httpx.TransportError):
        return f"cannot reach {server} ({network_reason(exc)})"
    if isinstance(exc, PodiumAPIError):
        if exc.status == 401:
            return f"the server refused the token ({exc.code}: {exc.message})"
        if exc.code in ("http_error", "invalid_response"):
            return f"{server} does not answer as a Podium server does (HTTP {exc.status})"
        if doing == DEV_TOKEN_STEP and exc.status in (404, 405):
            return (
                f"{server} gives no dev tokens: start it with `podium serve --dev`, or pass --token"
            )
    if isinstance(exc, PodiumConnectionError):
        return f"cannot reach {server} ({exc})"
    if isinstance(exc, TimeoutError):
        return f"{doing}: timed out"
    return f"{doing}: {_one_line(exc)}"


def network_reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words: `connection refused`, `timed out`, ..."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return "host name not found"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, TimeoutError):
            return "timed out"
    return _one_line(exc)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps: httpx keeps the socket error in causes, args or groups."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo.extend(c for c in (current.__cause__, current.__context__) if c is not None)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def parse_call(value: str) -> tuple[str, str]:
    """`TYPE:ID` → `(type, id)`."""
    try:
        return parse_call_cid(value)
    except ValueError:
        raise ValueError(f"--call must be TYPE:ID, got {value!r}") from None


def file_kinds(path: Path) -> frozenset[str]:
    """The kinds of media (`audio`, `video`) in a file; raises if it cannot be read."""
    with av.open(str(path)) as container:
        return frozenset(s.type for s in container.streams if s.type in ("audio", "video"))


class ToneTrack(AudioStreamTrack):
    """A mono sine at 48 kHz, paced in real time."""

    def __init__(self, frequency: float = TONE_HZ) -> None:
        super().__init__()
        self.frequency = frequency
        self._first: float | None = None
        self._pts = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._first is None:
            self._first = time.monotonic()
        else:
            self._pts += _SAMPLES
            await asyncio.sleep(max(0.0, self._first + self._pts / _RATE - time.monotonic()))
        step = 2 * math.pi * self.frequency / _RATE
        samples = array(
            "h", (round(8000 * math.sin(step * (self._pts + i))) for i in range(_SAMPLES))
        )
        frame = AudioFrame(format="s16", layout="mono", samples=_SAMPLES)
        frame.planes[0].update(samples.tobytes())
        frame.pts = self._pts
        frame.sample_rate = _RATE
        frame.time_base = fractions.Fraction(1, _RATE)
        return frame


class PatternTrack(VideoStreamTrack):
    """A grey ramp sliding sideways, 320x240 at aiortc's 30 fps pacing."""

    _RAMP = bytes(range(256)) * 4

    def __init__(self) -> None:
        super().__init__()
        self._shift = 0

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=_WIDTH, height=_HEIGHT, format="yuv420p")
        self._shift = (self._shift + 4) % 256
        luma, *chroma = frame.planes
        luma.update(self._RAMP[self._shift : self._shift + luma.line_size] * luma.height)
        for plane in chroma:
            plane.update(bytes([128]) * (plane.line_size * plane.height))
        frame.pts = pts
        frame.time_base = time_base
        return frame


def file_track(path: Path, kind: str) -> MediaStreamTrack | None:
    """The `kind` track of a fresh `MediaPlayer` of `path` (None if the file has none).

    The player decodes every stream of the file; its other track is read and
    dropped (frames nobody reads would pile up) until the chosen one ends.
    """
    player = MediaPlayer(str(path))
    chosen, other = (
        (player.audio, player.video) if kind == "audio" else (player.video, player.audio)
    )
    if chosen is None:
        if other is not None:
            other.stop()
        return None
    if other is not None:
        drain = asyncio.get_running_loop().create_task(_drain(other))

        def stop_other() -> None:
            drain.cancel()
            other.stop()

        chosen.on("ended", stop_other)
    return chosen


async def _drain(track: MediaStreamTrack) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


@dataclass
class Bot:
    """One run of `podium bot`; `await run()` returns 0, or raises what ended it."""

    config: BotConfig
    console: Console = field(default_factory=Console)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    halted: dict[str, str] = field(default_factory=dict)
    """Sources the host stopped, and why; published again only after `source_resumed`."""
    allowed: set[str] = field(default_factory=set)
    file_kinds: frozenset[str] = frozenset()
    doing: str = "starting"
    """The step under way, named when it fails."""
    failure: BotFailure | None = None
    """Why the bot stopped on its own: the server or the media connection went away."""
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _attempts: dict[str, int] = field(default_factory=dict)
    _replaying: set[str] = field(default_factory=set)

    def finish(self) -> None:
        """Leave the call and end `run()`."""
        self.stop.set()
        self._wake.set()

    def fail(self, message: str) -> None:
        """Stop; `run()` then raises `BotFailure(message)`."""
        if self.failure is None:
            self.failure = BotFailure(message)
        self.finish()

    def status(self, what: str, detail: str = "") -> None:
        stamp = time.strftime("%H:%M:%S")
        self.console.print(
            f"[dim]{stamp}[/dim] [bold]{what}[/bold]{' ' + detail if detail else ''}"
        )

    async def run(self) -> int:
        config = self.config
        if config.play is not None:
            self.doing = f"reading {config.play}"
            self.file_kinds = file_kinds(config.play)
            kinds = ", ".join(sorted(self.file_kinds)) or "no audio or video"
            self.status("file", f"{config.play} ({kinds})")
        token = config.token
        if token is None:
            self.doing = DEV_TOKEN_STEP
            token = await Client.dev_token(config.server, config.user, config.name)
        async with Client(config.server, token) as client:
            call = client.call(config.call_type, config.call_id)
            self.doing = f"joining {call.cid}"
            await call.join()
            self.status("joined", f"{call.cid} as {config.user}")
            watchdog = asyncio.create_task(self._watch_connection(client), name="bot-watchdog")
            try:
                await self._live(call)
            except BaseException:
                with contextlib.suppress(PodiumError, httpx.HTTPError, TimeoutError):
                    await self._leave(client, call)
                raise
            finally:
                watchdog.cancel()
                await asyncio.gather(watchdog, return_exceptions=True)
            await self._leave(client, call)
        if self.failure is not None:
            raise self.failure
        return 0

    async def _leave(self, client: Client, call: Call) -> None:
        if not client.events.connected:
            return  # the server is gone: there is nobody to tell
        self.doing = f"leaving {call.cid}"
        await asyncio.wait_for(call.leave(), 10)
        self.status("left", call.cid)

    async def _watch_connection(self, client: Client) -> None:
        """Fail once the event connection has been down `LOST_AFTER_S`: the server went away."""
        down_since: float | None = None
        while True:
            await asyncio.sleep(_CONNECTION_CHECK_S)
            now = time.monotonic()
            if client.events.connected:
                down_since = None
            elif down_since is None:
                down_since = now
            elif now - down_since >= LOST_AFTER_S:
                reason = await why_gone(self.config.server)
                self.fail(f"lost the connection to {self.config.server} ({reason})")
                return

    async def _live(self, call: Call) -> None:
        for kind in (
            EventType.PERMISSIONS_UPDATED,
            EventType.PERMISSION_REQUEST_RESOLVED,
            "media.source_stopped",
            "media.source_resumed",
            "media.closed",
            EventType.ENDED,
        ):
            call.on(kind, self._on_event)
        self.doing = f"opening media in {call.cid}"
        await call.connect_media(subscribe=[])
        missing = [c for c in self.config.request if not call.has_permission(c)]
        if missing:
            self.doing = f"requesting {', '.join(missing)}"
            await call.request_permissions(missing)
            self.status("requested", ", ".join(missing))
            self.status("awaiting approval")
        deadline = (
            None if self.config.duration_s is None else time.monotonic() + self.config.duration_s
        )
        while not self.stop.is_set():
            retry = await self._publish_allowed(call)
            timeouts = [PUBLISH_RETRY_S] if retry else []
            if deadline is not None:
                timeouts.append(deadline - time.monotonic())
            if timeouts and min(timeouts) <= 0:
                return
            self._wake.clear()
            if self.stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(timeouts, default=None))
            if deadline is not None and time.monotonic() >= deadline:
                return

    async def _publish_allowed(self, call: Call) -> bool:
        """Publish every wanted source that may be sent; True if one should be retried."""
        retry = False
        for capability in self.config.request:
            source = SOURCE_OF[capability]
            if not call.has_permission(capability):
                self.allowed.discard(capability)
                continue
            if capability not in self.allowed:
                self.allowed.add(capability)
                self.status("allowed", capability)
            if source in call.published or source in self.halted:
                continue
            track = self._track(source)
            self.doing = f"publishing {source}"
            try:
                await call.publish(source, track)
            except PublishDeniedError as denied:
                track.stop()
                attempts = self._attempts[source] = self._attempts.get(source, 0) + 1
                if attempts < PUBLISH_ATTEMPTS:
                    retry = True
                else:
                    self.status("denied", f"{source}: {denied.capability} ({denied.reason})")
                    self.halted[source] = denied.reason
                continue
            self._attempts.pop(source, None)
            if source in self._replaying:
                self._replaying.discard(source)  # the file again: no new status line
            else:
                self.status("publishing", f"{source} ({self._describe(source)})")
        return retry

    def _track(self, source: str) -> MediaStreamTrack:
        kind = KIND_OF[source]
        if self.config.play is not None and kind in self.file_kinds:
            track = file_track(self.config.play, kind)
            if track is not None:
                return track
        return ToneTrack() if kind == "audio" else PatternTrack()

    def _describe(self, source: str) -> str:
        if self.config.play is not None and KIND_OF[source] in self.file_kinds:
            return self.config.play.name
        return f"tone {TONE_HZ:g} Hz" if KIND_OF[source] == "audio" else "test pattern"

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "media.source_stopped" and event.get("reason") == "ended":
            self._replaying.add(event["source"])
        elif kind == "media.source_stopped" and event.get("reason") != "left":
            self.halted[event["source"]] = str(event["reason"])
            self.status("stopped by host", f"{event['source']} ({event['reason']})")
        elif kind == "media.source_resumed" and self.halted.pop(event["source"], None):
            self.status("resumed", event["source"])
        elif kind == EventType.PERMISSION_REQUEST_RESOLVED:
            request = event.get("request") or {}
            if request.get("state") in ("rejected", "expired"):
                reason = request.get("reason")
                self.status(f"request {request['state']}", str(reason) if reason else "")
        elif kind == "media.closed" and event.get("reason") in MEDIA_FAILURES:
            self.fail(f"lost the media connection to {self.config.server} ({event['reason']})")
        elif kind == "media.closed" and event.get("reason") != "left":
            self.status("media closed", str(event.get("reason")))
            self.stop.set()
        elif kind == EventType.ENDED:
            self.status("call ended")
            self.stop.set()
        self._wake.set()


async def why_gone(server: str) -> str:
    """Why `server` no longer answers, found with one bounded `GET /healthz`."""
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(_PROBE_TIMEOUT_S)) as http:
            await http.get(server.rstrip("/") + "/healthz")
    except httpx.HTTPError as exc:
        return network_reason(exc)
    return f"its event connection was down for {LOST_AFTER_S:g} s"


async def run(config: BotConfig, console: Console | None = None) -> int:
    """Run the bot until Ctrl-C, SIGTERM or its duration; returns the exit code.

    A failure is one line on stderr and exit code 1: a traceback would bury
    the reason (an unreachable server, a refused token, ...).
    """
    bot = Bot(config, console or Console())
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, _stopper(bot, sig))
            handled.append(sig)
    try:
        return await bot.run()
    except BotFailure as failure:
        message = str(failure)
    except (PodiumError, httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        message = describe(exc, config.server, bot.doing)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    print(f"podium bot: {message}", file=sys.stderr)
    return 1


def _stopper(bot: Bot, sig: signal.Signals) -> Callable[[], None]:
    def stop() -> None:
        bot.status("stopping", f"({sig.name})")
        bot.finish()

    return stop
