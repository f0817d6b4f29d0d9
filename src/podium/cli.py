"""The `podium` command: serve, mint tokens, inspect call types, run a bot participant."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from podium.config import (
    LOOPBACK_HOSTS,
    Settings,
    SettingsError,
    parse_workers,
    shared_backends_problem,
)
from podium.core.call_types import CallType
from podium.tokens import (
    DEFAULT_SERVER_TTL_S,
    DEFAULT_USER_TTL_S,
    mint_server_token,
    mint_user_token,
)

app = typer.Typer(help="Podium: moderated audio rooms and video calls.", no_args_is_help=True)
call_types_app = typer.Typer(help="Inspect call types.", no_args_is_help=True)
app.add_typer(call_types_app, name="call-types")
console = Console()
err = Console(stderr=True, soft_wrap=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    dev: Annotated[
        bool, typer.Option("--dev", help="Enable POST /v1/dev/token (loopback only).")
    ] = False,
    database_url: Annotated[
        str | None, typer.Option(envvar="PODIUM_DATABASE_URL", help="SQLAlchemy URL.")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(envvar="PODIUM_REDIS_URL", help="Redis URL for multi-node.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            envvar="PODIUM_METRICS_PORT",
            min=1,
            max=65535,
            help="Also serve /metrics without a token on 127.0.0.1:PORT "
            "(with --workers, worker 0's figures, which hold the SFU's).",
        ),
    ] = None,
    workers: Annotated[
        str,
        typer.Option(
            envvar="PODIUM_WORKERS",
            help="Server processes sharing the port: a number, or auto (one per CPU). "
            "More than 1 needs PostgreSQL and Redis.",
        ),
    ] = "1",
) -> None:
    """Run the Podium server."""
    from podium.api.app import create_app
    from podium.serving import PortInUse, bind, worker_slot
    from podium.serving import serve as run_server

    if dev and host not in LOOPBACK_HOSTS:
        err.print(f"[red]--dev mints tokens for anyone: refusing to serve it on {host}[/red]")
        raise typer.Exit(2)
    slot = worker_slot(os.environ)
    try:
        count = parse_workers(workers) if slot is None else slot.count
        settings = Settings.from_env().with_overrides(
            host=host,
            port=port,
            dev=dev,
            database_url=database_url,
            redis_url=redis_url,
            metrics_port=metrics_port,
        )
    except SettingsError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if slot is not None:
        # A worker of a supervising `podium serve`, which checked and announced it all.
        settings = replace(settings, worker=slot)
        try:
            sock = bind(host, port, reuse_port=True)
        except PortInUse as exc:
            err.print(f"[red]podium serve worker {slot.index}: {exc}[/red]")
            raise typer.Exit(1) from None
        run_server(create_app(settings), settings, sock)
        return
    problem = shared_backends_problem(settings, count)
    if problem is not None:
        err.print(f"[red]podium serve: {problem}[/red]")
        raise typer.Exit(2)
    try:
        sock = bind(host, port)
        if settings.metrics_port is not None:
            bind("127.0.0.1", settings.metrics_port).close()
    except PortInUse as exc:
        err.print(f"[red]podium serve: {exc} (is another server running? try --port)[/red]")
        raise typer.Exit(1) from None
    bus = "redis" if settings.redis_url else "in-process"
    err.print(
        f"Podium on http://{host}:{port}/  database={_redacted(settings.database_url)} "
        f"bus={bus} workers={count}{'  dev tokens ON' if dev else ''}"
    )
    if count == 1:
        run_server(create_app(settings), settings, sock)
        return
    sock.close()
    raise typer.Exit(_supervise(settings, count))


def _supervise(settings: Settings, count: int) -> int:
    """Run `count` workers of this server; they get the checked settings through the environment.

    Secrets and URLs travel in the environment rather than the command line,
    which every local user can read. Only worker 0 serves `--metrics-port`.
    """
    from podium.config import WorkerSlot
    from podium.serving import WORKER_ENV, Supervisor, spawn_worker, worker_env

    group = secrets.token_hex(8)
    argv = [sys.executable, "-m", "podium", "serve", "--host", settings.host]
    argv += ["--port", str(settings.port), *(["--dev"] if settings.dev else [])]
    base = {key: value for key, value in os.environ.items() if key != "PODIUM_WORKERS"}
    base |= {"PODIUM_SECRET": settings.secret, "PODIUM_DATABASE_URL": settings.database_url}
    base["PODIUM_REDIS_URL"] = settings.redis_url or ""
    base.pop("PODIUM_METRICS_PORT", None)

    def spawn(index: int) -> subprocess.Popen[bytes]:
        env = {**base, WORKER_ENV: worker_env(WorkerSlot(index, count, group))}
        if index == 0 and settings.metrics_port is not None:
            env["PODIUM_METRICS_PORT"] = str(settings.metrics_port)
        return spawn_worker(argv, env)

    return Supervisor(count, spawn).run()


@app.command()
def token(
    user: Annotated[str | None, typer.Argument(help="User id (omit with --server).")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    role: Annotated[str | None, typer.Option(help="Token role, e.g. admin.")] = None,
    ttl: Annotated[
        int | None,
        typer.Option(
            help="Lifetime in seconds (default: 1 day for users, 1 hour with --server, "
            "or less if PODIUM_LIMIT_TOKEN_TTL_S is; at most PODIUM_LIMIT_TOKEN_TTL_S, "
            "30 days unless set).",
            min=1,
        ),
    ] = None,
    server: Annotated[bool, typer.Option("--server", help="Mint a server token.")] = False,
    revoke: Annotated[
        str | None,
        typer.Option(
            "--revoke",
            metavar="JWT",
            help="Revoke this token on every node sharing the database, until it expires.",
        ),
    ] = None,
) -> None:
    """Print a signed token for USER (or a server token with --server), or revoke one."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if revoke is not None:
        if user is not None or server or ttl is not None:
            err.print("[red]--revoke takes only the token to revoke[/red]")
            raise typer.Exit(2)
        raise typer.Exit(asyncio.run(_revoke(settings, revoke)))
    if server == (user is not None):
        err.print("[red]give a USER, or --server (not both)[/red]")
        raise typer.Exit(2)
    longest = settings.limits.token_ttl_s
    # Without --ttl the default shrinks to the configured maximum rather than failing.
    lifetime = ttl or min(longest, DEFAULT_SERVER_TTL_S if server else DEFAULT_USER_TTL_S)
    if lifetime > longest:
        err.print(
            f"[red]--ttl {lifetime} is longer than the {longest} s allowed "
            "(PODIUM_LIMIT_TOKEN_TTL_S); mint a shorter token[/red]"
        )
        raise typer.Exit(2)
    if server:
        typer.echo(mint_server_token(settings.secret, ttl_s=lifetime))
        return
    assert user is not None
    try:
        typer.echo(mint_user_token(settings.secret, user, name=name, role=role, ttl_s=lifetime))
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


async def _revoke(settings: Settings, token: str) -> int:
    from podium.core.errors import PodiumError
    from podium.services.context import utcnow
    from podium.services.revocations import record_revocation, revocation_of
    from podium.store.sql import create_store

    try:
        revoked = revocation_of(settings.secret, token, by=None, now=utcnow())
    except PodiumError as exc:
        err.print(f"[red]{exc.message}: {exc.details.get('token', '')}[/red]")
        return 2
    if revoked is None:
        console.print("that token has already expired: nothing to revoke")
        return 0
    store = create_store(settings.database_url)
    await store.open()
    try:
        await record_revocation(store, revoked)
    finally:
        await store.close()
    console.print(
        f"revoked {revoked.token_id} until {revoked.expires_at:%Y-%m-%d %H:%M:%S} UTC "
        "(servers refuse it within a second)"
    )
    return 0


@app.command()
def bot(
    call: Annotated[str, typer.Option("--call", help="The call to join, as TYPE:ID.")],
    user: Annotated[str, typer.Option("--user", help="The bot's user id.")],
    request: Annotated[
        list[str] | None,
        typer.Option(
            "--request",
            help="Capability to publish with, requested if not held (repeatable): "
            "send-audio, send-video, screenshare. Default: send-audio.",
        ),
    ] = None,
    play: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Media file to play, looped (default: a 440 Hz tone / a test pattern).",
        ),
    ] = None,
    server: Annotated[str, typer.Option(help="Podium server URL.")] = "http://127.0.0.1:8000",
    token: Annotated[
        str | None,
        typer.Option(
            envvar="PODIUM_TOKEN",
            help="The bot's user token (default: a dev token from a `serve --dev` server).",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name (with a dev token).")] = None,
    duration: Annotated[
        float | None, typer.Option(min=0.1, help="Leave after this many seconds.")
    ] = None,
) -> None:
    """Join a call, ask to speak, and publish a tone or a file once the host allows it."""
    from podium.bot import BotConfig, parse_call, run

    try:
        call_type, call_id = parse_call(call)
        config = BotConfig(
            server=server,
            call_type=call_type,
            call_id=call_id,
            user=user,
            request=tuple(request or ("send-audio",)),
            name=name,
            token=token,
            play=play,
            duration_s=duration,
        )
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    raise typer.Exit(asyncio.run(run(config, console)))


async def _call_types(settings: Settings) -> list[CallType]:
    from podium.store.sql import create_store

    store = create_store(settings.database_url)
    await store.open()
    try:
        async with store.read() as tx:
            return await tx.list_call_types()
    finally:
        await store.close()


@call_types_app.command("list")
def call_types_list() -> None:
    """List call types with their backstage and requestable settings."""
    table = Table("type", "backstage", "requestable", "roles")
    for ct in asyncio.run(_call_types(Settings.from_env())):
        data = ct.to_dict()
        table.add_row(
            ct.name,
            "on" if ct.backstage else "off",
            ", ".join(data["requestable"]) or "-",
            ", ".join(data["grants"]),
        )
    console.print(table)


@call_types_app.command("show")
def call_types_show(type: Annotated[str, typer.Argument(help="Call type name.")]) -> None:
    """Print one call type as JSON."""
    found = {ct.name: ct for ct in asyncio.run(_call_types(Settings.from_env()))}
    if type not in found:
        err.print(f"[red]no call type {type!r}; known: {', '.join(sorted(found))}[/red]")
        raise typer.Exit(1)
    typer.echo(json.dumps(found[type].to_dict(), indent=2))


def _redacted(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def main() -> None:
    app()
