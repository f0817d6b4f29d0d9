"""`podium bot` as a real subprocess against a real `podium serve --dev` (media on 127.0.0.1).

The bot asks for `send-audio`; a host's SDK accepts and hears its tone. The
host revokes the capability (the bot stops), grants it back (the bot publishes
again), and the bot leaves by itself after `--duration`, or on SIGINT. When it
cannot go on (a closed port, a refused token, a server without dev tokens or
that is no Podium server, a server that goes away) it prints one line to
stderr and exits with 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import sys
import time
import uuid
import wave
from array import array
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from av import VideoFrame
from typer.testing import CliRunner

from podium.bot import describe
from podium.cli import app
from podium.client import Call, Client, PodiumAPIError, PodiumConnectionError
from tests.server import ServerProcess
from tests.sfu.test_call import RATE, TONE_HZ, bounded, receive_tone

WAIT_S = 15.0
HOST, BOT = "hana", "botty"

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)


class BotProcess:
    """`python -m podium bot ...`: its status lines (stdout) and errors (stderr) as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._new = asyncio.Event()
        assert proc.stdout is not None and proc.stderr is not None
        loop = asyncio.get_running_loop()
        self._readers = [
            loop.create_task(self._read(proc.stdout, self.lines)),
            loop.create_task(self._read(proc.stderr, self.errors)),
        ]

    @classmethod
    async def start(cls, server: ServerProcess | str, *args: str) -> BotProcess:
        url = server if isinstance(server, str) else server.url
        env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
        env.update({"PODIUM_MEDIA_LOOPBACK": "1", "COLUMNS": "200"})
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "podium", "bot", "--server", url, *args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        return cls(proc)

    async def _read(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode(errors="replace").rstrip())
            self._new.set()

    def output(self) -> dict[str, list[str]]:
        """Both streams, for assertion messages."""
        return {"stdout": self.lines, "stderr": self.errors}

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def expect(self, text: str, times: int = 1) -> None:
        deadline = time.monotonic() + WAIT_S
        while self.count(text) < times:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"bot never printed {text!r}: {self.output()}"
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    async def exit_code(self) -> int:
        code = await asyncio.wait_for(self.proc.wait(), WAIT_S)
        await asyncio.wait_for(asyncio.gather(*self._readers), WAIT_S)
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


def collect(call: Call, event_type: str) -> asyncio.Queue[dict[str, Any]]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    call.on(event_type, queue.put_nowait)
    return queue


async def next_event(queue: asyncio.Queue[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(queue.get(), WAIT_S)


async def live_room(host: Client) -> Call:
    stage = host.call("audio_room", f"bot-{uuid.uuid4().hex[:8]}")
    await stage.get_or_create()
    await stage.join()
    await stage.go_live()
    return stage


async def test_bot_asks_publishes_stops_resumes_and_leaves(media_server: ServerProcess) -> None:
    token = media_server.token(HOST)
    async with Client(media_server.url, token, media_loopback=True, timeout_s=WAIT_S) as host:
        stage = await live_room(host)
        requests = collect(stage, "call.permission_request")
        added = collect(stage, "media.track_added")
        left = collect(stage, "call.participant_left")
        await stage.connect_media()
        bot = await BotProcess.start(
            media_server, "--call", stage.cid, "--user", BOT, "--request", "send-audio",
            "--duration", "12",
        )  # fmt: skip
        try:
            request = await next_event(requests)
            assert request["request"]["permissions"] == ["send-audio"]
            assert request["user"]["id"] == BOT
            await stage.accept(request["request"])
            event = await next_event(added)
            assert (event["user_id"], event["source"]) == (BOT, "microphone")
            await receive_tone(event["track"])

            await stage.revoke_permissions(BOT, ["send-audio"])
            await bot.expect("stopped by host microphone (revoked)")
            await stage.grant_permissions(BOT, ["send-audio"])
            await bot.expect("resumed microphone")
            await bot.expect("publishing microphone", times=2)
            await receive_tone(event["track"])

            assert await bot.exit_code() == 0, bot.output()
            assert (await next_event(left))["participant"]["user_id"] == BOT
        finally:
            await bot.kill()
    steps = [
        f"joined {stage.cid} as {BOT}",
        "requested send-audio",
        "awaiting approval",
        "allowed send-audio",
        "publishing microphone (tone 440 Hz)",
        "stopped by host microphone (revoked)",
        "resumed microphone",
        "left",
    ]
    found = [next((i for i, line in enumerate(bot.lines) if step in line), -1) for step in steps]
    assert -1 not in found and found == sorted(found), bot.lines


async def test_bot_leaves_cleanly_on_sigint(media_server: ServerProcess) -> None:
    token = media_server.token(HOST)
    async with Client(media_server.url, token, media_loopback=True, timeout_s=WAIT_S) as host:
        stage = await live_room(host)
        await stage.grant_permissions(BOT, ["send-audio"])  # held already: nothing to request
        added = collect(stage, "media.track_added")
        left = collect(stage, "call.participant_left")
        await stage.connect_media()
        bot = await BotProcess.start(media_server, "--call", stage.cid, "--user", BOT)
        try:
            event = await next_event(added)
            assert (event["user_id"], event["source"]) == (BOT, "microphone")
            await bot.expect("publishing microphone")
            bot.proc.send_signal(signal.SIGINT)
            assert await bot.exit_code() == 0, bot.output()
            assert (await next_event(left))["participant"]["user_id"] == BOT
        finally:
            await bot.kill()
    assert bot.count("requested") == 0, bot.lines
    assert bot.count("stopping (SIGINT)") == 1 and "left" in bot.lines[-1], bot.lines


def tone_file(path: Path, seconds: float = 0.5) -> Path:
    """A mono WAV of the test tone; 0.5 s is a whole number of periods, so it loops seamlessly."""
    count = round(RATE * seconds)
    samples = array(
        "h", (round(10000 * math.sin(2 * math.pi * TONE_HZ * i / RATE)) for i in range(count))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())
    return path


async def test_bot_plays_a_file_in_a_loop_and_a_test_pattern(
    media_server: ServerProcess, tmp_path: Path
) -> None:
    """The file has audio only: the camera gets the generated pattern."""
    wav = tone_file(tmp_path / "tone.wav")
    token = media_server.token(HOST)
    async with Client(media_server.url, token, media_loopback=True, timeout_s=WAIT_S) as host:
        stage = await live_room(host)
        await stage.grant_permissions(BOT, ["send-audio", "send-video"])
        added = collect(stage, "media.track_added")
        await stage.connect_media()
        bot = await BotProcess.start(
            media_server, "--call", stage.cid, "--user", BOT, "--play", str(wav),
            "--request", "send-audio", "--request", "send-video", "--duration", "10",
        )  # fmt: skip
        try:
            tracks = {}
            for _ in range(2):
                event = await next_event(added)
                tracks[event["source"]] = event["track"]
            assert sorted(tracks) == ["camera", "microphone"]
            frame = await bounded(tracks["camera"].recv())
            assert isinstance(frame, VideoFrame)
            assert (frame.width, frame.height) == (320, 240)
            for _ in range(2):  # 1.6 s of a 0.5 s file: heard across several replays
                await receive_tone(tracks["microphone"])
            assert await bot.exit_code() == 0, bot.output()
        finally:
            await bot.kill()
    assert bot.count(f"publishing microphone ({wav.name})") == 1, bot.lines
    assert bot.count("publishing camera (test pattern)") == 1, bot.lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--call", "no-colon", "--user", "b"], "TYPE:ID"),
        (["--call", "audio_room:x", "--user", "b", "--request", "end-call"], "--request"),
    ],
)
def test_bot_refuses_bad_options(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["bot", *args])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1", "127.0.0.1:8000", "http://[::1", "http://127.0.0.1:99999"]
)
def test_bot_refuses_a_server_that_is_no_http_url(url: str) -> None:
    result = CliRunner().invoke(app, ["bot", "--call", "a:b", "--user", "b", "--server", url])
    assert result.exit_code == 2
    assert "--server must be an http:// or https:// URL" in result.output


@contextlib.contextmanager
def closed_port() -> Iterator[str]:
    """The URL of a port held bound but not listening for the test: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def failed_bot(url: str, *args: str) -> BotProcess:
    """Run the bot to its end; it must exit with 1 and print nothing on stdout."""
    bot = await BotProcess.start(url, "--call", "audio_room:nowhere", "--user", BOT, *args)
    try:
        assert await bot.exit_code() == 1, bot.output()
    finally:
        await bot.kill()
    assert bot.lines == [], bot.output()
    return bot


@pytest.mark.parametrize("args", [[], ["--token", "any-token"]], ids=["dev-token", "token"])
async def test_bot_against_a_closed_port_prints_one_line(args: list[str]) -> None:
    with closed_port() as url:
        bot = await failed_bot(url, *args)
    assert bot.errors == [f"podium bot: cannot reach {url} (connection refused)"]


async def test_bot_with_a_refused_token_says_so(server: ServerProcess) -> None:
    bot = await failed_bot(server.url, "--token", "not-a-token")
    assert len(bot.errors) == 1, bot.errors
    assert bot.errors[0].startswith("podium bot: the server refused the token (invalid_token: ")


async def test_bot_without_dev_tokens_says_how_to_get_one(tmp_path: Path, sqlite_url: str) -> None:
    server = ServerProcess(tmp_path, sqlite_url).start()
    try:
        bot = await failed_bot(server.url)
    finally:
        server.stop()
    assert bot.errors == [
        f"podium bot: {server.url} gives no dev tokens: "
        "start it with `podium serve --dev`, or pass --token"
    ]


@contextlib.asynccontextmanager
async def web_server(status: str) -> AsyncIterator[str]:
    """Some other web server on 127.0.0.1: every request gets `status` and an HTML page."""
    page = b"<html><body>Not Podium</body></html>"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/html\r\n"
                f"Content-Length: {len(page)}\r\nConnection: close\r\n\r\n".encode()
                + page
            )
            await writer.drain()
        writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    finally:
        listener.close()
        await asyncio.wait_for(listener.wait_closed(), WAIT_S)


@pytest.mark.parametrize("status", ["200 OK", "404 Not Found"])
@pytest.mark.parametrize("args", [[], ["--token", "any-token"]], ids=["dev-token", "token"])
async def test_bot_against_another_web_server_says_it_is_not_podium(
    status: str, args: list[str]
) -> None:
    async with web_server(status) as url:
        bot = await failed_bot(url, *args)
    code = status.split()[0]
    assert bot.errors == [
        f"podium bot: {url} does not answer as a Podium server does (HTTP {code})"
    ]


async def test_bot_says_so_in_one_line_when_the_server_goes_away(
    media_server: ServerProcess,
) -> None:
    """The SDK would reconnect for ever, but the bot's media died with the server: it gives up."""
    async with Client(media_server.url, media_server.token(HOST), timeout_s=WAIT_S) as host:
        stage = await live_room(host)
        await stage.grant_permissions(BOT, ["send-audio"])
        bot = await BotProcess.start(media_server, "--call", stage.cid, "--user", BOT)
        try:
            await bot.expect("publishing microphone")
            media_server.kill()
            assert await bot.exit_code() == 1, bot.output()
        finally:
            await bot.kill()
    assert bot.errors == [
        f"podium bot: lost the connection to {media_server.url} (connection refused)"
    ]
    assert bot.count("left") == 0, bot.output()


def in_httpx_error(cause: OSError) -> httpx.ConnectError:
    """A socket error as httpx raises it: inside httpcore's error, inside httpx's."""
    error = httpx.ConnectError(str(cause))
    error.__cause__ = httpcore.ConnectError(cause)
    return error


def refused_on_every_address() -> OSError:
    """As anyio reports a host whose IPv4 and IPv6 addresses both refuse."""
    error = OSError("All connection attempts failed")
    error.__cause__ = ExceptionGroup(
        "multiple connection attempts failed",
        [ConnectionRefusedError(111, "Connection refused")] * 2,
    )
    return error


URL = "http://podium.example:8000"
TIMED_OUT = f"cannot reach {URL} (timed out)"


@pytest.mark.parametrize(
    ("error", "doing", "line"),
    [
        (
            in_httpx_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known")),
            "getting a dev token",
            f"cannot reach {URL} (host name not found)",
        ),
        (httpx.ConnectTimeout("timed out"), "joining audio_room:x", TIMED_OUT),
        (httpx.ReadTimeout(""), "joining audio_room:x", TIMED_OUT),
        (
            in_httpx_error(refused_on_every_address()),
            "joining audio_room:x",
            f"cannot reach {URL} (connection refused)",
        ),
        (
            in_httpx_error(ConnectionResetError(104, "Connection reset by peer")),
            "joining audio_room:x",
            f"cannot reach {URL} (connection reset)",
        ),
        (
            PodiumAPIError(401, "token_expired", "the token has expired"),
            "joining audio_room:x",
            "the server refused the token (token_expired: the token has expired)",
        ),
        (
            PodiumAPIError(403, "permission_denied", "blocked from this call"),
            "joining audio_room:x",
            "joining audio_room:x: 403 permission_denied: blocked from this call",
        ),
        (
            PodiumConnectionError("no event connection to ws://podium.example:8000/v1/ws"),
            "joining audio_room:x",
            f"cannot reach {URL} (no event connection to ws://podium.example:8000/v1/ws)",
        ),
    ],
    ids=[
        "dns", "connect-timeout", "read-timeout", "refused-v4-v6", "reset", "expired-token",
        "forbidden", "no-websocket",
    ],
)  # fmt: skip
def test_bot_failures_read_as_one_line(error: Exception, doing: str, line: str) -> None:
    """Failures no test here can cause for real: DNS needs a resolver, timeouts take 15 s."""
    assert describe(error, URL, doing) == line
