"""Shared benchmark plumbing: server subprocesses, limits, statistics, machine info.

Independent of `tests/` so benchmarks run without the test tree. Everything
binds and connects to 127.0.0.1 only, and every wait is bounded.

Also runnable as `python -m bench.common ceiling --port N`: a minimal plain
`websockets` broadcast server, the ceiling that Podium's fan-out is compared to.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
SECRET = "podium-bench-secret-0123456789abcdef0123456789"
REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def raise_nofile_limit() -> int:
    """Raise the soft open-file limit to the hard one (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def event_loop_factory(kind: str) -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """`auto` picks uvloop when installed (uvicorn[standard] brings it, and podium uses it)."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop, "uvloop"
    return asyncio.new_event_loop, "asyncio"


def run_async(main: Coroutine[Any, Any, T], loop: str = "auto") -> T:
    factory, _ = event_loop_factory(loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


# statistics


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None if empty."""
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Iterable[float | None]) -> float | None:
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    mid = len(data) // 2
    return data[mid] if len(data) % 2 else (data[mid - 1] + data[mid]) / 2


# machine


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": _cpu_model(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "source": source_revision(),
        "versions": {
            name: _version(name) for name in ("podium", "uvicorn", "websockets", "httpx", "uvloop")
        },
    }


def source_revision() -> dict[str, Any]:
    """The commit the benchmarked server runs from, and whether `src/` has local changes."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    status = git("status", "--porcelain", "--", "src")
    return {
        "commit": git("rev-parse", "HEAD"),
        "src_dirty": bool(status) if status is not None else None,
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, from /proc (None where unavailable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def system_busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy (not idle or iowait), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# subprocesses


@dataclass
class Subprocess:
    """A server in its own process, logging to `workdir/<name>-<port>.log`."""

    workdir: Path
    name: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    ready_at: float | None = None
    """`time.perf_counter()` when the server first answered."""
    _log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}-{self.port}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float | None:
        return None if self.proc is None else process_cpu_seconds(self.proc.pid)

    def _spawn(self, args: list[str], env: Mapping[str, str]) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, cwd=self.workdir, env=dict(env), stdout=self._log, stderr=self._log
        )

    async def _wait_ready(
        self, probe: Callable[[], Coroutine[Any, Any, bool]], timeout_s: float
    ) -> None:
        deadline = time.monotonic() + timeout_s
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"{self.name} exited with {code}: {self.log_tail()}")
            if await probe():
                self.ready_at = time.perf_counter()
                return
            await asyncio.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not start in {timeout_s} s: {self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout_s`; always reaps and closes the log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 4000) -> str:
        path = self.log_path
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@dataclass
class PodiumServer(Subprocess):
    """`podium serve` on SQLite in `workdir`, with `SECRET` as its token secret."""

    name: str = "podium"
    #: Added to the server's environment, e.g. `PODIUM_MEDIA_LOOPBACK=1`.
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}/v1/ws"

    async def start(self, timeout_s: float = 30.0) -> PodiumServer:
        env = {
            **os.environ,
            "PODIUM_SECRET": SECRET,
            "PODIUM_DATABASE_URL": f"sqlite:///{self.workdir / 'podium.db'}",
            **self.extra_env,
        }
        env.pop("PODIUM_REDIS_URL", None)
        args = [sys.executable, "-m", "podium", "serve", "--host", LOOPBACK]
        self._spawn([*args, "--port", str(self.port)], env)
        async with httpx.AsyncClient(timeout=1.0) as http:

            async def healthy() -> bool:
                try:
                    return (await http.get(f"{self.url}/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await self._wait_ready(healthy, timeout_s)
        return self


@dataclass
class CeilingServer(Subprocess):
    """`python -m bench.common ceiling`: plain websockets + broadcast(), same loop as podium."""

    name: str = "ceiling"
    loop: str = "auto"

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}/"

    async def start(self, timeout_s: float = 20.0) -> CeilingServer:
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), path) if p)}
        args = [sys.executable, "-m", "bench.common", "ceiling", "--port", str(self.port)]
        self._spawn([*args, "--loop", self.loop], env)

        async def listening() -> bool:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(LOOPBACK, self.port), 1.0
                )
            except (OSError, TimeoutError):
                return False
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True

        await self._wait_ready(listening, timeout_s)
        return self


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descending from it (a server's workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def process_rss_bytes(pid: int) -> int | None:
    """Resident set size of one process, from /proc (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def tree_rss_bytes(pid: int) -> int | None:
    """Summed resident set size of `pid` and its descendants."""
    sizes = [process_rss_bytes(p) for p in process_tree(pid)]
    known = [s for s in sizes if s is not None]
    return sum(known) if known else None


def tree_cpu_seconds(pid: int) -> float | None:
    """Summed user + system CPU time of `pid` and its live descendants."""
    times = [process_cpu_seconds(p) for p in process_tree(pid)]
    known = [t for t in times if t is not None]
    return sum(known) if known else None


def podium_serve_has_option(option: str) -> bool:
    """Whether `podium serve --help` of the installed server lists `option`."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "podium", "serve", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and option in done.stdout


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True
    except OSError:
        return False


PG_ADMIN_URL = os.environ.get("PODIUM_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
"""Where a benchmark creates (and drops) a PostgreSQL database of its own."""


@dataclass
class PostgresDatabase:
    """An empty database on the local PostgreSQL, created by `create()`, gone after `drop()`."""

    name: str

    @property
    def url(self) -> str:
        host = PG_ADMIN_URL.split("://", 1)[1].rsplit("/", 1)[0]
        return f"postgresql+asyncpg://{host}/{self.name}"

    async def _admin(self, sql: str) -> None:
        import asyncpg

        conn = await asyncio.wait_for(asyncpg.connect(PG_ADMIN_URL), 10)
        try:
            await asyncio.wait_for(conn.execute(sql), 60)
        finally:
            await conn.close()

    async def create(self) -> PostgresDatabase:
        await self._admin(f'CREATE DATABASE "{self.name}"')
        return self

    async def drop(self) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@dataclass
class RedisServer(Subprocess):
    """A `redis-server` of the benchmark's own on a free 127.0.0.1 port, nothing saved."""

    name: str = "redis"

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    async def start(self, timeout_s: float = 15.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        args = [binary, "--bind", LOOPBACK, "--port", str(self.port), "--save", ""]
        self._spawn([*args, "--appendonly", "no", "--dir", str(self.workdir)], os.environ)

        async def answering() -> bool:
            return port_open(self.port)

        await self._wait_ready(answering, timeout_s)
        return self


@dataclass
class PodiumWorkersServer(PodiumServer):
    """`podium serve --workers N` on PostgreSQL and Redis, with `SECRET` as its token secret."""

    name: str = "podium-workers"
    workers: int = 2
    database_url: str = ""
    redis_url: str = ""

    async def start(self, timeout_s: float = 60.0) -> PodiumWorkersServer:
        env = {**os.environ, "PODIUM_SECRET": SECRET, **self.extra_env}
        for name in ("PODIUM_DATABASE_URL", "PODIUM_REDIS_URL", "PODIUM_WORKERS"):
            env.pop(name, None)
        args = [sys.executable, "-m", "podium", "serve", "--host", LOOPBACK, "--port"]
        args += [str(self.port), "--workers", str(self.workers)]
        args += ["--database-url", self.database_url, "--redis-url", self.redis_url]
        self._spawn(args, env)
        async with httpx.AsyncClient(timeout=1.0) as http:

            async def healthy() -> bool:
                try:
                    return (await http.get(f"{self.url}/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await self._wait_ready(healthy, timeout_s)
        return self


def encode(frame: Mapping[str, Any]) -> str:
    """The same compact JSON encoding as podium's hub."""
    return json.dumps(frame, separators=(",", ":"))


async def serve_ceiling(port: int) -> None:
    """Mirror of the hub's protocol, minus everything but the broadcast.

    Frames: `connection.ok` on connect; `watch` → joins the broadcast set,
    `watch.ok`; `trigger` with a `frame` → `broadcast()` it (encoded once) to
    every watcher, then `trigger.ok` to the trigger; `ping` → `pong`.
    """
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    watchers: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        await ws.send(encode({"type": "connection.ok"}))
        try:
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "watch":
                    watchers.add(ws)
                    reply = {"type": "watch.ok", "call_cid": message.get("call_cid"), "seq": 0}
                    await ws.send(encode(reply))
                elif kind == "trigger":
                    broadcast(watchers, encode(message["frame"]))
                    await ws.send(encode({"type": "trigger.ok"}))
                elif kind == "ping":
                    await ws.send(encode({"type": "pong"}))
        finally:
            watchers.discard(ws)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(handler, LOOPBACK, port, ping_interval=None, compression=None, backlog=2048):
        await stop.wait()


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.common")
    sub = parser.add_subparsers(dest="command", required=True)
    ceiling = sub.add_parser("ceiling", help="run the plain-websockets broadcast server")
    ceiling.add_argument("--port", type=int, required=True)
    ceiling.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto")
    args = parser.parse_args(argv)
    run_async(serve_ceiling(args.port), args.loop)


if __name__ == "__main__":
    _main()
