"""Ten thousand listeners in one call against a real `podium serve` (issue 12, point 6).

    python bench/audience.py [--listeners N] [--runs K] [--procs P] [--no-workers-run]

Each run starts fresh servers on free 127.0.0.1 ports, each in its own process:
`podium serve` with one worker on its embedded SQLite default, then (when the
installed server has `--workers` and PostgreSQL and Redis are there) `podium
serve --workers 2` on a fresh PostgreSQL database and a Redis of the run's own,
then the plain-websockets broadcast server of `bench.common` (the ceiling).

The listeners come from P load-generator processes (multiprocessing, each with
its own event loop and its own httpx + websockets clients); this process plays
the host and the requesters of the permission loop. Against each podium server:

1. the host creates an `audio_room` call, goes live and watches it; the
   requesters (one per permission round, listeners too) join and watch;
2. ramp to 500: the generators join (HTTP POST .../join with a minted token)
   and watch (WebSocket `watch`) listeners until 500 are watching, at most
   `--join-concurrency` at a time in all; join_per_s_500 is their rate;
3. permission rounds with 500 connected, one after another: t0 a requester
   POSTs a request for send-audio; t1 the host's socket has
   `call.permission_request`, the host POSTs accept at once (ta); t2 the
   requester's socket has `call.permissions_updated` with send-audio. Every
   listener socket records when `call.participant_moved` (tier stage) for the
   requester arrived; the round waits until all have it (bounded), then the
   host revokes send-audio and the round waits for the move back, so the
   stage stays one host and rounds do not overlap;
4. ramp on to N, counting the frames that the listeners already watching
   receive meanwhile; the server's RSS is read before the first and after the
   last listener;
5. the same permission rounds with N connected: loop (t2 - t0) and the stage
   event (ta -> the last of the N listener sockets has the move).

The ceiling is measured once per run after the podium servers are gone: the
generators connect N plain listeners, and this process triggers broadcasts of
a frame the size of podium's `call.participant_moved`, one at a time. Frame
times are when the bytes reached the listener's socket (`data_received`), on
`time.perf_counter` (CLOCK_MONOTONIC, one clock for every process).

CPU use of the server, of each generator process and of the rest of the machine
is reported per phase, so a saturated generator or a busy machine shows. Medians
over the runs are printed as a table with the targets, and written as JSON
(`bench/results/audience.json`, per-run figures included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import multiprocessing.connection
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from rich.console import Console
from rich.table import Table
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import WebSocketURI, parse_uri

from bench.common import (
    SECRET,
    CeilingServer,
    PodiumServer,
    PodiumWorkersServer,
    PostgresDatabase,
    RedisServer,
    encode,
    event_loop_factory,
    load_average,
    machine_info,
    median,
    percentile,
    podium_serve_has_option,
    port_open,
    raise_nofile_limit,
    run_async,
    system_busy_seconds,
    tree_cpu_seconds,
    tree_rss_bytes,
)
from podium.tokens import mint_user_token

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "audience.json"
CALL_TYPE = "audio_room"
CAPABILITY = "send-audio"
MOVED = "call.participant_moved"
WAIT_S = 15.0
"""Bound on every single wait (connect, watch, an event, an HTTP call)."""
DELIVERY_WAIT_S = 20.0
"""Bound on one event reaching every listener."""
PIPE_SLACK_S = 30.0
"""Added to a generator command's own bound before its reply is given up on."""
BASELINE = 500
TARGET_CONNECTED = 10_000
TARGET_JOIN_RATIO = 0.5
TARGET_JOIN_PER_S = 300.0
TARGET_LOOP_RATIO = 2.0
TARGET_FANOUT_RATIO = 0.75
TARGET_RSS_KIB = 64.0
SATURATED = 0.85
"""A generator process using this share of a core in a phase may be what limits it."""

out = Console(width=None if sys.stdout.isatty() else 180)
err = Console(stderr=True)


def now() -> float:
    return time.perf_counter()


def ms(seconds: float) -> float:
    return seconds * 1000.0


def stage_key(frame: dict[str, Any]) -> str | None:
    """What the rounds wait for: a participant's move, by user and new tier."""
    if frame.get("type") != MOVED:
        return None
    participant = frame.get("participant") or {}
    return f"{participant.get('user_id')}:{participant.get('tier')}"


# both sides: sockets that note arrival times


@dataclass
class Arrival:
    count: int = 0
    first: float = math.inf
    last: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int | None = None


class Arrivals:
    """When each keyed frame reached how many sockets, and waits until all have it."""

    def __init__(self) -> None:
        self.keys: dict[str, Arrival] = {}
        self.sample: str | None = None

    def record(self, key: str, at: float, raw: str) -> None:
        arrival = self.keys.setdefault(key, Arrival())
        arrival.count += 1
        arrival.first = min(arrival.first, at)
        arrival.last = max(arrival.last, at)
        if arrival.expected is not None and arrival.count >= arrival.expected:
            arrival.done.set()
        if self.sample is None:
            self.sample = raw

    async def wait(self, key: str, expected: int, timeout_s: float) -> dict[str, Any]:
        arrival = self.keys.setdefault(key, Arrival())
        arrival.expected = expected
        if arrival.count < expected:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await arrival.done.wait()
        del self.keys[key]
        return {
            "count": arrival.count,
            "expected": expected,
            "first": arrival.first if arrival.count else None,
            "last": arrival.last if arrival.count else None,
        }


class Socket(asyncio.Protocol):
    """One watching WebSocket on websockets' sans-I/O protocol: no task per connection or
    frame, so thousands fit in one generator process. Frames are stamped in
    `data_received`, when their bytes reach the socket."""

    def __init__(self, uri: WebSocketURI, user_id: str, arrivals: Arrivals) -> None:
        self.user_id = user_id
        self.arrivals = arrivals
        self.protocol = ClientProtocol(uri, max_size=1 << 20)
        self.request = self.protocol.connect()
        self.transport: Any = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.frames = 0
        """Frames after `watch.ok`, health checks not counted."""
        self.types: Counter[str] = Counter()
        self.open = False
        self._waiting: dict[tuple[str, str], asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self._watched = False
        self._parts: list[bytes] = []

    def connection_made(self, transport: Any) -> None:  # uvloop's is no asyncio.Transport
        self.transport = transport
        self.protocol.send_request(self.request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        at = now()
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self._opened()
            elif isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.CONT):
                self._parts.append(bytes(event.data))
                if event.fin:
                    raw = b"".join(self._parts).decode()
                    self._parts = []
                    self._on_frame(at, raw, json.loads(raw))
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"{self.user_id}: connection lost"))

    def _opened(self) -> None:
        if self.opened.done():
            return
        failure = self.protocol.handshake_exc
        if failure is None:
            self.open = True
            self.opened.set_result(None)
        else:
            self.opened.set_exception(failure)

    def _flush(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)
        if self.protocol.close_expected():
            self.transport.close()

    def expect(self, kind: str, key: str = "") -> asyncio.Future[tuple[float, dict[str, Any]]]:
        fut = asyncio.get_running_loop().create_future()
        self._waiting[(kind, key)] = fut
        return fut

    def send(self, frame: dict[str, Any]) -> None:
        if self.open and self.protocol.state is State.OPEN:
            self.protocol.send_text(encode(frame).encode())
            self._flush()

    def _on_frame(self, at: float, raw: str, frame: dict[str, Any]) -> None:
        kind = str(frame.get("type"))
        if kind == "health.check":  # answer, or the server closes us as idle after 30 s
            self.send({"type": "pong"})
            return
        if self._watched:
            self.frames += 1
            self.types[kind] += 1
        key = ""
        if kind == "watch.ok":
            self._watched = True
        elif kind == "call.permission_request":
            key = frame["request"]["user_id"]
        elif kind == "call.permissions_updated":
            if CAPABILITY not in frame.get("own_capabilities", ()):
                return
            key = frame["user_id"]
        else:
            moved = stage_key(frame)
            if moved is not None:
                self.arrivals.record(moved, at, raw)
            return
        fut = self._waiting.pop((kind, key), None)
        if fut is not None and not fut.done():
            fut.set_result((at, frame))

    def abort(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.abort()


async def open_socket(ws_url: str, user_id: str, cid: str, arrivals: Arrivals) -> Socket:
    """Connect, and watch `cid` (bounded waits); the socket is aborted on failure."""
    uri = parse_uri(ws_url)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(WAIT_S):
        _, sock = await loop.create_connection(
            lambda: Socket(uri, user_id, arrivals), uri.host, uri.port
        )
    try:
        async with asyncio.timeout(WAIT_S):
            await sock.opened
            ok = sock.expect("watch.ok")
            sock.send({"type": "watch", "call_cid": cid})
            await ok
    except BaseException:
        sock.abort()
        raise
    return sock


def check(response: httpx.Response, *expected: int) -> dict[str, Any]:
    if response.status_code not in expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return body


def auth(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_user_token(SECRET, user_id, name=user_id)}"}


async def join_and_watch(
    http: httpx.AsyncClient | None,
    call_url: str,
    ws_url: str,
    user: str,
    cid: str,
    arrivals: Arrivals,
) -> Socket:
    """POST .../join (skipped for the ceiling, `http` None), then connect and watch."""
    headers = auth(user)
    if http is not None:
        check(await http.post(f"{call_url}/join", headers=headers), 200)
    token = headers["Authorization"].removeprefix("Bearer ")
    return await open_socket(f"{ws_url}?token={token}", user, cid, arrivals)


# load generator processes


def read_pipe(
    conn: multiprocessing.connection.Connection,
    loop: asyncio.AbstractEventLoop,
    deliver: Callable[[Any], None],
    at_end: Any,
) -> None:
    """Hand each message from `conn` to `deliver` on `loop`, then `at_end` once it closes.

    A thread reads, on a blocking pipe: the loop's own readers (uvloop's) make the
    descriptor non-blocking, and a large message then arrives in pieces that
    `Connection.recv` cannot take.
    """

    def reader() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                with contextlib.suppress(RuntimeError):  # the loop is gone
                    loop.call_soon_threadsafe(deliver, at_end)
                return
            loop.call_soon_threadsafe(deliver, message)

    threading.Thread(target=reader, name="pipe-reader", daemon=True).start()


class Generator:
    """One load-generator process: takes commands over its pipe, one at a time."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self.conn = conn
        self.arrivals = Arrivals()
        self.sockets: list[Socket] = []
        self.window: list[tuple[Socket, int]] = []

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        read_pipe(self.conn, loop, inbox.put_nowait, None)
        try:
            while (command := await inbox.get()) is not None:
                try:
                    reply = await getattr(self, f"do_{command.pop('op')}")(**command)
                except Exception as exc:
                    reply = {"error": f"{type(exc).__name__}: {exc}"}
                reply["cpu"] = time.process_time()
                self.conn.send(reply)
        finally:
            self._abort_all()

    async def do_cpu(self) -> dict[str, Any]:
        return {}

    async def do_ramp(
        self, call_url: str | None, ws_url: str, cid: str, users: list[str], concurrency: int
    ) -> dict[str, Any]:
        gate = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        done: list[float] = []
        started = now()
        async with httpx.AsyncClient(timeout=WAIT_S, limits=limits) as http:

            async def one(user: str) -> None:
                async with gate:
                    sock = await join_and_watch(
                        http if call_url else None, call_url or "", ws_url, user, cid, self.arrivals
                    )
                    self.sockets.append(sock)
                    done.append(now())

            results = await asyncio.gather(*(one(u) for u in users), return_exceptions=True)
        errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
        return {
            "started": started,
            "finished": now(),
            "done": done,
            "errors": errors[:5],
            "error_count": len(errors),
        }

    async def do_open(self) -> dict[str, Any]:
        return {"open": sum(s.open for s in self.sockets)}

    async def do_window_start(self) -> dict[str, Any]:
        self.window = [(s, s.frames) for s in self.sockets if s.open]
        for sock, _ in self.window:
            sock.types.clear()
        return {"listeners": len(self.window)}

    async def do_window_stop(self) -> dict[str, Any]:
        frames = [s.frames - before for s, before in self.window]
        types: Counter[str] = Counter()
        for sock, _ in self.window:
            types.update(sock.types)
        self.window = []
        return {"frames": frames, "types": dict(types)}

    async def do_collect(self, key: str, timeout_s: float) -> dict[str, Any]:
        expected = sum(s.open for s in self.sockets)
        return await self.arrivals.wait(key, expected, timeout_s)

    async def do_sample(self) -> dict[str, Any]:
        return {"sample": self.arrivals.sample}

    async def do_close(self) -> dict[str, Any]:
        count = len(self.sockets)
        self._abort_all()
        self.arrivals = Arrivals()
        return {"closed": count}

    def _abort_all(self) -> None:
        for sock in self.sockets:
            sock.abort()
        self.sockets = []
        self.window = []


def generator_main(conn: multiprocessing.connection.Connection, loop: str) -> None:
    """Entry of a generator process; it ends when its pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    raise_nofile_limit()
    run_async(Generator(conn).serve(), loop)


class GeneratorPool:
    """P generator processes, each sent one command at a time."""

    def __init__(self, procs: int, loop: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns: list[multiprocessing.connection.Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        for i in range(procs):
            parent, child = context.Pipe()
            proc = context.Process(
                target=generator_main, args=(child, loop), name=f"audience-gen-{i}", daemon=True
            )
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        self._replies: list[asyncio.Queue[dict[str, Any]]] = []

    def __len__(self) -> int:
        return len(self.conns)

    def attach(self) -> None:
        loop = asyncio.get_running_loop()
        self._replies = [asyncio.Queue() for _ in self.conns]
        for conn, queue in zip(self.conns, self._replies, strict=True):
            read_pipe(conn, loop, queue.put_nowait, {"error": "generator process ended"})

    async def call(
        self, op: str, timeout_s: float = WAIT_S, per_gen: Sequence[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """Send `op` to every generator (with its own arguments) and gather the replies."""
        args = per_gen or [{} for _ in self.conns]
        for conn, extra in zip(self.conns, args, strict=True):
            await asyncio.to_thread(conn.send, {"op": op, **extra})
        replies = []
        for i, queue in enumerate(self._replies):
            reply = await asyncio.wait_for(queue.get(), timeout_s + PIPE_SLACK_S)
            if "error" in reply:
                raise RuntimeError(f"generator {i}, {op}: {reply['error']}")
            replies.append(reply)
        return replies

    async def cpu(self) -> list[float]:
        return [r["cpu"] for r in await self.call("cpu")]

    def stop(self) -> None:
        for conn in self.conns:
            conn.close()
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


# phases and their CPU use


@dataclass
class Phase:
    """Wall and CPU seconds of one phase: the server, each generator, and the machine."""

    wall: float
    server: float | None
    generators: list[float]
    host: float
    system: float | None

    def figures(self, prefix: str) -> dict[str, Any]:
        wall = self.wall if self.wall > 0 else math.nan
        gens = sum(self.generators)
        other = None
        if self.system is not None and self.server is not None:
            other = max(0.0, self.system - self.server - gens - self.host) / wall
        return {
            f"{prefix}_s": self.wall,
            f"{prefix}_server_cpu": None if self.server is None else self.server / wall,
            f"{prefix}_generators_cpu": gens / wall,
            f"{prefix}_generator_max_cpu": max(self.generators, default=0.0) / wall,
            f"{prefix}_host_cpu": self.host / wall,
            f"{prefix}_other_cpu": other,
        }


class PhaseClock:
    def __init__(self, server_cpu: Callable[[], float | None], pool: GeneratorPool) -> None:
        self.server_cpu = server_cpu
        self.pool = pool

    async def start(self) -> tuple[float, float | None, list[float], float, float | None]:
        gens = await self.pool.cpu()
        return now(), self.server_cpu(), gens, time.process_time(), system_busy_seconds()

    async def stop(
        self, begun: tuple[float, float | None, list[float], float, float | None]
    ) -> Phase:
        gens = await self.pool.cpu()
        wall, server, gens0, host, system = begun
        server1, system1 = self.server_cpu(), system_busy_seconds()
        return Phase(
            wall=now() - wall,
            server=None if server is None or server1 is None else server1 - server,
            generators=[b - a for a, b in zip(gens0, gens, strict=True)],
            host=time.process_time() - host,
            system=None if system is None or system1 is None else system1 - system,
        )


def split(items: Sequence[str], parts: int) -> list[list[str]]:
    return [list(items[i::parts]) for i in range(parts)]


def ramp_figures(prefix: str, replies: list[dict[str, Any]]) -> dict[str, Any]:
    """Rate over the whole ramp: completed joins / (last completion - first start)."""
    done = sorted(t for r in replies for t in r["done"])
    started = min(r["started"] for r in replies)
    span = (done[-1] - started) if done else 0.0
    tail = done[len(done) * 9 // 10 :]
    tail_rate = (
        (len(tail) - 1) / (tail[-1] - tail[0]) if len(tail) > 1 and tail[-1] > tail[0] else None
    )
    errors = [e for r in replies for e in r["errors"]]
    return {
        f"{prefix}_joins": len(done),
        f"{prefix}_span_s": span,
        f"{prefix}_join_per_s": len(done) / span if span > 0 else None,
        f"{prefix}_last_tenth_join_per_s": tail_rate,
        f"{prefix}_errors": errors[:5],
        f"{prefix}_error_count": sum(r["error_count"] for r in replies),
    }


# one podium server under load


class AudienceCall:
    """The host, the requesters and the generators' listeners of one call."""

    def __init__(
        self,
        server: PodiumServer,
        http: httpx.AsyncClient,
        pool: GeneratorPool,
        args: argparse.Namespace,
    ) -> None:
        self.server = server
        self.http = http
        self.pool = pool
        self.args = args
        call_id = f"bench-{uuid.uuid4().hex[:8]}"
        self.cid = f"{CALL_TYPE}:{call_id}"
        self.url = f"{server.url}/v1/calls/{CALL_TYPE}/{call_id}"
        self.arrivals = Arrivals()
        self.host: Socket | None = None
        self.requesters: list[Socket] = []
        self.stage_events = True
        """False once a round saw no `call.participant_moved` at all: not sent by this server."""

    def server_cpu(self) -> float | None:
        return tree_cpu_seconds(self.server.pid)

    def server_rss(self) -> int | None:
        return tree_rss_bytes(self.server.pid)

    async def setup(self, requesters: int) -> None:
        http, url = self.http, self.url
        check(await http.post(url, json={}, headers=auth("host")), 200, 201)
        check(await http.post(f"{url}/go-live", headers=auth("host")), 200)
        self.host = await join_and_watch(
            None, url, self.server.ws_url, "host", self.cid, Arrivals()
        )
        gate = asyncio.Semaphore(8)

        async def one(i: int) -> Socket:
            async with gate:
                user = f"requester-{i}"
                return await join_and_watch(
                    http, url, self.server.ws_url, user, self.cid, self.arrivals
                )

        self.requesters = list(await asyncio.gather(*(one(i) for i in range(requesters))))

    async def ramp(self, users: list[str]) -> list[dict[str, Any]]:
        parts = split(users, len(self.pool))
        share = max(1, self.args.join_concurrency // len(self.pool))
        per_gen = [
            {
                "call_url": self.url,
                "ws_url": self.server.ws_url,
                "cid": self.cid,
                "users": part,
                "concurrency": share,
            }
            for part in parts
        ]
        bound = WAIT_S * (len(users) / max(1, self.args.join_concurrency) + 2)
        return await self.pool.call("ramp", bound, per_gen)

    async def connected(self) -> int:
        replies = await self.pool.call("open")
        return sum(r["open"] for r in replies) + sum(s.open for s in self.requesters)

    async def delivered(self, key: str) -> dict[str, Any]:
        """Wait (bounded) until every listener socket has the move `key`."""
        per_gen = [{"key": key, "timeout_s": DELIVERY_WAIT_S} for _ in range(len(self.pool))]
        local = asyncio.create_task(
            self.arrivals.wait(key, sum(s.open for s in self.requesters), DELIVERY_WAIT_S)
        )
        parts = [*(await self.pool.call("collect", DELIVERY_WAIT_S, per_gen)), await local]
        lasts = [p["last"] for p in parts if p["last"] is not None]
        return {
            "count": sum(p["count"] for p in parts),
            "expected": sum(p["expected"] for p in parts),
            "last": max(lasts) if lasts else None,
        }

    async def round(self, requester: Socket) -> dict[str, Any]:
        assert self.host is not None
        http, url, user = self.http, self.url, requester.user_id
        asked = self.host.expect("call.permission_request", user)
        updated = requester.expect("call.permissions_updated", user)
        t0 = now()
        body = {"permissions": [CAPABILITY]}
        request = asyncio.create_task(
            http.post(f"{url}/permission-requests", json=body, headers=auth(user))
        )
        try:
            await asyncio.wait(
                [asked, request], timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED
            )
            if request.done():
                check(request.result(), 201)
            t1, frame = await asyncio.wait_for(asked, WAIT_S)
            accept_url = f"{url}/permission-requests/{frame['request']['id']}/accept"
            ta = now()
            accepted = asyncio.create_task(http.post(accept_url, headers=auth("host")))
            t2, _ = await asyncio.wait_for(updated, WAIT_S)
            check(await asyncio.wait_for(accepted, WAIT_S), 200)
        finally:
            check(await asyncio.wait_for(request, WAIT_S), 201)
        result: dict[str, Any] = {
            "loop_ms": ms(t2 - t0),
            "notify_ms": ms(t1 - t0),
            "update_ms": ms(t2 - t1),
        }
        if self.stage_events:
            moved = await self.delivered(f"{user}:stage")
            if moved["count"] == 0:
                self.stage_events = False
            result["stage_delivered"] = moved["count"]
            result["stage_expected"] = moved["expected"]
            if moved["last"] is not None and moved["count"] == moved["expected"]:
                result["stage_event_ms"] = ms(moved["last"] - ta)
                result["fanout_per_s"] = moved["count"] / (moved["last"] - ta)
        revoke = {"user_id": user, "revoke": [CAPABILITY]}
        check(await http.post(f"{url}/user-permissions", json=revoke, headers=auth("host")), 200)
        if self.stage_events:
            await self.delivered(f"{user}:audience")
        return result

    async def rounds(self, requesters: list[Socket], warmup: int) -> dict[str, Any]:
        loops: list[float] = []
        notify: list[float] = []
        update: list[float] = []
        stage: list[float] = []
        fanout: list[float] = []
        failures: list[str] = []
        incomplete = 0
        for r, requester in enumerate(requesters):
            if r:
                await asyncio.sleep(self.args.round_pause_ms / 1000)
            try:
                one = await self.round(requester)
            except Exception as exc:
                failures.append(f"round {r}: {type(exc).__name__}: {exc}")
                continue
            if r < warmup:
                continue
            loops.append(one["loop_ms"])
            notify.append(one["notify_ms"])
            update.append(one["update_ms"])
            if "stage_event_ms" in one:
                stage.append(one["stage_event_ms"])
                fanout.append(one["fanout_per_s"])
            elif self.stage_events:
                incomplete += 1
        return {
            "rounds_ok": len(loops),
            "round_failures": len(failures),
            "round_errors": failures[:5],
            "loop_p50_ms": percentile(loops, 50),
            "loop_p99_ms": percentile(loops, 99),
            "loop_max_ms": max(loops, default=None),
            "notify_p50_ms": percentile(notify, 50),
            "update_p50_ms": percentile(update, 50),
            "stage_events": len(stage),
            "stage_events_incomplete": incomplete,
            "stage_event_p50_ms": percentile(stage, 50),
            "stage_event_p99_ms": percentile(stage, 99),
            "fanout_deliveries_per_s": median(fanout),
        }

    def idle_frames(self, replies: list[dict[str, Any]], span: float) -> dict[str, Any]:
        frames = [f for r in replies for f in r["frames"]]
        types: Counter[str] = Counter()
        for r in replies:
            types.update(r["types"])
        per_listener = median(frames)
        return {
            "audience_frames_per_listener": per_listener,
            "audience_frames_per_listener_max": max(frames, default=None),
            "audience_frames_per_s": per_listener / span
            if per_listener is not None and span > 0
            else None,
            "idle_listeners": len(frames),
            "idle_frame_types": dict(types),
        }

    def close(self) -> None:
        for sock in [*self.requesters, *([self.host] if self.host else [])]:
            sock.abort()


async def measure_podium(
    args: argparse.Namespace, server: PodiumServer, pool: GeneratorPool
) -> dict[str, Any]:
    """Steps 1-5 of the module docstring against a started server."""
    rounds, warmup = args.rounds, args.warmup
    baseline = min(BASELINE, args.listeners // 2)
    per_level = rounds + warmup
    requesters = min(2 * per_level, baseline)
    result: dict[str, Any] = {"baseline_listeners": baseline, "requesters": requesters}
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(timeout=WAIT_S, limits=limits) as http:
        call = AudienceCall(server, http, pool, args)
        clock = PhaseClock(call.server_cpu, pool)
        try:
            rss_empty = call.server_rss()
            await call.setup(requesters)
            users = [f"listener-{i}" for i in range(args.listeners - requesters)]
            first, rest = users[: baseline - requesters], users[baseline - requesters :]

            begun = await clock.start()
            ramp_500 = await call.ramp(first)
            ramp_500_phase = await clock.stop(begun)
            result.update(ramp_figures("ramp_500", ramp_500))
            result["join_per_s_500"] = result["ramp_500_join_per_s"]
            result["connected_500"] = await call.connected()
            err.print(
                f"    {result['connected_500']} watching; rounds at {baseline} "
                f"({result['ramp_500_join_per_s'] or 0:.0f} joins/s)"
            )
            at_500 = await call.rounds(call.requesters[:per_level], warmup)
            result.update({f"{k}_500": v for k, v in at_500.items()})

            window = await pool.call("window_start")
            begun = await clock.start()
            ramp_n = await call.ramp(rest)
            ramp_n_phase = await clock.stop(begun)
            frames = await pool.call("window_stop")
            result["window_listeners"] = sum(w["listeners"] for w in window)
            result.update(ramp_figures("ramp_n", ramp_n))
            span_500, span_n = result["ramp_500_span_s"], result["ramp_n_span_s"]
            joins = result["ramp_500_joins"] + result["ramp_n_joins"]
            result["join_per_s"] = joins / (span_500 + span_n) if span_500 + span_n > 0 else None
            result.update(call.idle_frames(frames, span_n))
            result["connected"] = await call.connected()
            rss_full = call.server_rss()
            if rss_empty is not None and rss_full is not None and result["connected"]:
                result["rss_per_listener_kib"] = (rss_full - rss_empty) / 1024 / result["connected"]
                result["server_rss_mib"] = rss_full / 2**20
            err.print(
                f"    {result['connected']} watching; rounds at {args.listeners} "
                f"({result['join_per_s'] or 0:.0f} joins/s over the ramp)"
            )
            await pool.call("window_start")
            begun = await clock.start()
            at_n = await call.rounds(call.requesters[per_level:], warmup)
            rounds_phase = await clock.stop(begun)
            result.update(at_n)
            round_frames = await pool.call("window_stop")
            per_listener = median(f for r in round_frames for f in r["frames"])
            result["round_frames_per_listener"] = (
                None if per_listener is None else per_listener / per_level
            )
            result["round_frame_types"] = dict(
                sum((Counter(r["types"]) for r in round_frames), Counter())
            )
            result["connected_at_end"] = await call.connected()
            result["sample_frame"] = next(
                (r["sample"] for r in await pool.call("sample") if r["sample"]),
                call.arrivals.sample,
            )
            result["stage_events_sent"] = call.stage_events
            ramp = Phase(
                wall=ramp_500_phase.wall + ramp_n_phase.wall,
                server=None
                if ramp_500_phase.server is None or ramp_n_phase.server is None
                else ramp_500_phase.server + ramp_n_phase.server,
                generators=[
                    a + b
                    for a, b in zip(ramp_500_phase.generators, ramp_n_phase.generators, strict=True)
                ],
                host=ramp_500_phase.host + ramp_n_phase.host,
                system=None
                if ramp_500_phase.system is None or ramp_n_phase.system is None
                else ramp_500_phase.system + ramp_n_phase.system,
            )
            result.update(ramp.figures("ramp"))
            result.update(rounds_phase.figures("rounds"))
        finally:
            call.close()
    return result


async def measure_ceiling(
    args: argparse.Namespace, workdir: Path, pool: GeneratorPool, sample: str | None
) -> dict[str, Any]:
    """N plain listeners on the broadcast server; one frame at a time to all of them."""
    server = await CeilingServer(workdir, loop=args.loop).start()
    result: dict[str, Any] = {}
    cid = f"{CALL_TYPE}:ceiling"
    try:
        clock = PhaseClock(lambda: tree_cpu_seconds(server.pid), pool)
        users = [f"listener-{i}" for i in range(args.listeners)]
        share = max(1, args.connect_concurrency // len(pool))
        per_gen = [
            {
                "call_url": None,
                "ws_url": server.ws_url,
                "cid": cid,
                "users": part,
                "concurrency": share,
            }
            for part in split(users, len(pool))
        ]
        bound = WAIT_S * (args.listeners / max(1, args.connect_concurrency) + 2)
        replies = await pool.call("ramp", bound, per_gen)
        result.update(ramp_figures("ceiling_ramp", replies))
        connected = sum(r["open"] for r in await pool.call("open"))
        result["ceiling_connected"] = connected
        template = (
            json.loads(sample)
            if sample
            else {
                "type": MOVED,
                "call_cid": cid,
                "seq": 0,
                "created_at": datetime.now(UTC).isoformat(),
                "participant": {
                    "user_id": "",
                    "name": "listener-0",
                    "tier": "stage",
                    "joined_at": "",
                },
            }
        )
        trigger = await connect(
            server.ws_url, ping_interval=None, open_timeout=WAIT_S, compression=None
        )
        rates: list[float] = []
        times: list[float] = []
        missing = 0
        try:
            await asyncio.wait_for(trigger.recv(), WAIT_S)  # connection.ok
            begun = await clock.start()
            for k in range(args.ceiling_warmup + args.ceiling_events):
                participant = {
                    **template.get("participant", {}),
                    "user_id": f"ceiling-{k}",
                    "tier": "stage",
                }
                frame = {**template, "participant": participant}
                key = stage_key(frame) or ""
                fired = now()
                await trigger.send(encode({"type": "trigger", "frame": frame}))
                per_gen_collect = [
                    {"key": key, "timeout_s": DELIVERY_WAIT_S} for _ in range(len(pool))
                ]
                parts = await pool.call("collect", DELIVERY_WAIT_S, per_gen_collect)
                await asyncio.wait_for(trigger.recv(), WAIT_S)  # trigger.ok
                count = sum(p["count"] for p in parts)
                lasts = [p["last"] for p in parts if p["last"] is not None]
                if k < args.ceiling_warmup:
                    continue
                missing += connected - count
                if lasts and count == connected:
                    times.append(max(lasts) - fired)
                    rates.append(count / (max(lasts) - fired))
                await asyncio.sleep(args.round_pause_ms / 1000)
            phase = await clock.stop(begun)
        finally:
            await trigger.close()
        result.update(phase.figures("ceiling"))
        result["ceiling_deliveries_per_s"] = median(rates)
        result["ceiling_event_p50_ms"] = percentile([ms(t) for t in times], 50)
        result["ceiling_missing"] = missing
        result["ceiling_frame_bytes"] = len(encode(template))
    finally:
        await pool.call("close")
        await asyncio.to_thread(server.stop)
    return result


# configurations


@dataclass(frozen=True)
class Config:
    key: str
    label: str


CONFIGS = (
    Config("sqlite", "podium serve, 1 worker, embedded SQLite (default)"),
    Config("workers", "podium serve --workers 2, PostgreSQL + Redis"),
)


def workers_unavailable(args: argparse.Namespace) -> str | None:
    """Why the `--workers 2` row cannot run, or None when it can."""
    if not args.workers_run:
        return "--no-workers-run"
    if not podium_serve_has_option("--workers"):
        return "not available: podium serve has no --workers option yet"
    missing = [
        name for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not port_open(port)
    ]
    if "PostgreSQL" in missing:
        return "not available: PostgreSQL is not reachable on 127.0.0.1:5432"
    return None


async def run_config(
    args: argparse.Namespace, config: Config, workdir: Path, pool: GeneratorPool
) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        server: PodiumServer
        if config.key == "sqlite":
            server = PodiumServer(workdir)
        else:
            database = await PostgresDatabase(f"podium_bench_{uuid.uuid4().hex[:10]}").create()
            stack.push_async_callback(database.drop)
            redis = await RedisServer(workdir).start()
            stack.push_async_callback(asyncio.to_thread, redis.stop)
            server = PodiumWorkersServer(
                workdir, workers=2, database_url=database.url, redis_url=redis.url
            )
        await server.start()
        stack.push_async_callback(pool.call, "close")
        stack.push_async_callback(asyncio.to_thread, server.stop)
        result = await measure_podium(args, server, pool)
        result["workers"] = 2 if config.key == "workers" else 1
        return result


async def run_once(
    args: argparse.Namespace, run: int, pool: GeneratorPool, skip: str | None
) -> dict[str, Any]:
    result: dict[str, Any] = {"load_average_at_start": load_average(), "configs": {}}
    with tempfile.TemporaryDirectory(prefix="podium-audience-") as tmp:
        async with asyncio.timeout(args.run_timeout):
            sample = None
            for config in CONFIGS:
                if config.key == "workers" and skip is not None:
                    result["configs"][config.key] = {"unavailable": skip}
                    continue
                err.print(f"  run {run}: {config.label}")
                workdir = Path(tmp) / config.key
                workdir.mkdir()
                figures = await run_config(args, config, workdir, pool)
                sample = sample or figures.get("sample_frame")
                result["configs"][config.key] = figures
            err.print(f"  run {run}: ceiling (plain websockets broadcast) at {args.listeners}")
            result["ceiling"] = await measure_ceiling(args, Path(tmp), pool, sample)
    ceiling = result["ceiling"]["ceiling_deliveries_per_s"]
    for figures in result["configs"].values():
        if "unavailable" in figures:
            continue
        figures["ceiling_deliveries_per_s"] = ceiling
        figures.update(ratios(figures))
    return result


def ratios(f: dict[str, Any]) -> dict[str, float | None]:
    def ratio(a: str, b: str) -> float | None:
        x, y = f.get(a), f.get(b)
        return x / y if x is not None and y else None

    return {
        "join_ratio": ratio("join_per_s", "join_per_s_500"),
        "loop_p99_ratio": ratio("loop_p99_ms", "loop_p99_ms_500"),
        "fanout_ratio": ratio("fanout_deliveries_per_s", "ceiling_deliveries_per_s"),
    }


# reporting

SUMMARY_KEYS = (
    "connected",
    "connected_at_end",
    "join_per_s",
    "join_per_s_500",
    "join_ratio",
    "ramp_n_last_tenth_join_per_s",
    "loop_p50_ms",
    "loop_p99_ms",
    "loop_p50_ms_500",
    "loop_p99_ms_500",
    "loop_p99_ratio",
    "stage_event_p50_ms",
    "stage_event_p99_ms",
    "stage_event_p99_ms_500",
    "fanout_deliveries_per_s",
    "ceiling_deliveries_per_s",
    "fanout_ratio",
    "rss_per_listener_kib",
    "server_rss_mib",
    "audience_frames_per_listener",
    "audience_frames_per_s",
    "round_frames_per_listener",
    "ramp_n_span_s",
    "rounds_ok",
    "round_failures",
    "rounds_ok_500",
    "stage_events",
    "stage_events_incomplete",
    "ramp_server_cpu",
    "ramp_generators_cpu",
    "ramp_generator_max_cpu",
    "ramp_other_cpu",
    "rounds_server_cpu",
    "rounds_generators_cpu",
    "rounds_generator_max_cpu",
    "rounds_other_cpu",
    "ramp_n_error_count",
)
CEILING_KEYS = (
    "ceiling_connected",
    "ceiling_deliveries_per_s",
    "ceiling_event_p50_ms",
    "ceiling_missing",
    "ceiling_frame_bytes",
    "ceiling_server_cpu",
    "ceiling_generators_cpu",
    "ceiling_generator_max_cpu",
    "ceiling_other_cpu",
)
INT_KEYS = (
    "connected",
    "connected_at_end",
    "rounds_ok",
    "round_failures",
    "rounds_ok_500",
    "ceiling_connected",
)

DEFINITIONS = {
    "connected": "listener sockets watching the call at once after the ramp to N "
    "(requesters included)",
    "join_per_s": "join (POST .../join) + WebSocket watch completions / their summed ramp "
    "time, over the whole ramp from the requesters to N (the rounds at 500 not counted)",
    "join_per_s_500": "the same over the first part of the ramp, up to 500 watching",
    "ramp_n_last_tenth_join_per_s": "rate of the last tenth of the joins (the room nearly full)",
    "loop_*": "t2 - t0: requester POSTs a send-audio request → host socket has "
    "call.permission_request → host POSTs accept → requester socket has "
    "call.permissions_updated with send-audio",
    "stage_event_*": "host POSTs accept → the last of the listener sockets has "
    "call.participant_moved (tier stage) for the requester; only events every listener got",
    "fanout_deliveries_per_s": "median over the accepts at N of listeners / stage_event time",
    "ceiling_deliveries_per_s": "median over broadcasts of N / (trigger sent → the last of N "
    "plain listeners has the frame): plain websockets broadcast() of a frame the size of "
    "podium's, measured after the podium servers are gone",
    "rss_per_listener_kib": "(server RSS with N watching - RSS before the first) / connected; "
    "the server's RSS summed over its processes",
    "audience_frames_per_listener": "median frames (health checks not counted) that a listener "
    "already watching received during the ramp from 500 to N; audience_frames_per_s divides "
    "it by the ramp's duration",
    "round_frames_per_listener": "median frames a listener received during the rounds with N "
    "connected, per round (an accept and a revoke each); round_frame_types counts them by type",
    "*_server_cpu, *_generators_cpu, *_generator_max_cpu, *_other_cpu": "CPU cores used in the "
    "phase by the server, all generator processes, the busiest generator process, and every "
    "other process on the machine",
    "times": "a frame's time is when its bytes reached the client's socket (data_received), "
    "on CLOCK_MONOTONIC, shared by all processes",
}


def targets_of(f: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for one configuration's medians.

    A ratio target is judged by the median of the per-run ratios (each run
    against its own reference, as printed), not by the ratio of the medians.
    """

    def fmt(value: Any, spec: str = ".0f") -> str:
        return "-" if value is None else format(value, spec)

    connected, join, join_500 = f.get("connected"), f.get("join_per_s"), f.get("join_per_s_500")
    loop, loop_500, fanout, ceiling = (
        f.get("loop_p99_ms"),
        f.get("loop_p99_ms_500"),
        f.get("fanout_deliveries_per_s"),
        f.get("ceiling_deliveries_per_s"),
    )
    rss = f.get("rss_per_listener_kib")
    join_ratio, loop_ratio, fanout_ratio = (
        f.get("join_ratio"),
        f.get("loop_p99_ratio"),
        f.get("fanout_ratio"),
    )
    join_ok = (
        None
        if join is None or join_ratio is None
        else join_ratio >= TARGET_JOIN_RATIO and join >= TARGET_JOIN_PER_S
    )
    return [
        (
            f"{TARGET_CONNECTED:,} connected",
            fmt(connected, ","),
            None if connected is None else connected >= TARGET_CONNECTED,
        ),
        (
            f"join/s at N ≥ {TARGET_JOIN_RATIO:g} x join/s at 500 and ≥ {TARGET_JOIN_PER_S:.0f}",
            f"{fmt(join)} vs {fmt(join_500)} (ratio {fmt(f.get('join_ratio'), '.2f')})",
            join_ok,
        ),
        (
            f"loop p99 at N ≤ {TARGET_LOOP_RATIO:g} x loop p99 at 500",
            f"{fmt(loop, '.1f')} ms vs {fmt(loop_500, '.1f')} ms (ratio {fmt(loop_ratio, '.2f')})",
            None if loop_ratio is None else loop_ratio <= TARGET_LOOP_RATIO,
        ),
        (
            f"fan-out ≥ {TARGET_FANOUT_RATIO:.0%} of the ceiling",
            f"{fmt(fanout, ',.0f')} vs {fmt(ceiling, ',.0f')} deliveries/s "
            f"(ratio {fmt(fanout_ratio, '.2f')})",
            None if fanout_ratio is None else fanout_ratio >= TARGET_FANOUT_RATIO,
        ),
        (
            f"< {TARGET_RSS_KIB:.0f} KiB per listener",
            f"{fmt(rss, '.1f')} KiB",
            None if rss is None else rss < TARGET_RSS_KIB,
        ),
    ]


def summarize(
    args: argparse.Namespace, runs: list[dict[str, Any]], skip: str | None, loop: str, nofile: int
) -> dict[str, Any]:
    configs: dict[str, Any] = {}
    for config in CONFIGS:
        per_run = [r["configs"].get(config.key, {}) for r in runs]
        if any("unavailable" in p for p in per_run) or not per_run:
            configs[config.key] = {"label": config.label, "unavailable": skip}
            continue
        medians: dict[str, Any] = {k: median(p.get(k) for p in per_run) for k in SUMMARY_KEYS}
        for key in INT_KEYS:
            if medians.get(key) is not None:
                medians[key] = int(medians[key])
        medians["label"] = config.label
        medians["targets"] = [
            {"target": t, "measured": m, "met": ok} for t, m, ok in targets_of(medians)
        ]
        configs[config.key] = medians
    ceiling = {k: median(r["ceiling"].get(k) for r in runs) for k in CEILING_KEYS}
    machine = machine_info()
    primary = configs["sqlite"]
    summary: dict[str, Any] = {key: primary.get(key) for key in SUMMARY_KEYS}
    summary.update(
        {
            "configs": configs,
            "ceiling": ceiling,
            "runs": len(runs),
            "listeners": args.listeners,
            "baseline_listeners": min(BASELINE, args.listeners // 2),
            "rounds": args.rounds,
            "procs": args.procs,
            "join_concurrency": args.join_concurrency,
            "workers_run": skip is None,
            "workers_reason": skip,
            "nofile_limit": nofile,
            "cpu_count": machine["cpu_count"],
            "python_version": machine["python_version"],
            "machine": machine,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "aggregate": "median across runs; ratios are medians of the per-run ratios",
            "load_generator": (
                f"{args.procs} processes, one {loop} event loop each (httpx + websockets)"
            ),
            "definitions": DEFINITIONS,
            "per_run": runs,
        }
    )
    for key in INT_KEYS:
        if summary.get(key) is not None:
            summary[key] = int(summary[key])
    return summary


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


TABLE_ROWS = (
    ("connected (after ramp / at end)", ("connected", "connected_at_end")),
    ("join/s over the ramp to N / up to 500", ("join_per_s", "join_per_s_500")),
    ("join/s of the last tenth of the ramp", ("ramp_n_last_tenth_join_per_s",)),
    ("loop p50 / p99 ms with N", ("loop_p50_ms", "loop_p99_ms")),
    ("loop p50 / p99 ms with 500", ("loop_p50_ms_500", "loop_p99_ms_500")),
    (
        "stage event p50 / p99 ms with N (p99 with 500)",
        ("stage_event_p50_ms", "stage_event_p99_ms", "stage_event_p99_ms_500"),
    ),
    (
        "fan-out deliveries/s podium / ceiling",
        ("fanout_deliveries_per_s", "ceiling_deliveries_per_s"),
    ),
    ("ratios join / loop p99 / fan-out", ("join_ratio", "loop_p99_ratio", "fanout_ratio")),
    ("server RSS per listener KiB (RSS MiB at N)", ("rss_per_listener_kib", "server_rss_mib")),
    (
        "frames per idle listener in the ramp (per s)",
        ("audience_frames_per_listener", "audience_frames_per_s"),
    ),
    ("frames per listener per permission round with N", ("round_frames_per_listener",)),
    ("ramp 500→N s", ("ramp_n_span_s",)),
    ("rounds ok with N / with 500 / failed", ("rounds_ok", "rounds_ok_500", "round_failures")),
    ("stage events complete / incomplete", ("stage_events", "stage_events_incomplete")),
    (
        "CPU cores, ramp: server / generators / busiest gen / other",
        ("ramp_server_cpu", "ramp_generators_cpu", "ramp_generator_max_cpu", "ramp_other_cpu"),
    ),
    (
        "CPU cores, rounds: server / generators / busiest gen / other",
        (
            "rounds_server_cpu",
            "rounds_generators_cpu",
            "rounds_generator_max_cpu",
            "rounds_other_cpu",
        ),
    ),
)


def print_table(summary: dict[str, Any]) -> None:
    runs = summary["per_run"]
    configs = summary["configs"]
    for config in CONFIGS:
        figures = configs[config.key]
        title = (
            f"audience: {config.label}; N = {summary['listeners']:,}, "
            f"{summary['rounds']} rounds per level, {summary['procs']} generator processes, "
            f"median of {summary['runs']} run(s)"
        )
        if "unavailable" in figures:
            out.print(f"[bold]{title}[/bold]: {figures['unavailable']}")
            continue
        table = Table(title=title)
        table.add_column("figure")
        table.add_column("median", justify="right")
        for i in range(len(runs)):
            table.add_column(f"run {i + 1}", justify="right")
        for label, keys in TABLE_ROWS:
            cells = [" / ".join(_fmt(figures.get(k)) for k in keys)]
            cells += [" / ".join(_fmt(r["configs"][config.key].get(k)) for k in keys) for r in runs]
            table.add_row(label, *cells)
        out.print(table)
        for target in figures["targets"]:
            verdict = {
                True: "[green]PASS[/green]",
                False: "[red]FAIL[/red]",
                None: "[yellow]n/a[/yellow]",
            }
            out.print(f"  {verdict[target['met']]}  {target['target']}: {target['measured']}")
        if not figures.get("stage_events"):
            out.print(
                "  [yellow]no stage event reached every listener: the server sent no "
                f"{MOVED}, or not to everyone[/yellow]"
            )
    ceiling = summary["ceiling"]
    c = {k: _fmt(v) for k, v in ceiling.items()}
    out.print(
        f"ceiling (plain websockets broadcast, same N): {c['ceiling_deliveries_per_s']} "
        f"deliveries/s, {c['ceiling_connected']} connected, per event p50 "
        f"{c['ceiling_event_p50_ms']} ms, {c['ceiling_frame_bytes']} bytes; CPU cores: "
        f"server {c['ceiling_server_cpu']}, generators {c['ceiling_generators_cpu']} "
        f"(busiest {c['ceiling_generator_max_cpu']}), other {c['ceiling_other_cpu']}"
    )
    busiest = max(
        (
            configs[c.key].get(k) or 0.0
            for c in CONFIGS
            for k in ("ramp_generator_max_cpu", "rounds_generator_max_cpu")
        ),
        default=0.0,
    )
    busiest = max(busiest, ceiling.get("ceiling_generator_max_cpu") or 0.0)
    out.print(
        f"load generator: {summary['load_generator']}; "
        f"busiest process used {busiest:.0%} of a core "
        + (
            "[red](saturated: it may be the bottleneck, try more --procs)[/red]"
            if busiest >= SATURATED
            else "(not the bottleneck)"
        )
    )
    out.print(
        f"open files: soft limit raised to the hard limit, {summary['nofile_limit']:,} per "
        f"process (the server needs about N + 200)"
    )
    for i, r in enumerate(runs):
        for key, figures in r["configs"].items():
            for message in [
                *figures.get("ramp_500_errors", []),
                *figures.get("ramp_n_errors", []),
                *figures.get("round_errors", []),
                *figures.get("round_errors_500", []),
            ]:
                err.print(f"[yellow]run {i + 1} {key}: {message}[/yellow]")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="audience.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--listeners", type=int, default=10_000, help="listeners N (10,000)")
    parser.add_argument("--runs", type=int, default=3, help="runs K, median reported (3)")
    parser.add_argument("--procs", type=int, default=4, help="load generator processes (4)")
    parser.add_argument("--rounds", type=int, default=40, help="permission rounds per level (40)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured rounds first (3)")
    parser.add_argument(
        "--workers-run",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure podium serve --workers 2 on PostgreSQL + Redis (when available)",
    )
    parser.add_argument(
        "--join-concurrency", type=int, default=16, help="joins in flight, all gens (16)"
    )
    parser.add_argument(
        "--connect-concurrency", type=int, default=64, help="ceiling connects in flight"
    )
    parser.add_argument("--ceiling-events", type=int, default=10, help="ceiling broadcasts (10)")
    parser.add_argument("--ceiling-warmup", type=int, default=2)
    parser.add_argument("--round-pause-ms", type=float, default=20.0, help="pause between rounds")
    parser.add_argument("--run-timeout", type=float, default=900.0, help="bound per run, s")
    parser.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results path")
    args = parser.parse_args(argv)
    for name in ("listeners", "runs", "procs", "rounds", "ceiling_events", "join_concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.listeners < 2 * (args.rounds + args.warmup) * 2:
        parser.error("--listeners must be at least four times the rounds and warm-up per level")
    return args


async def run_all(
    args: argparse.Namespace, pool: GeneratorPool, skip: str | None
) -> list[dict[str, Any]]:
    pool.attach()
    runs = []
    for run in range(1, args.runs + 1):
        err.print(f"run {run}/{args.runs} ...")
        runs.append(await run_once(args, run, pool, skip))
    return runs


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    nofile = raise_nofile_limit()
    needed = args.listeners + 200
    if nofile < needed:
        err.print(
            f"[yellow]open-file limit {nofile} (soft raised to hard) is below the ~{needed} "
            f"sockets the server needs for {args.listeners} listeners[/yellow]"
        )
    skip = workers_unavailable(args)
    _, loop = event_loop_factory(args.loop)
    pool = GeneratorPool(args.procs, args.loop)
    try:
        runs = run_async(run_all(args, pool, skip), args.loop)
    finally:
        pool.stop()
    summary = summarize(args, runs, skip, loop, nofile)
    print_table(summary)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    out.print(f"wrote {args.output}")
    return summary


if __name__ == "__main__":
    main()
