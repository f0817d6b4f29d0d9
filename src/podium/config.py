"""Server settings: environment variables first, flags on top, defaults stated here once."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///./podium.db"
DEFAULT_SECRET_FILE = ".podium-secret"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_TURN_TTL_S = 24 * 3600
ICE_URL_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


class SettingsError(ValueError):
    """A setting has a value the server cannot use; the message names the variable."""


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server as WebRTC's `RTCIceServer` describes it.

    TURN servers without a `username` get short-lived credentials per join when
    `turn_secret` is set (coturn's `use-auth-secret`, the "TURN REST API").
    """

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    @property
    def is_turn(self) -> bool:
        return any(url.startswith(("turn:", "turns:")) for url in self.urls)


def parse_ice_servers(text: str) -> tuple[IceServer, ...]:
    """`PODIUM_ICE_SERVERS`: a JSON list of `{"urls": str | [str], "username"?, "credential"?}`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SettingsError(f"PODIUM_ICE_SERVERS is not valid JSON: {e}") from e
    if not isinstance(data, list):
        raise SettingsError("PODIUM_ICE_SERVERS must be a JSON list of ICE servers")
    servers = []
    for i, entry in enumerate(data):
        where = f"PODIUM_ICE_SERVERS[{i}]"
        if not isinstance(entry, dict):
            raise SettingsError(f"{where} must be an object with 'urls'")
        unknown = sorted(set(entry) - {"urls", "username", "credential"})
        if unknown:
            raise SettingsError(f"{where} has unknown field(s): {', '.join(unknown)}")
        urls = entry.get("urls")
        urls = [urls] if isinstance(urls, str) else urls
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise SettingsError(f"{where}.urls must be a URL or a non-empty list of URLs")
        for url in urls:
            if not url.startswith(ICE_URL_SCHEMES):
                raise SettingsError(
                    f"{where}: {url!r} must start with one of {', '.join(ICE_URL_SCHEMES)}"
                )
        username, credential = entry.get("username"), entry.get("credential")
        for name, value in (("username", username), ("credential", credential)):
            if value is not None and not isinstance(value, str):
                raise SettingsError(f"{where}.{name} must be a string")
        if (username is None) != (credential is None):
            raise SettingsError(f"{where}: give both 'username' and 'credential', or neither")
        servers.append(IceServer(tuple(urls), username, credential))
    return tuple(servers)


@dataclass(frozen=True)
class Settings:
    secret: str
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    dev: bool = False
    media_loopback_only: bool = False
    ice_servers: tuple[IceServer, ...] = field(default=())
    turn_secret: str | None = None
    turn_ttl_s: int = DEFAULT_TURN_TTL_S

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """`PODIUM_SECRET` (else a generated one kept in `PODIUM_SECRET_FILE`),
        `PODIUM_DATABASE_URL`, `PODIUM_REDIS_URL`, `PODIUM_MEDIA_LOOPBACK` ("1": the SFU
        offers only 127.0.0.1 candidates), `PODIUM_ICE_SERVERS` (JSON, see
        `parse_ice_servers`), `PODIUM_TURN_SECRET` and `PODIUM_TURN_TTL` (seconds).
        Raises `SettingsError` naming the variable when a value is unusable."""
        env = dict(os.environ if env is None else env)
        ttl_text = env.get("PODIUM_TURN_TTL") or str(DEFAULT_TURN_TTL_S)
        if not ttl_text.isdigit() or not 60 <= int(ttl_text) <= 7 * 24 * 3600:
            raise SettingsError(
                f"PODIUM_TURN_TTL must be whole seconds from 60 to 604800, got {ttl_text!r}"
            )
        ice_servers = parse_ice_servers(env.get("PODIUM_ICE_SERVERS") or "[]")
        turn_secret = env.get("PODIUM_TURN_SECRET") or None
        if turn_secret is None and any(s.is_turn and s.username is None for s in ice_servers):
            raise SettingsError(
                "a TURN server in PODIUM_ICE_SERVERS has no username/credential: "
                "give them, or set PODIUM_TURN_SECRET for per-join credentials"
            )
        secret = env.get("PODIUM_SECRET") or load_secret(
            Path(env.get("PODIUM_SECRET_FILE", DEFAULT_SECRET_FILE))
        )
        return cls(
            secret=secret,
            database_url=env.get("PODIUM_DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=env.get("PODIUM_REDIS_URL") or None,
            media_loopback_only=env.get("PODIUM_MEDIA_LOOPBACK") == "1",
            ice_servers=ice_servers,
            turn_secret=turn_secret,
            turn_ttl_s=int(ttl_text),
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
