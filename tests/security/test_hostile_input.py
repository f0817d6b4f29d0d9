"""Hostile input never takes a call down (issue 10, point 2 and the input half of point 3).

Against real `podium serve` processes, on SQLite and PostgreSQL where storage matters:

- Poisons sent to any JSON body (`custom` nested 300 deep, lone surrogates in values
  and keys, raw `NaN` / `Infinity` / `-Infinity` / `1e999`; `custom` over 16 KiB) are
  422 `validation_error` with the reason, and nothing of them is stored.
- The same poisons written straight into the database (as an older version stored
  them) never break a read: the call, `GET /v1/calls?live=true` and the replayed and
  live WebSocket frames are strict JSON, repaired as `json_values.sanitized` says.
- A hypothesis property: hostile bodies to every JSON-taking endpoint never get a 5xx
  (`tests/api/test_fuzz.py` fuzzes the OpenAPI schema; this sends what none describes).
- WebSocket: binary frames close 1003 with one log line; poisoned text frames get
  `validation_error` on a connection that stays usable; frames over 64 KiB close 1009
  before and after authentication, and 1 MiB ones from 90 clients, like 3,000 `sfu.*`
  frames naming missing calls, barely move the server's RSS; malformed ICE candidates
  get `invalid_message`; 180 m-lines get `limit_exceeded` while `/healthz` stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, create_engine, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from podium.core.json_values import sanitized
from podium.store.schema import calls, events
from tests.e2e.clients import Api, MediaClient, Watcher
from tests.server import ServerProcess
from tests.sfu.test_call import eventually

pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed file <_io\.BufferedWriter name='[^']*server-\d+\.log'>:ResourceWarning"
)

KIB, MIB = 1024, 1024 * 1024
WAIT_S = 10.0
JSON_HEADERS = {"Content-Type": "application/json"}
#: Some tests flood one connection: the per-connection rate limit stays out of it.
HOSTILE_ENV = {
    "PODIUM_LIMIT_WS_MESSAGES_PER_S": "100000",
    "PODIUM_LIMIT_WS_MESSAGE_BURST": "100000",
    "PODIUM_MEDIA_LOOPBACK": "1",
}


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _refuse_constant(name: str) -> Any:
    raise AssertionError(f"{name} in a frame: not JSON")


def strict_json(text: str | bytes) -> Any:
    """The value of `text`; fails on NaN/Infinity and on a lone surrogate anywhere in it."""
    assert isinstance(text, str), f"binary frame from the server: {text[:80]!r}"
    value = json.loads(text, parse_constant=_refuse_constant)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # UnicodeEncodeError: a surrogate
    return value


class StrictSocket:
    """A WebSocket whose every frame from the server must be strict JSON."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Any] = []

    @classmethod
    async def open(cls, server: ServerProcess, user_id: str) -> StrictSocket:
        url = f"{server.ws_url}?token={quote(server.token(user_id))}"
        sock = cls(await asyncio.wait_for(connect(url, proxy=None, open_timeout=WAIT_S), WAIT_S))
        assert (await sock.next(lambda f: True))["type"] == "connection.ok"
        return sock

    async def send(self, frame: str | bytes | dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)

    async def next(self, predicate: Callable[[Any], bool]) -> Any:
        async with asyncio.timeout(WAIT_S):
            while True:
                frame = strict_json(await self.ws.recv())
                self.frames.append(frame)
                if predicate(frame):
                    return frame

    async def pong(self) -> None:
        await self.send({"type": "ping"})
        await self.next(lambda f: f["type"] == "pong")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)


async def close_code(ws: ClientConnection) -> int | None:
    """The close code the server sent (None: no close frame), reading until it closes."""
    try:
        async with asyncio.timeout(WAIT_S):
            for _ in range(1000):
                await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    raise AssertionError("the server did not close the connection")


def log_text(server: ServerProcess) -> str:
    return (server.workdir / f"server-{server.port}.log").read_text(errors="replace")


def rss_mb(server: ServerProcess) -> float:
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) / 1024


def refusal(response: httpx.Response) -> tuple[str, str]:
    """(type, msg) of `details.errors[0]` of a 422 `validation_error`."""
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error", error
    return error["details"]["errors"][0]["type"], error["details"]["errors"][0]["msg"]


def client(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=15, trust_env=False)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One SQLite server for the property and the WebSocket tests (media on loopback)."""
    workdir = tmp_path_factory.mktemp("hostile")
    server = ServerProcess(workdir, f"sqlite:///{workdir / 'podium.db'}", extra_env=HOSTILE_ENV)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# 1. Poisons through the API.

#: name -> (a JSON value as raw text, the refusal's reason, where call create's refusal
#: says it is). NaN and Infinity are refused while decoding, before there is a path.
API_POISONS = {
    "deep": ("[" * 300 + "]" * 300, "nested deeper than 32 levels", "custom.x[1].y[0][0]"),
    "surrogate": ('"\\ud800"', "a string holds a lone UTF-16 surrogate", "custom.x[1].y:"),
    "surrogate_key": ('{"\\udfff": 1}', "a key holds a lone UTF-16 surrogate", "custom.x[1].y:"),
    "nan": ("NaN", "NaN is not a JSON number", "value:"),
    "infinity": ("Infinity", "Infinity is not a JSON number", "value:"),
    "minus_infinity": ("-Infinity", "-Infinity is not a JSON number", "value:"),
    "overflow": ("1e999", "numbers must be finite", "custom.x[1].y:"),
}
#: (who, method, path under the call or from /v1, body with the poison at `@`).
POISONED_BODIES = [
    ("host", "POST", "", '{"custom": {"a": {"b": @}}}'),
    ("host", "POST", "/members", '{"update": [{"user_id": "u1", "role": @}]}'),
    ("asker", "POST", "/permission-requests", '{"permissions": ["send-audio", @]}'),
    ("host", "POST", "/permission-requests/{rid}/reject", '{"reason": @}'),
    ("host", "POST", "/user-permissions", '{"user_id": "u1", "grant": [@]}'),
    ("host", "POST", "/mute", '{"user_ids": ["u1"], "audio": @}'),
    ("host", "POST", "/block", '{"user_id": @}'),
    ("host", "POST", "/unblock", '{"user_id": @}'),
    ("server", "PUT", "/v1/call-types/poisoned", '{"grants": {"user": [@]}}'),
    ("host", "POST", "/v1/tokens/revoke", '{"jti": @}'),
    ("server", "POST", "/v1/tokens/revoke", "[@]"),
]


async def test_poisons_sent_to_the_api_are_refused_with_the_reason(
    tmp_path: Path, database_url: str
) -> None:
    server = ServerProcess(tmp_path, database_url).start()
    tokens = {"host": server.token(uid("host")), "asker": server.token(uid("asker"))}
    auth = {who: {"Authorization": f"Bearer {t}", **JSON_HEADERS} for who, t in tokens.items()}
    auth["server"] = {"Authorization": f"Bearer {server.server_token()}", **JSON_HEADERS}
    room = f"/v1/calls/audio_room/{uid('room')}"
    try:
        async with client(server) as http:
            created = await http.post(room, json={"custom": {"ok": 1}}, headers=auth["host"])
            assert created.status_code == 201, created.text
            assert (await http.post(f"{room}/go-live", headers=auth["host"])).status_code == 200
            assert (await http.post(f"{room}/join", headers=auth["asker"])).status_code == 200
            ask = {"permissions": ["send-audio"]}
            asked = await http.post(f"{room}/permission-requests", json=ask, headers=auth["asker"])
            assert asked.status_code == 201, asked.text
            rid = asked.json()["request"]["id"]
            fresh: list[str] = []
            for name, (poison, reason, where) in API_POISONS.items():
                # A new call id each time: a stored poison would show up as a call.
                fresh.append(f"/v1/calls/default/{uid(name)}")
                body = '{"custom": {"x": [1, {"y": @}]}}'.replace("@", poison)
                kind, msg = refusal(await http.post(fresh[-1], content=body, headers=auth["host"]))
                assert kind == "json_value" and reason in msg and msg.startswith(where), msg
                for who, method, tail, template in POISONED_BODIES:
                    path = tail.replace("{rid}", rid)
                    url = path if path.startswith("/v1/") else room + path
                    sent = template.replace("@", poison)
                    response = await http.request(method, url, content=sent, headers=auth[who])
                    kind, msg = refusal(response)
                    assert kind == "json_value" and reason in msg, (name, method, url, msg)
            # `custom` has a size limit of its own (16 KiB as JSON); just under it is taken.
            fresh.append(f"/v1/calls/default/{uid('big')}")
            big = {"custom": {"big": "x" * (16 * KIB)}}
            kind, msg = refusal(await http.post(fresh[-1], json=big, headers=auth["host"]))
            assert "at most 16384" in msg, msg
            fits = {"custom": {"big": "x" * (16 * KIB - 20)}}
            fine = await http.post(f"/v1/calls/default/{uid('f')}", json=fits, headers=auth["host"])
            assert fine.status_code == 201, fine.text

            # Nothing refused was stored: no call, the request pending, custom unchanged.
            for path in fresh:
                assert (await http.get(path, headers=auth["host"])).status_code == 404, path
            state = (await http.get(room, headers=auth["host"])).json()
            assert state["call"]["custom"] == {"ok": 1} and state["blocked_user_ids"] == []
            assert [r["id"] for r in state["pending_requests"]] == [rid]
            kind_read = await http.get("/v1/call-types/poisoned", headers=auth["server"])
            assert kind_read.status_code == 404
    finally:
        server.stop()


# 2. Poisons already in the database.


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


STORED_POISONS: dict[str, dict[str, Any]] = {
    "deep": {"p": nested(300)},
    "surrogate": {"p": "\ud800", "\udfff": "in a key"},
    "nan": {"p": math.nan, "q": [math.inf, -math.inf]},
}


def _store_poison(conn: Connection, cid: str, custom: dict[str, Any]) -> None:
    """The call's row and its logged `call.created` get `custom`, as an older version stored it."""
    conn.execute(update(calls).where(calls.c.cid == cid).values(custom=custom))
    created = (events.c.call_cid == cid) & (events.c.type == "call.created")
    row = conn.execute(select(events.c.seq, events.c.payload).where(created)).one()
    payload = {**row.payload, "call": {**row.payload["call"], "custom": custom}}
    where = (events.c.call_cid == cid) & (events.c.seq == row.seq)
    conn.execute(update(events).where(where).values(payload=payload))


async def store_poison(database_url: str, cid: str, custom: dict[str, Any]) -> None:
    """Write `custom` with SQLAlchemy straight into the database the server uses."""
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"timeout": 10})
        try:
            with engine.begin() as conn:
                _store_poison(conn, cid, custom)
        finally:
            engine.dispose()
        return
    async_engine = create_async_engine(database_url)
    try:
        async with async_engine.begin() as aconn:
            await aconn.run_sync(_store_poison, cid, custom)
    finally:
        await async_engine.dispose()


async def test_a_poison_stored_in_the_database_never_breaks_a_read(
    tmp_path: Path, database_url: str
) -> None:
    server = ServerProcess(tmp_path, database_url).start()
    host, passer = Api(server, uid("host")), Api(server, uid("passer"))
    server_headers = {"Authorization": f"Bearer {server.server_token()}"}
    held: set[str] = set()
    try:
        for name, custom in STORED_POISONS.items():
            call_id = uid(name)
            cid, path = f"audio_room:{call_id}", f"/calls/audio_room/{call_id}"
            await host.call("POST", path, {"custom": {"ok": 1}}, 201)
            try:
                await store_poison(server.database_url, cid, custom)
            except DBAPIError as exc:
                # PostgreSQL's json type refuses NaN/Infinity: the database cannot hold this
                # poison, so what is read back is the call as created.
                assert database_url.startswith("postgresql") and name == "nan", exc
                assert "invalid input syntax for type json" in str(exc), exc
                expected: dict[str, Any] = {"ok": 1}
            else:
                held.add(name)
                expected = sanitized(custom)
                assert json.dumps(expected, allow_nan=False).encode() and expected != custom

            # An ordinary user's WebSocket: the logged call.created replayed, then a live
            # event built from the row as it is stored now.
            sock = await StrictSocket.open(server, passer.user_id)
            try:
                await sock.send({"type": "watch", "call_cid": cid, "since": 0})
                ok = await sock.next(lambda f: f["type"] in ("watch.ok", "error"))
                assert ok["type"] == "watch.ok", ok
                replayed = [f["call"]["custom"] for f in sock.frames if f["type"] == "call.created"]
                assert replayed == [expected], name
                live = await host.call("POST", f"{path}/go-live")
                assert live["call"]["custom"] == expected
                frame = await sock.next(lambda f: f["type"] == "call.live_started")
                assert frame["call"]["custom"] == expected
            finally:
                await sock.close()

            # Reads: the call for its host and a server token, the live list for anyone.
            assert (await host.call("GET", path))["call"]["custom"] == expected
            response = await host.http.get(f"/v1{path}", headers=server_headers)
            assert response.status_code == 200, response.text
            assert strict_json(response.text)["call"]["custom"] == expected
            for who in (passer, host):
                response = await who.http.get("/v1/calls", params={"live": "true"})
                assert response.status_code == 200, response.text
                listed = {c["cid"]: c for c in strict_json(response.text)["calls"]}
                assert listed[cid]["custom"] == expected
        postgres = database_url.startswith("postgresql")
        assert held == ({"deep", "surrogate"} if postgres else set(STORED_POISONS))
    finally:
        await host.aclose()
        await passer.aclose()
        server.stop()


# 3. A property: hostile bodies never get a 5xx.

ODD_STRINGS = [
    "\ud800", "\udfff", "a\udbffb", "\x00", "\u2028\u2029", "\ufeff", "🧑‍🚀", "' OR 1=1 --",
    "../../etc/passwd", "%s%n{0}", "a" * 600, "send-audio", "host",
]  # fmt: skip
FIELDS = [
    "custom", "members", "update", "remove", "user_id", "role", "permissions", "reason",
    "grant", "revoke", "grants", "requestable", "backstage", "request_ttl_s", "token", "jti",
]  # fmt: skip
LEAVES = (
    st.none() | st.booleans() | st.integers() | st.integers(-(2**80), 2**80) | st.text(max_size=12)
    | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(ODD_STRINGS)
)  # fmt: skip
KEYS = st.text(max_size=6) | st.sampled_from(FIELDS + ODD_STRINGS[:3])
VALUES = st.recursive(
    LEAVES,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(KEYS, kids, max_size=4),
    max_leaves=16,
)
#: Bodies shaped like the endpoints' own, with hostile values.
SHAPED = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=4)


def _deep(args: tuple[int, str, bool]) -> str:
    depth, opener, closed = args
    closer = {"[": "]", '{"a":': "}"}[opener]
    inner = ("1" if opener != "[" else "") + (closer * depth if closed else "")
    return '{"custom": ' + opener * depth + inner + "}"


#: Raw text: `json.dumps` writes NaN/Infinity as they are and surrogates as `\ud800`.
BODIES = st.one_of(
    VALUES.map(json.dumps),
    SHAPED.map(json.dumps),
    st.tuples(st.integers(20, 10_000), st.sampled_from(["[", '{"a":']), st.booleans()).map(_deep),
    st.sampled_from(["NaN", "-Infinity", "1e999", "9" * 5000, '{"custom": {"n": -0.0e-999}}']),
    st.binary(max_size=64),
    st.text(max_size=40),
    # Lone surrogates written raw, not escaped: bytes that are not UTF-8.
    st.sampled_from(ODD_STRINGS[:3]).map(lambda s: '{"reason": "' + s + '"}'),
)


def test_hostile_json_bodies_never_get_a_5xx(hostile: ServerProcess) -> None:
    tokens = {"host": hostile.token(uid("fz-host")), "asker": hostile.token(uid("fz-asker"))}
    auth = {who: f"Bearer {token}" for who, token in tokens.items()}
    auth["server"] = f"Bearer {hostile.server_token()}"
    room = f"/v1/calls/audio_room/{uid('fuzz')}"
    statuses: Counter[int] = Counter()
    log_start = len(log_text(hostile))
    with httpx.Client(base_url=hostile.url, timeout=15, trust_env=False) as http:

        def send(who: str, method: str, path: str, body: bytes | None = None) -> httpx.Response:
            headers = {"Authorization": auth[who], **JSON_HEADERS}
            return http.request(method, path, content=body, headers=headers)

        assert send("host", "POST", room).status_code == 201
        assert send("host", "POST", f"{room}/go-live").status_code == 200
        assert send("asker", "POST", f"{room}/join").status_code == 200
        ask = b'{"permissions": ["send-audio"]}'
        asked = send("asker", "POST", f"{room}/permission-requests", ask)
        assert asked.status_code == 201, asked.text
        rid = asked.json()["request"]["id"]
        endpoints = [
            ("server", "POST", f"/v1/calls/default/{uid('fz-new')}"),
            ("host", "POST", f"/v1/calls/default/{uid('fz-own')}"), ("host", "POST", room),
            ("asker", "POST", f"{room}/permission-requests"),
            ("host", "POST", f"{room}/permission-requests/{rid}/reject"),
            ("host", "POST", f"{room}/user-permissions"), ("host", "POST", f"{room}/members"),
            ("server", "PUT", "/v1/call-types/fuzz_type"),
            ("server", "POST", "/v1/tokens/revoke"), ("asker", "POST", "/v1/tokens/revoke"),
        ]  # fmt: skip

        @settings(max_examples=100, deadline=None, database=None)
        @given(endpoint=st.sampled_from(endpoints), body=BODIES)
        def no_server_error(endpoint: tuple[str, str, str], body: str | bytes) -> None:
            raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
            response = send(*endpoint, raw)
            statuses[response.status_code] += 1
            assert response.status_code < 500, (endpoint, raw[:200], response.text[:500])
            strict_json(response.text)

        no_server_error()
    assert statuses[422] > 0, statuses
    added = log_text(hostile)[log_start:]
    assert "Traceback" not in added, added[-3000:]


# 4. Hostile WebSocket frames.


async def test_a_binary_frame_closes_1003_with_one_log_line(hostile: ServerProcess) -> None:
    await asyncio.sleep(0.2)  # whatever the test before logged is written
    before = len(log_text(hostile))
    sock = await StrictSocket.open(hostile, uid("binary"))
    try:
        await sock.send(b"\x00\x01not text")
        assert await close_code(sock.ws) == 1003
    finally:
        await sock.close()
    await eventually(lambda: "binary frame" in log_text(hostile)[before:])
    await asyncio.sleep(0.3)  # a traceback would follow the line at once
    lines = [line for line in log_text(hostile)[before:].splitlines() if line.strip()]
    assert len(lines) == 1 and "binary frame" in lines[0], lines


FRAME_POISONS = [
    '{"type": "ping", "n": NaN}',
    '{"type": "ping", "n": Infinity}',
    '{"type": "ping", "n": -Infinity}',
    '{"type": "ping", "n": 1e999}',
    '{"type": "ping", "n": ' + "9" * 5000 + "}",
    '{"type": "ping", "s": "\\ud800"}',
    '{"type": "watch", "call_cid": "default:x", "\\udbff": 1}',
    '{"type": "ping", "deep": ' + "[" * 300 + "]" * 300 + "}",
    '{"type": "sfu.offer", "call_cid": "default:x", "sdp": ' + '{"a":' * 300 + "1" + "}" * 301,
    "[" * 60_000,
]


async def test_poisoned_text_frames_get_validation_error_and_the_connection_lives(
    hostile: ServerProcess,
) -> None:
    sock = await StrictSocket.open(hostile, uid("poisoner"))
    try:
        for text in FRAME_POISONS:
            await sock.send(text)
            reply = await sock.next(lambda f: f["type"] in ("error", "pong", "sfu.error"))
            assert reply["type"] == "error", (text[:60], reply)
            assert reply["error"]["code"] == "validation_error", (text[:60], reply)
            await sock.pong()
        await sock.send({"type": "watch", "call_cid": "default:nothing-here"})
        answer = await sock.next(lambda f: f["type"] == "error")
        assert answer["error"]["code"] == "call_not_found", answer
    finally:
        await sock.close()


async def test_frames_over_64_kib_close_1009_and_cost_no_memory(hostile: ServerProcess) -> None:
    async def one(frame: str) -> int | None:
        """Send `frame` before authenticating; the close code."""
        ws = await asyncio.wait_for(connect(hostile.ws_url, proxy=None), WAIT_S)
        try:
            with contextlib.suppress(ConnectionClosed, OSError):
                await asyncio.wait_for(ws.send(frame), WAIT_S)
            return await close_code(ws)
        finally:
            await ws.close()

    assert await one(json.dumps({"type": "auth", "token": "x" * (64 * KIB)})) == 1009
    sock = await StrictSocket.open(hostile, uid("big"))
    try:
        await sock.send({"type": "ping", "pad": "x" * (60 * KIB)})  # under the limit: fine
        await sock.next(lambda f: f["type"] == "pong")
        with contextlib.suppress(ConnectionClosed):
            await sock.send({"type": "ping", "pad": "x" * (64 * KIB)})
        assert await close_code(sock.ws) == 1009
    finally:
        await sock.close()
    # 30 clients at once sending 1 MiB before authenticating, three times over.
    before = rss_mb(hostile)
    codes: list[int | None] = []
    for _ in range(3):
        codes += await asyncio.gather(*(one("x" * MIB) for _ in range(30)))
    growth = rss_mb(hostile) - before
    assert set(codes) == {1009}, Counter(codes)
    assert growth < 60, f"RSS grew by {growth:.1f} MB for 90 frames of 1 MiB"
    async with client(hostile) as http:
        assert (await http.get("/healthz")).status_code == 200


async def live_room(server: ServerProcess, name: str) -> tuple[str, Api, Api]:
    """A live audio room with its host and a joined listener (no send capability)."""
    call_id = uid(name)
    path = f"/calls/audio_room/{call_id}"
    host, listener = Api(server, uid("host")), Api(server, uid("listener"))
    await host.call("POST", path, None, 201)
    await host.call("POST", f"{path}/go-live")
    joined = await listener.call("POST", f"{path}/join")
    assert not {"send-audio", "send-video", "screenshare"} & set(joined["own_capabilities"])
    return f"audio_room:{call_id}", host, listener


#: Too few fields, words where numbers go, an odd extension, a foundation that is not
#: 1-32 ice-chars: each once reached aioice's asserts, or slipped through the parser.
BAD_CANDIDATES = [
    "candidate:garbage",
    "candidate:1 1 udp 2130706431 127.0.0.1 9 typ",
    "candidate:1 x udp 2130706431 127.0.0.1 port typ host",
    "candidate:1 1 udp 99999999999 127.0.0.1 9 host typ",
    "candidate:1 1 udp 2130706431 127.0.0.1 9 typ srflx raddr 0.0.0.0 rport x",
    "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host generation",
    "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
]


async def test_malformed_ice_candidates_get_invalid_message(hostile: ServerProcess) -> None:
    cid, host, listener = await live_room(hostile, "ice")
    before = len(log_text(hostile))
    ws = await Watcher(hostile, listener.user_id).open()
    media = MediaClient(ws, cid)
    try:
        media.pc.addTransceiver("audio", direction="recvonly")
        await media.connect()
        for line in BAD_CANDIDATES:
            start = len(ws.frames)
            await media.send({"type": "sfu.candidate", "candidate": line, "sdp_mid": "0"})
            reply = await ws.wait_for(lambda f: f["type"] in ("sfu.error", "error"), start=start)
            assert (reply["type"], reply.get("code")) == ("sfu.error", "invalid_message"), reply
        start = len(ws.frames)
        await media.send({"type": "sfu.subscribe", "user_ids": "all"})  # still signalling
        await ws.wait_for(lambda f: f["type"] == "sfu.tracks", start=start)
        assert media.pc.connectionState == "connected"
    finally:
        await media.close()
        await ws.close()
        await host.aclose()
        await listener.aclose()
    added = log_text(hostile)[before:]
    assert "AssertionError" not in added and "Traceback" not in added, added[-3000:]


def offer_with_m_lines(count: int) -> str:
    section = (
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:{}\r\n"
        "a=recvonly\r\na=rtpmap:111 opus/48000/2\r\n"
    )
    head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    return head + "".join(section.format(i) for i in range(count))


async def test_offers_with_180_m_lines_are_refused_and_healthz_stays_fast(
    hostile: ServerProcess,
) -> None:
    cid, host, listener = await live_room(hostile, "mlines")
    sdp = offer_with_m_lines(180)
    assert len(sdp) < 32 * KIB  # the m-line count is what is refused, not the size
    frame = json.dumps({"type": "sfu.offer", "call_cid": cid, "sdp": sdp})
    sock = await StrictSocket.open(hostile, listener.user_id)
    timings: list[float] = []
    try:
        async with client(hostile) as http:
            for _ in range(20):
                await sock.send(frame)
            for _ in range(5):  # while the server works through the offers
                started = time.monotonic()
                assert (await http.get("/healthz")).status_code == 200
                timings.append(time.monotonic() - started)
            replies = [await sock.next(lambda f: f["type"] != "pong") for _ in range(20)]
    finally:
        await sock.close()
        await host.aclose()
        await listener.aclose()
    for reply in replies:
        assert (reply["type"], reply.get("code")) == ("sfu.error", "limit_exceeded"), reply
        assert "m-lines" in reply["message"] and reply["call_cid"] == cid
    assert max(timings) < 1.0, f"/healthz took {max(timings):.2f} s during the offers"


async def test_sfu_frames_for_missing_calls_are_refused_and_leave_no_state(
    hostile: ServerProcess,
) -> None:
    sock = await StrictSocket.open(hostile, uid("ghost"))
    run = uuid.uuid4().hex[:8]
    kinds: list[dict[str, Any]] = [
        {"type": "sfu.offer", "sdp": "v=0\r\n"},
        {"type": "sfu.candidate", "candidate": "", "sdp_mid": "0"},
        {"type": "sfu.publish", "source": "microphone"},
        {"type": "sfu.subscribe", "user_ids": "all"},
        {"type": "sfu.leave"},
    ]

    async def flood(first: int, count: int) -> None:
        cids = [f"default:ghost-{run}-{i}" for i in range(first, first + count)]
        for i, cid in enumerate(cids):
            await sock.send({**kinds[i % len(kinds)], "call_cid": cid})
        for i, cid in enumerate(cids):
            reply = await sock.next(lambda f: True)
            assert reply["type"] == "error" and reply["call_cid"] == cid, reply
            assert reply["error"]["code"] == "call_not_found", reply
            assert reply["in_reply_to"] == kinds[i % len(kinds)]["type"], reply

    async def media_calls() -> str:
        headers = {"Authorization": f"Bearer {hostile.server_token()}"}
        async with client(hostile) as http:
            metrics = (await http.get("/metrics", headers=headers)).text
        found = re.search(r"^podium_sfu_calls (\S+)$", metrics, re.MULTILINE)
        assert found, metrics[-500:]
        return found.group(1)

    try:
        await flood(0, 200)  # warm-up
        calls_before, before = await media_calls(), rss_mb(hostile)
        for batch in range(12):
            await flood(200 + batch * 250, 250)
        growth = rss_mb(hostile) - before
        await sock.pong()
    finally:
        await sock.close()
    assert growth < 30, f"RSS grew by {growth:.1f} MB for 3,000 refused sfu frames"
    assert await media_calls() == calls_before, "refused frames left media state behind"
