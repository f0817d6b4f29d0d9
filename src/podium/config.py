"""Server settings: environment variables first, flags on top, defaults stated here once."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///./podium.db"
DEFAULT_SECRET_FILE = ".podium-secret"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Settings:
    secret: str
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    dev: bool = False
    media_loopback_only: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """`PODIUM_SECRET` (else a generated one kept in `PODIUM_SECRET_FILE`),
        `PODIUM_DATABASE_URL`, `PODIUM_REDIS_URL`, `PODIUM_MEDIA_LOOPBACK` ("1": the SFU
        offers only 127.0.0.1 candidates)."""
        env = dict(os.environ if env is None else env)
        secret = env.get("PODIUM_SECRET") or load_secret(
            Path(env.get("PODIUM_SECRET_FILE", DEFAULT_SECRET_FILE))
        )
        return cls(
            secret=secret,
            database_url=env.get("PODIUM_DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=env.get("PODIUM_REDIS_URL") or None,
            media_loopback_only=env.get("PODIUM_MEDIA_LOOPBACK") == "1",
        )

    def with_overrides(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        dev: bool | None = None,
        database_url: str | None = None,
        redis_url: str | None = None,
    ) -> Settings:
        """These settings with every given (not None) value replaced, e.g. from CLI flags."""
        return replace(
            self,
            host=self.host if host is None else host,
            port=self.port if port is None else port,
            dev=self.dev if dev is None else dev,
            database_url=database_url or self.database_url,
            redis_url=redis_url or self.redis_url,
        )


def load_secret(path: Path) -> str:
    """Read the secret file, creating it (mode 0600) with a random secret if absent."""
    if path.exists():
        secret = path.read_text().strip()
        if secret:
            return secret
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret
