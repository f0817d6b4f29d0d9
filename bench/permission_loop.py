"""Permission-request loop latency and event fan-out against a real `podium serve`.

    python bench/permission_loop.py [--listeners N] [--rounds R] [--runs K] [--output PATH]

Each run starts a fresh `podium serve` (SQLite in a temp dir, a known secret) and a
fresh plain-websockets ceiling server, each on a free 127.0.0.1 port and in its own
process. In this process, on one event loop, raw `httpx` + `websockets` clients play
one host and N listeners of an `audio_room` call:

1. the host creates the call, goes live and watches it over `/v1/ws`; every listener
   joins over HTTP (bounded concurrency), then connects a WebSocket and watches;
2. rounds, one after another (`--round-pause-ms` apart), each by a different listener:
   t0 the listener POSTs a permission request for `send-audio`; t1 the host's socket
   receives `call.permission_request` and the host POSTs accept at once; t2 the
   listener's socket receives `call.permissions_updated` holding `send-audio`;
3. fan-out: the host POSTs `/mute` for a user who is not there, one event at a time;
   per event, time from the POST until the last of the N listeners has the
   `call.user_muted` frame. The ceiling is the same measurement against a minimal
   plain-websockets `broadcast()` server (`bench.common`), with N more clients of the
   same kind and a frame of the same size, triggered by a message; podium's and the
   ceiling's events alternate, so both see the same machine conditions.

The servers and the load generator share the machine's cores: CPU use of the server,
of the load generator and of every other process is reported per phase, so a noisy
machine shows. The median of each figure over the runs is printed as a table and
written as JSON (`bench/results/permission_loop.json`, per-run figures included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from rich.console import Console
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import (
    SECRET,
    CeilingServer,
    PodiumServer,
    encode,
    event_loop_factory,
    load_average,
    machine_info,
    median,
    percentile,
    raise_nofile_limit,
    run_async,
    system_busy_seconds,
)
from podium.tokens import mint_user_token

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "permission_loop.json"
CALL_TYPE = "audio_room"
CAPABILITY = "send-audio"
WAIT_S = 15.0
"""Bound on every single wait (connect, watch, an event, an HTTP call)."""
SETTLE_S = 0.01
"""Pause between fan-out events, so one server's tail work does not overlap the next."""
DEFAULT_ROUND_PAUSE_MS = 50.0
TARGET_LOOP_P99_MS = 25.0
TARGET_FANOUT_RATIO = 0.5

out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def now() -> float:
    return time.perf_counter()


# clients


@dataclass(eq=False)
class FanoutEvent:
    """One broadcast being counted: how many listeners have it, and when the last did."""

    key: str
    expected: int
    count: int = 0
    last: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.expected <= 0:  # nobody to wait for
            self.done.set()

    def arrived(self, at: float) -> None:
        self.count += 1
        self.last = at
        if self.count >= self.expected:
            self.done.set()


@dataclass(eq=False)
class Board:
    """What the listeners' readers count `call.user_muted` frames against."""

    current: FanoutEvent | None = None
    sample: dict[str, Any] | None = None
    sample_bytes: int = 0


class StampedConnection(ClientConnection):
    """Notes when bytes last reached this client's socket.

    500 clients share one load-generator process: when a burst arrives, the
    event loop parses every ready socket before any reader task runs, so the
    time a reader *handles* a frame includes the other clients' work. The
    time its bytes arrived does not; read after the frame, it can only be
    later than the frame's true arrival (never flatters the server).
    """

    bytes_at: float = 0.0

    def data_received(self, data: bytes) -> None:
        self.bytes_at = now()
        super().data_received(data)


Arrival = tuple[float, float, dict[str, Any]]
"""(bytes arrived at the socket, handled by the reader task, frame)."""


class Client:
    """One WebSocket: a reader task timestamps each frame on arrival and settles waiters."""

    def __init__(self, user_id: str, ws: StampedConnection, board: Board | None) -> None:
        self.user_id = user_id
        self.ws = ws
        self.board = board
        self.frames = 0
        self._waiting: dict[tuple[str, str], asyncio.Future[Arrival]] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self._reader = asyncio.create_task(self._read(), name=f"reader-{user_id}")

    def expect(self, kind: str, key: str) -> asyncio.Future[Arrival]:
        """A future for the next `kind` frame about `key`."""
        fut = asyncio.get_running_loop().create_future()
        self._waiting[(kind, key)] = fut
        return fut

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(encode(frame))

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                handled = now()
                self.frames += 1
                self._on_frame(min(self.ws.bytes_at, handled), handled, raw, json.loads(raw))

    def _on_frame(self, at: float, handled: float, raw: str | bytes, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "health.check":  # answer, or the server closes us as idle after 30 s
            task = asyncio.create_task(self.send({"type": "pong"}))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
            return
        if kind == "call.user_muted":
            board = self.board
            if board is None:
                return
            if board.sample is None:
                board.sample, board.sample_bytes = frame, len(raw)
            current = board.current
            if current is not None and frame.get("user_id") == current.key:
                current.arrived(at)
            return
        key: str | None = None
        if kind in ("watch.ok", "trigger.ok"):
            key = str(frame.get("call_cid") or "")
        elif kind == "call.permission_request":
            key = frame["request"]["user_id"]
        elif kind == "call.permissions_updated" and CAPABILITY in frame["own_capabilities"]:
            key = frame["user_id"]
        if key is None:
            return
        fut = self._waiting.pop((str(kind), key), None)
        if fut is not None and not fut.done():
            fut.set_result((at, handled, frame))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        try:
            await asyncio.wait_for(self._reader, 5)
        except (TimeoutError, asyncio.CancelledError):
            self._reader.cancel()
        for task in list(self._sends):
            task.cancel()


async def open_client(
    url: str, user_id: str, cid: str, board: Board | None, *, watch: bool = True
) -> Client:
    ws = await connect(
        url,
        ping_interval=None,
        open_timeout=WAIT_S,
        close_timeout=2,
        max_size=1 << 20,
        create_connection=StampedConnection,
    )
    client = Client(user_id, ws, board)
    if watch:
        try:
            ok = client.expect("watch.ok", cid)
            await client.send({"type": "watch", "call_cid": cid})
            await asyncio.wait_for(ok, WAIT_S)
        except BaseException:
            await client.close()
            raise
    return client


async def open_clients(
    count: int,
    url_of: Callable[[int], str],
    user_of: Callable[[int], str],
    cid: str,
    board: Board | None,
    concurrency: int,
) -> tuple[list[Client], list[str]]:
    """Connect and watch `count` clients, at most `concurrency` handshakes at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Client:
        async with gate:
            return await open_client(url_of(i), user_of(i), cid, board)

    results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    clients = [r for r in results if isinstance(r, Client)]
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return clients, errors


async def close_clients(clients: Iterable[Client]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


# measurements


def ms(seconds: float) -> float:
    return seconds * 1000.0


def leg_stats(prefix: str, values_ms: Sequence[float]) -> dict[str, float | None]:
    return {
        f"{prefix}_p50_ms": percentile(values_ms, 50),
        f"{prefix}_p95_ms": percentile(values_ms, 95),
        f"{prefix}_p99_ms": percentile(values_ms, 99),
        f"{prefix}_max_ms": max(values_ms) if values_ms else None,
    }


class CpuSample:
    """CPU seconds so far: one server process, this process (the load generator), and
    the whole machine; the rest of the machine's use is other processes'."""

    def __init__(self, server_cpu: Callable[[], float | None]) -> None:
        self.wall = now()
        self.server = server_cpu()
        self.client = time.process_time()
        self.system = system_busy_seconds()


@dataclass
class CpuUse:
    """CPU seconds summed over measured intervals; `cores()` divides by their wall time."""

    wall: float = 0.0
    client: float = 0.0
    server: float | None = 0.0
    system: float | None = 0.0

    def add(self, start: CpuSample, end: CpuSample) -> None:
        self.wall += end.wall - start.wall
        self.client += end.client - start.client
        if self.server is not None and start.server is not None and end.server is not None:
            self.server += end.server - start.server
        else:
            self.server = None
        if self.system is not None and start.system is not None and end.system is not None:
            self.system += end.system - start.system
        else:
            self.system = None

    def cores(self, prefix: str) -> dict[str, float | None]:
        wall = self.wall

        def per_wall(value: float | None) -> float | None:
            return value / wall if value is not None and wall > 0 else None

        other = None
        if self.system is not None and self.server is not None:
            other = max(0.0, self.system - self.server - self.client)
        return {
            f"{prefix}_server_cpu": per_wall(self.server),
            f"{prefix}_client_cpu": per_wall(self.client),
            f"{prefix}_other_cpu": per_wall(other),
        }


@dataclass(eq=False)
class FanoutSide:
    """One server's fan-out: `fire(k, key)` makes it send one frame with `user_id` = key
    to every watcher; `event()` times it until the last of `expected` listeners has it."""

    name: str
    board: Board
    expected: int
    fire: Callable[[int, str], Awaitable[None]]
    server_cpu: Callable[[], float | None]
    latencies: list[float] = field(default_factory=list)
    delivered: int = 0
    timeouts: int = 0
    cpu: CpuUse = field(default_factory=CpuUse)

    async def event(self, k: int, *, measured: bool) -> None:
        event = FanoutEvent(f"nobody-{k}", self.expected)
        self.board.current = event
        before = CpuSample(self.server_cpu)
        start = now()
        await self.fire(k, event.key)
        try:
            await asyncio.wait_for(event.done.wait(), WAIT_S)
        except TimeoutError:
            self.timeouts += 1
        after = CpuSample(self.server_cpu)
        self.board.current = None
        if not measured:
            return
        self.delivered += event.count
        if event.count:
            self.latencies.append(event.last - start)
        self.cpu.add(before, after)

    def figures(self, events: int) -> dict[str, Any]:
        total = sum(self.latencies)
        per_event = [ms(x) for x in self.latencies]
        return {
            f"{self.name}_deliveries_per_s": self.delivered / total if total > 0 else None,
            f"{self.name}_deliveries": self.delivered,
            f"{self.name}_missing": self.expected * events - self.delivered,
            f"{self.name}_timeouts": self.timeouts,
            f"{self.name}_event_p50_ms": percentile(per_event, 50),
            f"{self.name}_event_max_ms": max(per_event) if per_event else None,
            **self.cpu.cores(self.name),
        }


async def fanout(sides: Sequence[FanoutSide], events: int, warmup: int) -> dict[str, Any]:
    """Events one at a time, alternating between the sides, so that both see the same
    machine conditions; deliveries/s = deliveries / summed per-event time (fire → last)."""
    for k in range(warmup + events):
        for side in sides:
            await side.event(k, measured=k >= warmup)
            await asyncio.sleep(SETTLE_S)
    figures: dict[str, Any] = {}
    for side in sides:
        figures.update(side.figures(events))
    return figures


def check(response: httpx.Response, *expected: int) -> dict[str, Any]:
    if response.status_code not in expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return body


class PodiumCall:
    """The host and the listeners of one `audio_room` call on a podium server."""

    def __init__(
        self, server: PodiumServer, http: httpx.AsyncClient, call_id: str, listeners: int
    ) -> None:
        self.server = server
        self.http = http
        self.cid = f"{CALL_TYPE}:{call_id}"
        self.base = f"{server.url}/v1/calls/{CALL_TYPE}/{call_id}"
        self.tokens = {"host": mint_user_token(SECRET, "host", name="Host")}
        self.users = [f"listener-{i}" for i in range(listeners)]
        for user in self.users:
            self.tokens[user] = mint_user_token(SECRET, user, name=user)
        self.board = Board()
        self.host: Client | None = None
        self.listeners: list[Client] = []

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def ws_url(self, user: str) -> str:
        return f"{self.server.ws_url}?token={self.tokens[user]}"

    async def setup(self, args: argparse.Namespace, clients: list[Client]) -> dict[str, Any]:
        """Host creates, goes live, watches; listeners join (all first), then watch."""
        http, base = self.http, self.base
        check(await http.post(base, json={}, headers=self.auth("host")), 200, 201)
        check(await http.post(f"{base}/go-live", headers=self.auth("host")), 200)
        self.host = await open_client(self.ws_url("host"), "host", self.cid, None)
        clients.append(self.host)
        result: dict[str, Any] = {
            "ws_extensions": [e.name for e in self.host.ws.protocol.extensions]
        }
        # Joining before anyone watches keeps N participant_joined events away from N
        # watchers (N² frames); setup is not what is measured.
        started = now()
        gate = asyncio.Semaphore(args.join_concurrency)

        async def join(user: str) -> str:
            async with gate:
                check(await http.post(f"{base}/join", headers=self.auth(user)), 200)
                return user

        joined = await asyncio.gather(*(join(u) for u in self.users), return_exceptions=True)
        users = [u for u in joined if isinstance(u, str)]
        join_errors = [f"join: {e!r}" for e in joined if isinstance(e, BaseException)]
        result["join_s"] = now() - started
        started = now()
        self.listeners, connect_errors = await open_clients(
            len(users),
            lambda i: self.ws_url(users[i]),
            lambda i: users[i],
            self.cid,
            self.board,
            args.connect_concurrency,
        )
        clients.extend(self.listeners)
        result["connect_s"] = now() - started
        result["connected"] = len(self.listeners)
        result["errors"] = (join_errors + connect_errors)[:5]
        result["error_count"] = len(join_errors) + len(connect_errors)
        return result

    async def permission_round(self, listener: Client) -> tuple[float, float, float, float]:
        """(t1 - t0, t2 - t1, t2 - t0, and t2 - t0 as the reader tasks handled the frames)
        of one request → notify → accept → update loop."""
        assert self.host is not None
        http, base, user = self.http, self.base, listener.user_id
        asked = self.host.expect("call.permission_request", user)
        updated = listener.expect("call.permissions_updated", user)
        t0 = now()
        body = {"permissions": [CAPABILITY]}
        request = asyncio.create_task(
            http.post(f"{base}/permission-requests", json=body, headers=self.auth(user))
        )
        try:
            # a refused request must not leave us waiting for the host
            pending: list[asyncio.Future[Any]] = [asked, request]
            await asyncio.wait(pending, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
            if request.done():
                check(request.result(), 201)
            t1, _, frame = await asyncio.wait_for(asked, WAIT_S)
            accept = f"{base}/permission-requests/{frame['request']['id']}/accept"
            accepted = asyncio.create_task(http.post(accept, headers=self.auth("host")))
            t2, h2, _ = await asyncio.wait_for(updated, WAIT_S)
            check(await asyncio.wait_for(accepted, WAIT_S), 200)
        finally:
            check(await asyncio.wait_for(request, WAIT_S), 201)
        return t1 - t0, t2 - t1, t2 - t0, h2 - t0

    async def rounds(self, args: argparse.Namespace) -> dict[str, Any]:
        """Sequential rounds, a different listener each (a listener's second request
        would be refused: it holds send-audio by then)."""
        warmup = max(0, min(args.warmup, len(self.listeners) - args.rounds))
        rounds = min(args.rounds, len(self.listeners) - warmup)
        notify: list[float] = []
        update: list[float] = []
        loop: list[float] = []
        handled: list[float] = []
        failures: list[str] = []
        samples: list[list[float]] = []
        first = CpuSample(self.server.cpu_seconds)
        for r in range(warmup + rounds):
            if r and args.round_pause_ms:
                await asyncio.sleep(args.round_pause_ms / 1000)
            started = now()
            try:
                legs = await self.permission_round(self.listeners[r])
            except Exception as exc:
                failures.append(f"round {r}: {type(exc).__name__}: {exc}")
                continue
            if r >= warmup:
                notify.append(ms(legs[0]))
                update.append(ms(legs[1]))
                loop.append(ms(legs[2]))
                handled.append(ms(legs[3]))
                at = round(started - (self.server.ready_at or first.wall), 3)
                samples.append([at, round(notify[-1], 2), round(update[-1], 2)])
        cpu = CpuUse()
        cpu.add(first, CpuSample(self.server.cpu_seconds))
        result: dict[str, Any] = cpu.cores("rounds")
        result["rounds_ok"] = len(loop)
        result["round_failures"] = len(failures)
        result["round_errors"] = failures[:5]
        result.update(leg_stats("notify", notify))
        result.update(leg_stats("update", update))
        result.update(leg_stats("loop", loop))
        result.update(leg_stats("loop_handled", handled))
        quarters = [loop[i * len(loop) // 4 : (i + 1) * len(loop) // 4] for i in range(4)]
        result["loop_p50_by_quarter_ms"] = [percentile(q, 50) for q in quarters]
        # per round: [s since the server came up, notify ms, update ms], for offline analysis
        # (the hub sends health.check to every connection every 10 s from start-up)
        result["round_samples"] = samples
        return result

    async def mute(self, k: int, key: str) -> None:
        """`call.user_muted` for a user who is not there: emitted to every watcher."""
        url = f"{self.base}/mute"
        check(await self.http.post(url, json={"user_ids": [key]}, headers=self.auth("host")), 200)


class CeilingCall:
    """N watchers and one trigger on the plain-websockets broadcast server."""

    def __init__(self, server: CeilingServer, cid: str, template: Board) -> None:
        self.server = server
        self.cid = cid
        self.template = template  # podium's: its first `call.user_muted` frame is copied
        self.board = Board()
        self.trigger: Client | None = None
        self.listeners: list[Client] = []

    async def setup(self, count: int, concurrency: int, clients: list[Client]) -> list[str]:
        self.listeners, errors = await open_clients(
            count,
            lambda i: f"{self.server.ws_url}?token=listener-{i}",
            lambda i: f"listener-{i}",
            self.cid,
            self.board,
            concurrency,
        )
        clients.extend(self.listeners)
        self.trigger = await open_client(self.server.ws_url, "trigger", self.cid, None, watch=False)
        clients.append(self.trigger)
        return errors

    async def fire(self, k: int, key: str) -> None:
        assert self.trigger is not None
        template = self.template.sample or {
            "type": "call.user_muted",
            "call_cid": self.cid,
            "seq": 0,
            "created_at": datetime.now(UTC).isoformat(),
            "kinds": ["audio", "video", "screenshare"],
            "muted_by": "host",
        }
        frame = {**template, "seq": int(template.get("seq", 0)) + k, "user_id": key}
        done = self.trigger.expect("trigger.ok", "")
        await self.trigger.send({"type": "trigger", "frame": frame})
        await asyncio.wait_for(done, WAIT_S)


async def stop_server(server: PodiumServer | CeilingServer) -> None:
    await asyncio.to_thread(server.stop)


async def run_once(args: argparse.Namespace, run: int) -> dict[str, Any]:
    """A fresh podium server and a fresh ceiling server; setup, rounds, then fan-out."""
    result: dict[str, Any] = {"load_average_at_start": load_average()}
    clients: list[Client] = []
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(asyncio.timeout(args.run_timeout))
            podium = await PodiumServer(Path(tmp)).start()
            stack.push_async_callback(stop_server, podium)
            ceiling = await CeilingServer(Path(tmp), loop=args.loop).start()
            stack.push_async_callback(stop_server, ceiling)
            stack.push_async_callback(close_clients, clients)
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=WAIT_S, limits=limits))
            call = PodiumCall(podium, http, f"bench-{run}", args.listeners)
            result.update(await call.setup(args, clients))
            err.print(
                f"  run {run}: {result['connected']}/{args.listeners} listeners watching "
                f"(join {result['join_s']:.1f} s, connect {result['connect_s']:.1f} s)"
            )
            result.update(await call.rounds(args))
            count = max(1, len(call.listeners))
            plain = CeilingCall(ceiling, call.cid, call.board)
            errors = await plain.setup(count, args.connect_concurrency, clients)
            result["ceiling_connected"] = len(plain.listeners)
            result["ceiling_errors"] = errors[:5]
            sides = [
                FanoutSide(
                    "fanout", call.board, len(call.listeners), call.mute, podium.cpu_seconds
                ),
                FanoutSide("ceiling", plain.board, count, plain.fire, ceiling.cpu_seconds),
            ]
            result.update(await fanout(sides, args.fanout_events, args.fanout_warmup))
            result["frame_bytes"] = call.board.sample_bytes
            result["ceiling_frame_bytes"] = plain.board.sample_bytes
    podium_rate, ceiling_rate = (
        result["fanout_deliveries_per_s"],
        result["ceiling_deliveries_per_s"],
    )
    result["fanout_ratio"] = podium_rate / ceiling_rate if podium_rate and ceiling_rate else None
    return result


# reporting

DEFINITIONS = {
    "notify": "t1 - t0: listener POSTs permission-requests → host socket has "
    "call.permission_request",
    "update": "t2 - t1: host socket has the request (host POSTs accept at once) → listener "
    "socket has call.permissions_updated with send-audio",
    "loop": "t2 - t0",
    "times": "a frame's time is when its bytes reached the client's socket (data_received), "
    "read after the frame so never earlier than its true arrival; loop_handled_* is t2 - t0 "
    "with t2 taken when the listener's reader task handled the frame, which adds the load "
    "generator parsing the other listeners' frames of the same burst first",
    "fanout_deliveries_per_s": "listeners * events / sum of per-event times, per-event time = host "
    "POSTs /mute → the last of the N listener sockets has call.user_muted; one event at a time",
    "ceiling_deliveries_per_s": "the same, against plain websockets broadcast() triggered by a "
    "message, same clients and frame size; events alternate with podium's",
    "fanout_ratio": "median over runs of the per-run ratio podium / ceiling",
    "*_server_cpu, *_client_cpu, *_other_cpu": "CPU cores used during the phase by the server, "
    "this load generator, and every other process on the machine",
}

SUMMARY_KEYS = (
    "connected",
    "loop_p50_ms",
    "loop_p95_ms",
    "loop_p99_ms",
    "loop_handled_p50_ms",
    "loop_handled_p95_ms",
    "loop_handled_p99_ms",
    "notify_p50_ms",
    "notify_p95_ms",
    "notify_p99_ms",
    "update_p50_ms",
    "update_p95_ms",
    "update_p99_ms",
    "fanout_deliveries_per_s",
    "ceiling_deliveries_per_s",
    "fanout_ratio",
    "fanout_event_p50_ms",
    "ceiling_event_p50_ms",
    "rounds_ok",
    "round_failures",
    "fanout_missing",
    "ceiling_missing",
    "frame_bytes",
    "ceiling_frame_bytes",
    "rounds_server_cpu",
    "rounds_client_cpu",
    "rounds_other_cpu",
    "fanout_server_cpu",
    "fanout_client_cpu",
    "fanout_other_cpu",
    "ceiling_server_cpu",
    "ceiling_client_cpu",
    "ceiling_other_cpu",
    "join_s",
    "connect_s",
)


def summarize(args: argparse.Namespace, runs: list[dict[str, Any]], loop: str) -> dict[str, Any]:
    summary: dict[str, Any] = {key: median(r.get(key) for r in runs) for key in SUMMARY_KEYS}
    for key in ("connected", "rounds_ok", "round_failures", "fanout_missing", "ceiling_missing"):
        if summary[key] is not None:
            summary[key] = int(summary[key])
    machine = machine_info()
    loop_p99, ratio = summary["loop_p99_ms"], summary["fanout_ratio"]
    summary.update(
        {
            "runs": len(runs),
            "listeners": args.listeners,
            "rounds": args.rounds,
            "round_pause_ms": args.round_pause_ms,
            "fanout_events": args.fanout_events,
            "cpu_count": machine["cpu_count"],
            "python_version": machine["python_version"],
            "machine": machine,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "aggregate": "median across runs",
            "server_per_run": "fresh podium serve (new SQLite db) and fresh ceiling server per run",
            "load_generator": (
                f"this process, one {loop} event loop (raw httpx + websockets), sharing "
                f"{machine['cpus_usable']} cores with the server process"
            ),
            "ws_extensions": runs[0].get("ws_extensions") if runs else None,
            "definitions": DEFINITIONS,
            "targets": {
                "loop_p99_ms_max": TARGET_LOOP_P99_MS,
                "fanout_ratio_min": TARGET_FANOUT_RATIO,
                "loop_p99_met": loop_p99 is not None and loop_p99 <= TARGET_LOOP_P99_MS,
                "fanout_ratio_met": ratio is not None and ratio >= TARGET_FANOUT_RATIO,
            },
            "per_run": runs,
        }
    )
    return summary


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


OTHER_CPU_KEYS = ("rounds_other_cpu", "fanout_other_cpu", "ceiling_other_cpu")
NOISY_OTHER_CPU = 0.2

TABLE_ROWS = (
    ("connected listeners", "connected"),
    ("loop p50 / p95 / p99 ms", ("loop_p50_ms", "loop_p95_ms", "loop_p99_ms")),
    (
        "loop as reader tasks handled it p50 / p95 / p99 ms",
        ("loop_handled_p50_ms", "loop_handled_p95_ms", "loop_handled_p99_ms"),
    ),
    (
        "request→host notified p50 / p95 / p99 ms",
        ("notify_p50_ms", "notify_p95_ms", "notify_p99_ms"),
    ),
    (
        "host notified→listener updated p50 / p95 / p99 ms",
        ("update_p50_ms", "update_p95_ms", "update_p99_ms"),
    ),
    ("podium fan-out deliveries/s", "fanout_deliveries_per_s"),
    ("ceiling (plain websockets) deliveries/s", "ceiling_deliveries_per_s"),
    ("fan-out ratio podium / ceiling", "fanout_ratio"),
    ("per-event fan-out p50 ms podium / ceiling", ("fanout_event_p50_ms", "ceiling_event_p50_ms")),
    ("frame bytes podium / ceiling", ("frame_bytes", "ceiling_frame_bytes")),
    (
        "CPU cores, rounds: podium / load gen / other",
        ("rounds_server_cpu", "rounds_client_cpu", "rounds_other_cpu"),
    ),
    (
        "CPU cores, fan-out: podium / load gen / other",
        ("fanout_server_cpu", "fanout_client_cpu", "fanout_other_cpu"),
    ),
    (
        "CPU cores, ceiling: server / load gen / other",
        ("ceiling_server_cpu", "ceiling_client_cpu", "ceiling_other_cpu"),
    ),
    (
        "failed rounds / missing deliveries podium / ceiling",
        ("round_failures", "fanout_missing", "ceiling_missing"),
    ),
)


def print_table(summary: dict[str, Any]) -> None:
    runs = summary["per_run"]
    table = Table(
        title=(
            f"permission loop: {summary['listeners']} listeners, {summary['rounds']} rounds "
            f"({summary['round_pause_ms']:g} ms apart), "
            f"{summary['fanout_events']} fan-out events, median of {summary['runs']} run(s)"
        )
    )
    table.add_column("figure")
    table.add_column("median", justify="right")
    for i in range(len(runs)):
        table.add_column(f"run {i + 1}", justify="right")
    for label, keys in TABLE_ROWS:
        names = (keys,) if isinstance(keys, str) else keys
        cells = [" / ".join(_fmt(summary.get(k)) for k in names)]
        cells += [" / ".join(_fmt(r.get(k)) for k in names) for r in runs]
        table.add_row(label, *cells)
    out.print(table)
    targets = summary["targets"]
    out.print(
        f"targets: loop p99 ≤ {targets['loop_p99_ms_max']:g} ms: "
        f"{'met' if targets['loop_p99_met'] else 'MISSED'}; fan-out ≥ "
        f"{targets['fanout_ratio_min']:.0%} of ceiling: "
        f"{'met' if targets['fanout_ratio_met'] else 'MISSED'}"
    )
    out.print(f"load generator: {summary['load_generator']}; {summary['server_per_run']}")
    other = max((summary.get(k) or 0.0) for k in OTHER_CPU_KEYS)
    if other > NOISY_OTHER_CPU:
        out.print(
            f"[yellow]other processes used up to {other:.2f} cores while measuring: "
            "figures are pessimistic; rerun on a quiet machine[/yellow]"
        )
    for i, r in enumerate(runs):
        for message in [
            *r.get("errors", []),
            *r.get("round_errors", []),
            *r.get("ceiling_errors", []),
        ]:
            err.print(f"[yellow]run {i + 1}: {message}[/yellow]")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="permission_loop.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--listeners", type=int, default=500, help="listeners N (default 500)")
    parser.add_argument("--rounds", type=int, default=200, help="permission rounds R (200)")
    parser.add_argument("--runs", type=int, default=3, help="runs K, median reported (3)")
    parser.add_argument("--fanout-events", type=int, default=20, help="fan-out events M (20)")
    parser.add_argument("--fanout-warmup", type=int, default=2, help="unmeasured events first")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured rounds first (5)")
    parser.add_argument(
        "--round-pause-ms",
        type=float,
        default=DEFAULT_ROUND_PAUSE_MS,
        help="pause between rounds, so that one round's broadcasts (an accept tells every "
        "watcher call.member_added) are flushed before the next starts; 0: back to back",
    )
    parser.add_argument("--join-concurrency", type=int, default=16)
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--run-timeout", type=float, default=900.0, help="bound per run, s")
    parser.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results path")
    args = parser.parse_args(argv)
    for name in ("listeners", "rounds", "runs", "fanout_events"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


async def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = []
    for run in range(1, args.runs + 1):
        err.print(f"run {run}/{args.runs} ...")
        runs.append(await run_once(args, run))
    return runs


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    nofile = raise_nofile_limit()
    if nofile < 2 * args.listeners + 100:
        err.print(f"[yellow]open-file limit {nofile} may be too low for {args.listeners}[/yellow]")
    _, loop = event_loop_factory(args.loop)
    runs = run_async(run_all(args), args.loop)
    summary = summarize(args, runs, loop)
    print_table(summary)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    out.print(f"wrote {args.output}")
    return summary


if __name__ == "__main__":
    main()
