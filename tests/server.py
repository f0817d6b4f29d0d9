"""Run a real `podium serve` process for tests: free port, its own database, bounded waits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from podium.tokens import mint_server_token, mint_user_token

SECRET = "podium-test-secret-0123456789abcdef0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """`podium serve` in a subprocess; `start()` returns once `/healthz` answers."""

    workdir: Path
    database_url: str
    redis_url: str | None = None
    port: int = field(default_factory=free_port)
    dev: bool = False
    #: `--workers`: above 1 the process is a supervisor of that many server processes.
    workers: int = 1
    extra_env: Mapping[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def token(self, user_id: str, *, name: str | None = None, role: str | None = None) -> str:
        return mint_user_token(SECRET, user_id, name=name or user_id, role=role)

    def server_token(self) -> str:
        return mint_server_token(SECRET)

    def start(self, timeout_s: float = 20.0) -> ServerProcess:
        env = {
            **os.environ,
            "PODIUM_SECRET": SECRET,
            "PODIUM_DATABASE_URL": self.database_url,
            **self.extra_env,
        }
        env.pop("PODIUM_REDIS_URL", None)
        if self.redis_url:
            env["PODIUM_REDIS_URL"] = self.redis_url
        args = [sys.executable, "-m", "podium", "serve", "--port", str(self.port)]
        if self.dev:
            args.append("--dev")
        if self.workers != 1:
            args += ["--workers", str(self.workers)]
        with open(self.workdir / f"server-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(args, cwd=self.workdir, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout_s} s: {self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        path = self.workdir / f"server-{self.port}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""
