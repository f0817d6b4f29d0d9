"""`podium bot` as a real subprocess against a real `podium serve --dev` (media on 127.0.0.1).

The bot asks for `send-audio`; a host's SDK accepts and hears its tone. The
host revokes the capability (the bot stops), grants it back (the bot publishes
again), and the bot leaves by itself after `--duration`, or on SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import sys
import time
import uuid
import wave
from array import array
from pathlib import Path
from typing import Any

import pytest
from av import VideoFrame
from typer.testing import CliRunner

from podium.cli import app
from podium.client import Call, Client
from tests.server import ServerProcess
from tests.sfu.test_call import RATE, TONE_HZ, bounded, receive_tone

WAIT_S = 15.0
HOST, BOT = "hana", "botty"

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)


class BotProcess:
    """`python -m podium bot ...`, its output read line by line as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._new = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, server: ServerProcess, *args: str) -> BotProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
        env.update({"PODIUM_MEDIA_LOOPBACK": "1", "COLUMNS": "200"})
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "podium", "bot", "--server", server.url, *args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip())
            self._new.set()

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def expect(self, text: str, times: int = 1) -> None:
        deadline = time.monotonic() + WAIT_S
        while self.count(text) < times:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"bot never printed {text!r}: {self.lines}"
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    async def exit_code(self) -> int:
        code = await asyncio.wait_for(self.proc.wait(), WAIT_S)
        await asyncio.wait_for(self._reader, WAIT_S)
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


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

            assert await bot.exit_code() == 0, bot.lines
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
            assert await bot.exit_code() == 0, bot.lines
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
            assert await bot.exit_code() == 0, bot.lines
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
