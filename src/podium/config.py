"""Server settings: environment variables first, flags on top, defaults stated here once."""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///./podium.db"
DEFAULT_SECRET_FILE = ".podium-secret"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_TURN_TTL_S = 24 * 3600
DEFAULT_PRESENCE_GRACE_S = 30.0
ICE_URL_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
#: The shortest secret accepted: HS256 tokens are only as strong as it.
MIN_SECRET_BYTES = 32
GENERATE_SECRET_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
#: Database URL schemes several server processes can share (SQLite is one process's file).
SHARED_DATABASE_SCHEMES = ("postgresql", "postgresql+asyncpg")


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
class Limits:
    """Every limit the server enforces, with its default (docs/security.md explains each).

    Each one is set with `PODIUM_LIMIT_<NAME>`, e.g. `PODIUM_LIMIT_WS_FRAME_BYTES=32768`.
    """

    #: HTTP request body (413 past it).
    body_bytes: int = 64 * 1024
    #: WebSocket frame, enforced by the protocol layer before authentication too (close 1009).
    ws_frame_bytes: int = 64 * 1024
    #: Frames a connection may send per second on average, and in one burst (close 1008).
    ws_messages_per_s: float = 20.0
    ws_message_burst: int = 100
    #: Open WebSockets per user on one server process (server tokens are not counted).
    ws_connections_per_user: int = 16
    #: Permission requests made plus cancelled, per user and call, in any 60 s (429).
    requests_per_minute: int = 30
    #: Calls a user may create in any hour (server tokens are not counted).
    calls_per_hour: int = 100
    #: One SDP offer or answer: its size and its number of m-lines.
    sdp_bytes: int = 32 * 1024
    sdp_media_sections: int = 16
    #: Remote ICE candidates per media session.
    ice_candidates: int = 64
    #: Seconds a client may take to send a request's headers.
    header_timeout_s: float = 10.0
    #: The longest lifetime `podium token` mints.
    token_ttl_s: int = 30 * 24 * 3600

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Limits:
        values: dict[str, float | int] = {}
        for f in fields(cls):
            name = f"PODIUM_LIMIT_{f.name.upper()}"
            text = env.get(name)
            if not text:
                continue
            kind = float if f.type == "float" else int
            try:
                value = kind(text)
            except ValueError:
                value = 0
            if not value > 0:
                what = "a positive number" if kind is float else "a positive whole number"
                raise SettingsError(f"{name} must be {what}, got {text!r}")
            values[f.name] = value
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class WorkerSlot:
    """Which process of `podium serve --workers N` this is.

    Worker 0 is the media worker: an SFU forwards media between the peer
    connections of one call in memory, so exactly one process runs it and the
    others relay `sfu.*` frames to it (`services.media_relay`).
    """

    index: int
    count: int
    #: Names this server's relay channels in Redis, so servers sharing one Redis keep apart.
    group: str

    @property
    def media(self) -> bool:
        return self.index == 0


def parse_workers(text: str) -> int:
    """`--workers` / `PODIUM_WORKERS`: a positive count, or `auto` for one per CPU."""
    if text.strip().lower() == "auto":
        return os.cpu_count() or 1
    if not text.strip().isdigit() or int(text) < 1:
        raise SettingsError(f"--workers must be a positive number or 'auto', got {text!r}")
    return int(text)


def shared_backends_problem(settings: Settings, workers: int) -> str | None:
    """Why `workers` processes cannot run with these settings, in one line (None: they can).

    Every worker is a node of its own: they must share a database and an event bus.
    """
    if workers == 1:
        return None
    scheme = settings.database_url.partition("://")[0]
    postgres = scheme in SHARED_DATABASE_SCHEMES
    if not postgres and settings.redis_url is None:
        return (
            f"--workers {workers} needs PostgreSQL and Redis: pass --database-url "
            "postgresql://... and --redis-url redis://... (or PODIUM_DATABASE_URL, "
            "PODIUM_REDIS_URL)"
        )
    if not postgres:
        return (
            f"--workers {workers} needs PostgreSQL, not {scheme}: pass --database-url "
            "postgresql://... (or PODIUM_DATABASE_URL)"
        )
    if settings.redis_url is None:
        return (
            f"--workers {workers} needs Redis: pass --redis-url redis://... (or PODIUM_REDIS_URL)"
        )
    return None


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
    limits: Limits = field(default_factory=Limits)
    #: A participant whose last connection has been gone this long leaves the call.
    presence_grace_s: float = DEFAULT_PRESENCE_GRACE_S
    #: Where `/metrics` is also served without a token, on 127.0.0.1 only (None: not at all).
    metrics_port: int | None = None
    #: Whether per-call metrics carry the call id as a label (off: calls are not named).
    metrics_call_labels: bool = False
    #: Set in the processes of `podium serve --workers N` (N > 1); None in a lone server.
    worker: WorkerSlot | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """`PODIUM_SECRET` (else a generated one kept in `PODIUM_SECRET_FILE`),
        `PODIUM_DATABASE_URL`, `PODIUM_REDIS_URL`, `PODIUM_MEDIA_LOOPBACK` ("1": the SFU
        offers only 127.0.0.1 candidates), `PODIUM_ICE_SERVERS` (JSON, see
        `parse_ice_servers`), `PODIUM_TURN_SECRET` and `PODIUM_TURN_TTL` (seconds),
        `PODIUM_PRESENCE_GRACE_S`, `PODIUM_METRICS_PORT`, `PODIUM_METRICS_CALL_LABELS`
        ("1") and the `PODIUM_LIMIT_*` of `Limits`. Raises `SettingsError` naming the
        variable when a value is unusable."""
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
        if env.get("PODIUM_SECRET"):
            secret = env["PODIUM_SECRET"]
            check_secret(secret, "PODIUM_SECRET")
        else:
            secret = load_secret(Path(env.get("PODIUM_SECRET_FILE", DEFAULT_SECRET_FILE)))
        grace_text = env.get("PODIUM_PRESENCE_GRACE_S") or str(DEFAULT_PRESENCE_GRACE_S)
        try:
            grace = float(grace_text)
        except ValueError:
            grace = 0.0
        if not 1 <= grace <= 24 * 3600:
            raise SettingsError(
                f"PODIUM_PRESENCE_GRACE_S must be seconds from 1 to 86400, got {grace_text!r}"
            )
        metrics_text = env.get("PODIUM_METRICS_PORT") or None
        if metrics_text is not None and not (
            metrics_text.isdigit() and 1 <= int(metrics_text) <= 65535
        ):
            raise SettingsError(f"PODIUM_METRICS_PORT must be a port number, got {metrics_text!r}")
        return cls(
            secret=secret,
            database_url=env.get("PODIUM_DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=env.get("PODIUM_REDIS_URL") or None,
            media_loopback_only=env.get("PODIUM_MEDIA_LOOPBACK") == "1",
            ice_servers=ice_servers,
            turn_secret=turn_secret,
            turn_ttl_s=int(ttl_text),
            limits=Limits.from_env(env),
            presence_grace_s=grace,
            metrics_port=int(metrics_text) if metrics_text else None,
            metrics_call_labels=env.get("PODIUM_METRICS_CALL_LABELS") == "1",
        )

    def with_overrides(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        dev: bool | None = None,
        database_url: str | None = None,
        redis_url: str | None = None,
        metrics_port: int | None = None,
    ) -> Settings:
        """These settings with every given (not None) value replaced, e.g. from CLI flags."""
        return replace(
            self,
            host=self.host if host is None else host,
            port=self.port if port is None else port,
            dev=self.dev if dev is None else dev,
            database_url=database_url or self.database_url,
            redis_url=redis_url or self.redis_url,
            metrics_port=self.metrics_port if metrics_port is None else metrics_port,
        )


def check_secret(secret: str, where: str) -> None:
    """Refuse a secret short enough to guess from one token."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"{where} is {len(secret.encode())} bytes; use at least {MIN_SECRET_BYTES} "
            f"random bytes, e.g. from: {GENERATE_SECRET_HINT}"
        )


def load_secret(path: Path) -> str:
    """Read the secret file, creating it (mode 0600) with a random secret if absent.

    An existing file must be readable by its owner only: a secret others can
    read lets them mint any token.
    """
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SettingsError(
                f"secret file {path} can be read by group or others (mode {mode:04o}); "
                f"run: chmod 600 {path}"
            )
        secret = path.read_text().strip()
        if secret:
            check_secret(secret, f"the secret in {path}")
            return secret
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret
