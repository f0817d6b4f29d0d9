"""Limits on everything: each `PODIUM_LIMIT_*` of docs/security.md holds, and can be set.

Two real `podium serve` processes on SQLite serve the module: one with every
default, one with every limit set small through its environment variable at
once (`SMALL`). Each limit is shown to hold at the small value (proving it is
configurable) and, where that is cheap, at its default:

- body_bytes: 413 `payload_too_large` one byte past the limit, declared
  (`Content-Length`) or streamed (chunked); exactly the limit is accepted.
- ws_frame_bytes: a frame past it is closed 1009, before and after
  authentication; the same frame is accepted by the default server.
- ws_messages_per_s / ws_message_burst: a flood gets `error` `rate_limited`,
  then close 1008; a client under the rate, past the burst, is never closed.
- ws_connections_per_user: the N+1th socket of a user gets `error`
  `too_many_connections`, close 4029; server tokens and other users are not
  counted; closing one frees a slot.
- requests_per_minute: permission request + cancel in a loop is refused with
  429 `rate_limited`, `retry_after_s` and `Retry-After` at the limit; other
  users and calls are unaffected and the host is told a bounded number of times.
- calls_per_hour: the N+1th new call of one user is 429; reading or re-posting
  an existing call, server tokens and other users are not counted.
- sdp_bytes, sdp_media_sections, ice_candidates: `sfu.error` `limit_exceeded`;
  a valid offer still connects afterwards.
- header_timeout_s: half-sent (or trickled) headers are closed; 200 of them
  do not stop `/healthz`.
- token_ttl_s is proven by `tests/security/test_secrets.py` (`podium token --ttl`).
- A bad value for any `PODIUM_LIMIT_*` stops `podium serve` with exit code 2
  and one line naming the variable.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from podium import rtc
from podium.config import Limits
from tests.e2e.clients import Api, Frame, MediaClient, Watcher
from tests.server import SECRET, ServerProcess, free_port
from tests.sfu.test_call import Tone, bounded

WAIT_S = 10.0
DEFAULTS = Limits()
#: Every limit set small at once, on one server (WebSocket frames stay big enough for SDP).
SMALL_LIMITS = Limits(
    body_bytes=2048,
    ws_frame_bytes=8192,
    ws_messages_per_s=5.0,
    ws_message_burst=10,
    ws_connections_per_user=3,
    requests_per_minute=4,
    calls_per_hour=3,
    sdp_bytes=6000,
    sdp_media_sections=2,
    ice_candidates=3,
    header_timeout_s=1.0,
    token_ttl_s=3600,
)
SMALL = {
    f"PODIUM_LIMIT_{f.name.upper()}": f"{getattr(SMALL_LIMITS, f.name):g}"
    for f in dataclasses.fields(Limits)
}
LOOPBACK = {"PODIUM_MEDIA_LOOPBACK": "1"}

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("defaults")
    proc = ServerProcess(workdir, f"sqlite:///{workdir / 'podium.db'}", extra_env=LOOPBACK)
    yield proc.start()
    proc.stop()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("small")
    proc = ServerProcess(
        workdir, f"sqlite:///{workdir / 'podium.db'}", extra_env={**LOOPBACK, **SMALL}
    )
    yield proc.start()
    proc.stop()


def server_and_limits(request: pytest.FixtureRequest, which: str) -> tuple[ServerProcess, Limits]:
    server: ServerProcess = request.getfixturevalue(which)
    return server, SMALL_LIMITS if which == "small" else DEFAULTS


BOTH = pytest.mark.parametrize("which", ["defaults", "small"])


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def raw_ws(server: ServerProcess, token: str | None) -> ClientConnection:
    url = server.ws_url if token is None else f"{server.ws_url}?token={quote(token)}"
    return await asyncio.wait_for(connect(url, open_timeout=WAIT_S, proxy=None), WAIT_S)


async def until_closed(ws: ClientConnection) -> tuple[list[Frame], int | None]:
    """Every frame the server sends until it closes the connection, and the close code."""
    frames: list[Frame] = []
    async with asyncio.timeout(WAIT_S):
        with contextlib.suppress(ConnectionClosed):
            for _ in range(100_000):
                frames.append(json.loads(await ws.recv()))
    assert ws.close_code is not None, f"not closed; got {frames[-5:]}"
    return frames, ws.close_code


def error_code(frame: Frame) -> str:
    assert frame["type"] == "error", frame
    code: str = frame["error"]["code"]
    return code


# body_bytes


async def _stream(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 4096):
        yield body[start : start + 4096]


@BOTH
async def test_body_over_the_limit_is_413_declared_or_streamed(
    request: pytest.FixtureRequest, which: str
) -> None:
    server, limits = server_and_limits(request, which)
    headers = {
        "Authorization": f"Bearer {server.token(uid('body'))}",
        "Content-Type": "application/json",
    }
    start = b'{"custom": {"k": "v"}}'

    def padded(size: int) -> bytes:  # JSON allows trailing whitespace: any exact size
        return start + b" " * (size - len(start))

    async with httpx.AsyncClient(base_url=server.url, timeout=15, trust_env=False) as http:
        for streamed in (False, True):
            for size, expected in ((limits.body_bytes, 201), (limits.body_bytes + 1, 413)):
                body = padded(size)
                response = await http.post(
                    f"/v1/calls/default/{uid('body')}",
                    content=_stream(body) if streamed else body,
                    headers=headers,
                )
                sent = response.request.headers
                assert ("content-length" not in sent) is streamed, sent
                assert response.status_code == expected, (streamed, size, response.text)
                if expected == 413:
                    error = response.json()["error"]
                    assert error["code"] == "payload_too_large"
                    assert error["details"]["limit_bytes"] == limits.body_bytes


# ws_frame_bytes


async def test_ws_frame_past_the_configured_size_is_closed_1009_before_and_after_auth(
    small: ServerProcess, defaults: ServerProcess
) -> None:
    limit = SMALL_LIMITS.ws_frame_bytes
    big = json.dumps({"type": "ping", "pad": "x" * limit})
    under = json.dumps({"type": "ping", "pad": "x" * (limit - 100)})
    assert len(under) <= limit < len(big) <= DEFAULTS.ws_frame_bytes

    unauthenticated = await raw_ws(small, None)
    with contextlib.suppress(ConnectionClosed):
        await unauthenticated.send(big)
    assert (await until_closed(unauthenticated))[1] == 1009

    user = uid("frame")
    ws = await raw_ws(small, small.token(user))
    try:
        assert json.loads(await bounded(ws.recv()))["type"] == "connection.ok"
        await ws.send(under)  # at the limit: an ordinary frame
        assert json.loads(await bounded(ws.recv()))["type"] == "pong"
        with contextlib.suppress(ConnectionClosed):
            await ws.send(big)
        assert (await until_closed(ws))[1] == 1009
    finally:
        await ws.close()

    # The same frame is fine where the limit is the default: the setting made the difference.
    ws = await raw_ws(defaults, defaults.token(user))
    try:
        assert json.loads(await bounded(ws.recv()))["type"] == "connection.ok"
        await ws.send(big)
        assert json.loads(await bounded(ws.recv()))["type"] == "pong"
    finally:
        await ws.close()


# ws_messages_per_s, ws_message_burst


async def _steady(server: ServerProcess, interval_s: float, count: int) -> int:
    """Pings at a steady pace under the rate; returns the pongs received (never closed)."""
    ws = await raw_ws(server, server.token(uid("steady")))
    try:
        assert json.loads(await bounded(ws.recv()))["type"] == "connection.ok"
        pongs = 0
        for _ in range(count):
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await bounded(ws.recv()))["type"] == "pong"
            pongs += 1
            await asyncio.sleep(interval_s)
        assert ws.close_code is None
        return pongs
    finally:
        await ws.close()


@BOTH
async def test_ws_flood_is_rate_limited_and_closed_1008(
    request: pytest.FixtureRequest, which: str
) -> None:
    server, limits = server_and_limits(request, which)
    steady: asyncio.Task[int] | None = None
    if which == "small":
        # Alongside the flood: 3.3 frames a second, more frames than the burst, never closed.
        count = limits.ws_message_burst + 4
        interval = 1 / (limits.ws_messages_per_s * 2 / 3)
        steady = asyncio.create_task(_steady(server, interval, count))
    try:
        flood = await raw_ws(server, server.token(uid("flood")))
        assert json.loads(await bounded(flood.recv()))["type"] == "connection.ok"
        ping = json.dumps({"type": "ping"})
        with contextlib.suppress(ConnectionClosed):
            for _ in range(limits.ws_message_burst * 3):
                await flood.send(ping)
        frames, code = await until_closed(flood)
        assert code == 1008
        pongs = [f for f in frames if f["type"] == "pong"]
        # The burst is answered (plus what refilled meanwhile), never the whole flood.
        assert limits.ws_message_burst <= len(pongs) < limits.ws_message_burst * 2
        refusal = frames[-1]
        assert error_code(refusal) == "rate_limited", frames[-3:]
        assert refusal["error"]["details"] == {
            "limit_per_s": limits.ws_messages_per_s,
            "burst": limits.ws_message_burst,
        }
        if steady is not None:
            assert await asyncio.wait_for(steady, 30) == limits.ws_message_burst + 4
    finally:
        if steady is not None:
            steady.cancel()
            await asyncio.gather(steady, return_exceptions=True)


# ws_connections_per_user


@BOTH
async def test_connections_per_user_past_the_limit_get_4029(
    request: pytest.FixtureRequest, which: str
) -> None:
    server, limits = server_and_limits(request, which)
    user = uid("conn")
    opened: list[Watcher] = []
    extra: list[ClientConnection] = []
    try:
        for _ in range(limits.ws_connections_per_user):
            opened.append(await Watcher(server, user).open())
        refused = await raw_ws(server, server.token(user))
        frames, code = await until_closed(refused)
        assert code == 4029
        assert [error_code(f) for f in frames] == ["too_many_connections"]
        assert frames[0]["error"]["details"] == {"limit": limits.ws_connections_per_user}

        # Another user, and server tokens (however many), are not counted.
        opened.append(await Watcher(server, uid("other")).open())
        for _ in range(limits.ws_connections_per_user + 2):
            ws = await raw_ws(server, server.server_token())
            extra.append(ws)
            assert json.loads(await bounded(ws.recv()))["type"] == "connection.ok"

        # Closing one frees a slot (once the server has seen it go).
        await opened.pop(0).close()
        for _ in range(50):
            retry = await raw_ws(server, server.token(user))
            first = json.loads(await bounded(retry.recv()))
            if first["type"] == "connection.ok":
                extra.append(retry)
                break
            assert error_code(first) == "too_many_connections"
            await retry.close()
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("a closed connection did not free its slot")
    finally:
        for watcher in opened:
            await watcher.close()
        for ws in extra:
            await ws.close()


# requests_per_minute


async def _live_audio_room(host: Api, *listeners: Api) -> tuple[str, str]:
    call_id = uid("room")
    path = f"/calls/audio_room/{call_id}"
    await host.call("POST", path, None, 201)
    await host.call("POST", f"{path}/go-live")
    for listener in listeners:
        await listener.call("POST", f"{path}/join")
    return f"audio_room:{call_id}", path


def _ask(api: Api, path: str) -> Any:
    return api.http.post(f"/v1{path}/permission-requests", json={"permissions": ["send-audio"]})


def _assert_rate_limited(response: httpx.Response, limit: int, window_s: int) -> int:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    wait = error["details"]["retry_after_s"]
    assert isinstance(wait, int) and 1 <= wait <= window_s
    assert (error["details"]["limit"], error["details"]["window_s"]) == (limit, window_s)
    assert response.headers["retry-after"] == str(wait)
    return wait


async def test_request_cancel_loop_is_refused_at_the_default_30_a_minute(
    defaults: ServerProcess,
) -> None:
    limit = DEFAULTS.requests_per_minute
    host, listener, other = (Api(defaults, uid(p)) for p in ("host", "loop", "other"))
    watcher = await Watcher(defaults, host.user_id).open()
    try:
        cid, path = await _live_audio_room(host, listener, other)
        assert (await watcher.watch(cid))["type"] == "watch.ok"
        for _ in range(limit // 2):  # each pass is two operations: a request and a cancel
            asked = await listener.call(
                "POST", f"{path}/permission-requests", {"permissions": ["send-audio"]}, 201
            )
            await listener.call("DELETE", f"{path}/permission-requests/{asked['request']['id']}")
        for _ in range(5):  # the 31st operation, and any after it, are refused
            _assert_rate_limited(await _ask(listener, path), limit, 60)

        # Another user of the same call, and the same user in another call, may still ask.
        assert (await _ask(other, path)).status_code == 201
        _, elsewhere = await _live_audio_room(host, listener)
        assert (await _ask(listener, elsewhere)).status_code == 201

        # The host heard of the loop at most `limit` times: one per operation let through.
        await watcher.wait_for(
            lambda f: (
                f["type"] == "call.permission_request" and f["request"]["user_id"] == other.user_id
            )
        )
        about_loop = [
            f["type"]
            for f in watcher.frames
            if f["type"].startswith("call.permission_request")
            and f["request"]["user_id"] == listener.user_id
        ]
        assert len(about_loop) == limit, about_loop
        assert about_loop.count("call.permission_request") == limit // 2
    finally:
        await watcher.close()
        for api in (host, listener, other):
            await api.aclose()


async def test_configured_requests_per_minute_counts_requests_and_cancels(
    small: ServerProcess,
) -> None:
    limit = SMALL_LIMITS.requests_per_minute
    host, listener = Api(small, uid("host")), Api(small, uid("loop"))
    try:
        _, path = await _live_audio_room(host, listener)
        for _ in range(limit // 2):
            asked = await listener.call(
                "POST", f"{path}/permission-requests", {"permissions": ["send-audio"]}, 201
            )
            await listener.call("DELETE", f"{path}/permission-requests/{asked['request']['id']}")
        _assert_rate_limited(await _ask(listener, path), limit, 60)
    finally:
        await host.aclose()
        await listener.aclose()


# calls_per_hour


@BOTH
async def test_calls_per_hour_per_user(request: pytest.FixtureRequest, which: str) -> None:
    server, limits = server_and_limits(request, which)
    maker, other = Api(server, uid("maker")), Api(server, uid("other"))
    headers = {"Authorization": f"Bearer {server.server_token()}"}
    try:
        # Calls a server token creates are not counted, also those naming the user as host.
        for _ in range(3 if which == "defaults" else limits.calls_per_hour + 2):
            response = await maker.http.post(
                f"/v1/calls/default/{uid('ahead')}",
                json={"members": [{"user_id": maker.user_id, "role": "host"}]},
                headers=headers,
            )
            assert response.status_code == 201, response.text
        made = [uid("mine") for _ in range(limits.calls_per_hour)]
        for call_id in made:
            await maker.call("POST", f"/calls/default/{call_id}", None, 201)
        refused = await maker.http.post(f"/v1/calls/default/{uid('one-more')}")
        _assert_rate_limited(refused, limits.calls_per_hour, 3600)
        # Reading or re-posting an existing call is not a creation; another user is not counted.
        await maker.call("GET", f"/calls/default/{made[0]}")
        await maker.call("POST", f"/calls/default/{made[-1]}", None, 200)
        await other.call("POST", f"/calls/default/{uid('theirs')}", None, 201)
    finally:
        await maker.aclose()
        await other.aclose()


# sdp_bytes, sdp_media_sections, ice_candidates


async def _offer(m_lines: int) -> str:
    pc = rtc.peer_connection(loopback_only=True)
    try:
        for _ in range(m_lines):
            pc.addTransceiver("audio", direction="recvonly")
        await bounded(pc.setLocalDescription(await pc.createOffer()))
        sdp: str = pc.localDescription.sdp
        return sdp
    finally:
        await bounded(pc.close())


@BOTH
async def test_signalling_limits_answer_limit_exceeded(
    request: pytest.FixtureRequest, which: str
) -> None:
    server, limits = server_and_limits(request, which)
    call_id = uid("sfu")
    cid, path = f"default:{call_id}", f"/calls/default/{call_id}"
    host = Api(server, uid("host"))
    ws = await Watcher(server, host.user_id).open()
    client: MediaClient | None = None

    def refusals() -> list[Frame]:
        return [f for f in ws.frames if f["type"] == "sfu.error"]

    async def refused(message: Frame, needle: str) -> None:
        start = len(ws.frames)
        assert ws._ws is not None
        await ws._ws.send(json.dumps({**message, "call_cid": cid}))
        frame = await ws.wait_for(lambda f: f["type"] == "sfu.error", start=start)
        assert frame["code"] == "limit_exceeded", frame
        assert needle in frame["message"], frame

    try:
        await host.call("POST", path, None, 201)
        await host.call("POST", f"{path}/join")
        many = await _offer(limits.sdp_media_sections + 1)
        assert len(many.encode()) <= limits.sdp_bytes
        await refused({"type": "sfu.offer", "sdp": many}, "m-lines")
        one = await _offer(1)
        pad = limits.sdp_bytes + 1 - len(one.encode()) - len("a=x-pad:\r\n")
        huge = f"{one}a=x-pad:{'x' * pad}\r\n"
        assert len(huge.encode()) == limits.sdp_bytes + 1
        await refused({"type": "sfu.offer", "sdp": huge}, "bytes")
        assert not [f for f in ws.frames if f["type"] == "sfu.answer"]

        # A valid offer under the limits (at the m-line limit) still works, and connects.
        client = MediaClient(ws, cid)
        client.pc.addTransceiver(Tone(), direction="sendonly")
        for _ in range(limits.sdp_media_sections - 1):
            client.pc.addTransceiver("audio", direction="recvonly")
        await client.connect()
        await client.send({"type": "sfu.publish", "source": "microphone"})
        await client.expect("sfu.publish_ok")

        # Candidates up to the limit are taken without a word; the next one is refused.
        before = len(refusals())
        for i in range(limits.ice_candidates):
            line = f"candidate:{i} 1 udp 2130706431 127.0.0.1 {40000 + i} typ host"
            await client.send({"type": "sfu.candidate", "candidate": line, "sdp_mid": "0"})
        extra = "candidate:x 1 udp 2130706431 127.0.0.1 39999 typ host"
        message = {"type": "sfu.candidate", "candidate": extra, "sdp_mid": "0"}
        await refused(message, f"at most {limits.ice_candidates} ICE candidates")
        assert refusals()[before:] == refusals()[-1:], refusals()[before:]
        await refused(message, "ICE candidates")  # and stays refused
    finally:
        if client is not None:
            await client.close()
        await ws.close()
        await host.aclose()


# header_timeout_s


async def _half_sent(server: ServerProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    await writer.drain()
    return reader, writer


async def _closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within_s) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


async def test_headers_not_sent_in_time_are_closed(
    small: ServerProcess, defaults: ServerProcess
) -> None:
    timeout = SMALL_LIMITS.header_timeout_s
    patient_reader, patient = await _half_sent(defaults)
    patient_since = time.monotonic()
    held: list[asyncio.StreamWriter] = [patient]
    try:
        reader, writer = await _half_sent(small)
        held.append(writer)
        assert await _closed_by_server(reader, timeout + 5)

        # Trickling a byte at a time does not reset the clock.
        reader, writer = await asyncio.open_connection("127.0.0.1", small.port)
        held.append(writer)
        closed_at = None
        started = time.monotonic()
        for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
            if reader.at_eof():
                closed_at = time.monotonic()
                break
            with contextlib.suppress(ConnectionError):
                writer.write(bytes([byte]))
                await writer.drain()
            await asyncio.sleep(0.1)
        if closed_at is None:
            assert await _closed_by_server(reader, 5)
        assert closed_at is None or closed_at - started < timeout + 5

        # Many half-sent requests at once: /healthz still answers, and they are all closed.
        many = [await _half_sent(small) for _ in range(200)]
        held += [w for _, w in many]
        async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
            assert (await http.get(f"{small.url}/healthz")).status_code == 200
        closed = await asyncio.gather(*(_closed_by_server(r, timeout + 10) for r, _ in many))
        assert all(closed), f"{closed.count(False)} of 200 still open"

        # The default (10 s) still waits for the one opened first, seconds ago.
        waited = time.monotonic() - patient_since
        assert waited > timeout * 2
        if waited < DEFAULTS.header_timeout_s - 1:  # (on a machine that was not too slow)
            assert not await _closed_by_server(patient_reader, 0.2)
    finally:
        for writer in held:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


# bad values for every limit (token_ttl_s itself: tests/security/test_secrets.py)


async def test_a_bad_limit_value_stops_serve_with_one_line(tmp_path: Path) -> None:
    names = [f"PODIUM_LIMIT_{f.name.upper()}" for f in dataclasses.fields(Limits)]
    cases = [(name, ("0", "-1", "abc")[i % 3]) for i, name in enumerate(names)]
    cases += [("PODIUM_LIMIT_BODY_BYTES", "-1"), ("PODIUM_LIMIT_BODY_BYTES", "abc")]
    cases += [("PODIUM_LIMIT_CALLS_PER_HOUR", "2.5"), ("PODIUM_LIMIT_HEADER_TIMEOUT_S", "0")]
    base = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    gate = asyncio.Semaphore(4)

    async def serve(name: str, value: str) -> tuple[int | None, str, str]:
        env = {**base, "PODIUM_SECRET": SECRET, name: value}
        env["PODIUM_DATABASE_URL"] = f"sqlite:///{tmp_path / 'never.db'}"
        async with gate:
            proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "podium", "serve", "--port", str(free_port())),
                cwd=tmp_path,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(proc.communicate(), 60)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        return proc.returncode, out.decode(), err.decode()

    results = await asyncio.gather(*(serve(name, value) for name, value in cases))
    for (name, value), (code, out, err) in zip(cases, results, strict=True):
        lines = err.strip().splitlines()
        assert code == 2, (name, value, code, err)
        assert len(lines) == 1 and name in lines[0] and repr(value) in lines[0], (name, err)
        assert "Podium on" not in out + err
