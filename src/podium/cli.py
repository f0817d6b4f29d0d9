"""The `podium` command: serve, mint tokens, inspect call types, run a bot participant."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from podium.config import LOOPBACK_HOSTS, Settings, SettingsError
from podium.core.call_types import CallType
from podium.tokens import mint_server_token, mint_user_token

app = typer.Typer(help="Podium: moderated audio rooms and video calls.", no_args_is_help=True)
call_types_app = typer.Typer(help="Inspect call types.", no_args_is_help=True)
app.add_typer(call_types_app, name="call-types")
console = Console()
err = Console(stderr=True)


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
) -> None:
    """Run the Podium server."""
    import uvicorn

    from podium.api.app import create_app

    if dev and host not in LOOPBACK_HOSTS:
        err.print(f"[red]--dev mints tokens for anyone: refusing to serve it on {host}[/red]")
        raise typer.Exit(2)
    try:
        settings = Settings.from_env().with_overrides(
            host=host, port=port, dev=dev, database_url=database_url, redis_url=redis_url
        )
    except SettingsError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    bus = "redis" if settings.redis_url else "in-process"
    err.print(
        f"Podium on http://{host}:{port}/  database={_redacted(settings.database_url)} "
        f"bus={bus}{'  dev tokens ON' if dev else ''}"
    )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        # Event frames are small JSON: deflating each one per connection costs more
        # CPU than it saves. The sans-io protocol writes frames without a task switch.
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_ping_interval=None,
    )


@app.command()
def token(
    user: Annotated[str | None, typer.Argument(help="User id (omit with --server).")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    role: Annotated[str | None, typer.Option(help="Token role, e.g. admin.")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.", min=1)] = 24 * 3600,
    server: Annotated[bool, typer.Option("--server", help="Mint a server token.")] = False,
) -> None:
    """Print a signed token for USER (or a server token with --server)."""
    settings = Settings.from_env()
    if server == (user is not None):
        err.print("[red]give a USER, or --server (not both)[/red]")
        raise typer.Exit(2)
    if server:
        typer.echo(mint_server_token(settings.secret, ttl_s=ttl))
        return
    assert user is not None
    try:
        typer.echo(mint_user_token(settings.secret, user, name=name, role=role, ttl_s=ttl))
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


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
