"""The `podium` command: tokens, call types, and `serve` refusing unsafe flags.

In-process through `typer.testing.CliRunner`, and as a real `python -m podium`
subprocess where the working directory or a possible bind matters. Every test
runs in its own temporary directory so no `.podium-secret` lands in the repo.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from podium.cli import app
from podium.tokens import verify
from tests.server import free_port

SECRET = "cli-test-secret-0123456789abcdef0123456789abcdef"
BUILTIN_TYPES = ("default", "audio_room", "livestream", "development")
SUBPROCESS_TIMEOUT_S = 60


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("PODIUM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PODIUM_SECRET", SECRET)
    yield tmp_path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _text(output: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(output.split())


def _decode(token: str, secret: str = SECRET) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, secret, algorithms=["HS256"])
    return claims


def _podium(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    return subprocess.run(
        [sys.executable, "-m", "podium", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )


# tokens


def test_user_token_carries_claims_and_verifies(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["token", "alice", "--name", "Alice", "--role", "admin", "--ttl", "60"]
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert "\n" not in token
    claims = _decode(token)
    assert claims["sub"] == "alice"
    assert claims["name"] == "Alice"
    assert claims["role"] == "admin"
    assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int)
    assert claims["exp"] - claims["iat"] == 60
    assert "server" not in claims
    identity = verify(SECRET, token)
    assert (identity.user_id, identity.name, identity.role, identity.server) == (
        "alice",
        "Alice",
        "admin",
        False,
    )


def test_user_token_without_options_has_only_the_required_claims(runner: CliRunner) -> None:
    result = runner.invoke(app, ["token", "bob"])
    assert result.exit_code == 0, result.output
    claims = _decode(result.stdout.strip())
    assert set(claims) == {"sub", "iat", "exp", "jti"}
    assert claims["exp"] - claims["iat"] == 24 * 3600  # type: ignore[operator]


def test_token_is_signed_with_the_secret_from_the_environment(runner: CliRunner) -> None:
    result = runner.invoke(app, ["token", "alice"])
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(result.stdout.strip(), SECRET + "x", algorithms=["HS256"])


def test_server_token(runner: CliRunner) -> None:
    result = runner.invoke(app, ["token", "--server", "--ttl", "120"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    claims = _decode(token)
    assert claims["server"] is True
    assert claims["exp"] - claims["iat"] == 120  # type: ignore[operator]
    identity = verify(SECRET, token)
    assert identity.server is True
    assert identity.user_id == "server"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["token"], "give a USER, or --server"),
        (["token", "alice", "--server"], "give a USER, or --server"),
        (["token", "bad id!"], "user id must be 1-64 chars"),
        (["token", "x" * 65], "user id must be 1-64 chars"),
        (["token", ""], "user id must be 1-64 chars"),
    ],
    ids=["neither", "both", "bad-chars", "too-long", "empty"],
)
def test_token_errors_exit_nonzero_with_a_message(
    runner: CliRunner, args: list[str], message: str
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert message in _text(result.stderr)


def test_token_ttl_must_be_positive(runner: CliRunner) -> None:
    result = runner.invoke(app, ["token", "alice", "--ttl", "0"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--ttl" in result.stderr


def test_generated_secret_is_kept_in_a_private_file(tmp_path: Path) -> None:
    """Without PODIUM_SECRET, tokens from separate runs share one secret in .podium-secret."""
    workdir = tmp_path / "fresh"
    workdir.mkdir()
    first = _podium("token", "alice", cwd=workdir, env={})
    assert first.returncode == 0, first.stderr
    secret_file = workdir / ".podium-secret"
    assert secret_file.is_file()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) >= 32
    second = _podium("token", "--server", cwd=workdir, env={})
    assert second.returncode == 0, second.stderr
    assert secret_file.read_text().strip() == secret
    assert verify(secret, first.stdout.strip()).user_id == "alice"
    assert verify(secret, second.stdout.strip()).server is True
    assert [p.name for p in workdir.iterdir()] == [".podium-secret"]


def test_secret_file_location_follows_podium_secret_file(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "secret"
    target.parent.mkdir()
    done = _podium("token", "alice", cwd=tmp_path, env={"PODIUM_SECRET_FILE": str(target)})
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / ".podium-secret").exists()
    assert verify(target.read_text().strip(), done.stdout.strip()).user_id == "alice"


def test_podium_secret_wins_over_the_secret_file(tmp_path: Path) -> None:
    (tmp_path / ".podium-secret").write_text("file-secret-0123456789abcdef0123456789abcdef\n")
    done = _podium("token", "alice", cwd=tmp_path, env={"PODIUM_SECRET": SECRET})
    assert done.returncode == 0, done.stderr
    assert verify(SECRET, done.stdout.strip()).user_id == "alice"


# call types


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("PODIUM_DATABASE_URL", f"sqlite:///{path}")
    return path


def test_call_types_list_shows_the_builtin_types(runner: CliRunner, database: Path) -> None:
    result = runner.invoke(app, ["call-types", "list"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for name in BUILTIN_TYPES:
        assert any(name in line for line in lines), f"{name} missing from:\n{result.stdout}"
    audio_room = next(line for line in lines if "audio_room" in line)
    assert " on " in f" {audio_room} "
    assert database.exists()


def test_call_types_show_prints_json(runner: CliRunner, database: Path) -> None:
    result = runner.invoke(app, ["call-types", "show", "audio_room"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["name"] == "audio_room"
    assert shown["backstage"] is True
    assert set(shown["requestable"]) == {"send-audio", "send-video", "screenshare"}
    assert shown["request_ttl_s"] == 300
    assert shown["request_cooldown_s"] == 30
    assert "send-audio" not in shown["grants"]["user"]
    assert "join-call" in shown["grants"]["user"]
    assert "update-call-permissions" in shown["grants"]["host"]


@pytest.mark.parametrize("name", BUILTIN_TYPES)
def test_call_types_show_every_builtin(runner: CliRunner, database: Path, name: str) -> None:
    result = runner.invoke(app, ["call-types", "show", name])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["name"] == name
    for caps in shown["grants"].values():
        assert {"read-call", "create-call"} <= set(caps)


def test_call_types_show_unknown_exits_1(runner: CliRunner, database: Path) -> None:
    result = runner.invoke(app, ["call-types", "show", "nope"])
    assert result.exit_code == 1
    assert result.stdout == ""
    message = _text(result.stderr)
    assert "no call type 'nope'" in message
    assert "audio_room" in message


def test_call_types_through_the_module_entry_point(tmp_path: Path) -> None:
    env = {"PODIUM_SECRET": SECRET, "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path}/m.db"}
    shown = _podium("call-types", "show", "livestream", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["backstage"] is True
    missing = _podium("call-types", "show", "nope", cwd=tmp_path, env=env)
    assert missing.returncode == 1
    assert "no call type" in missing.stderr


# serve


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serve_dev_refuses_a_non_loopback_host(tmp_path: Path, host: str) -> None:
    """Runs as a subprocess with a timeout, so a regression that binds cannot hang the run."""
    db = tmp_path / "never.db"
    done = _podium(
        "serve",
        "--dev",
        "--host",
        host,
        "--port",
        str(free_port()),
        cwd=tmp_path,
        env={"PODIUM_SECRET": SECRET, "PODIUM_DATABASE_URL": f"sqlite:///{db}"},
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "refusing" in done.stderr
    assert host in done.stderr
    assert done.stdout == ""
    assert not db.exists(), "the database was opened: serve got past the check"


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "needs PostgreSQL and Redis"),
        ({"PODIUM_REDIS_URL": "redis://127.0.0.1:6379/0"}, "needs PostgreSQL, not sqlite"),
        ({"PODIUM_DATABASE_URL": "postgresql://podium@127.0.0.1:5432/x"}, "needs Redis"),
    ],
)
def test_serve_workers_refuses_without_postgres_and_redis(
    tmp_path: Path, env: dict[str, str], missing: str
) -> None:
    """One line naming what is missing and the flag that gives it; nothing opened or bound."""
    db = tmp_path / "never.db"
    port = free_port()
    done = _podium(
        "serve",
        "--workers",
        "2",
        "--port",
        str(port),
        cwd=tmp_path,
        env={"PODIUM_SECRET": SECRET, "PODIUM_DATABASE_URL": f"sqlite:///{db}", **env},
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"--workers 2 {missing}" in done.stderr
    assert "postgresql://..." in done.stderr or "redis://..." in done.stderr
    assert "Podium on" not in done.stderr
    assert not db.exists(), "the database was opened: serve got past the check"


def test_serve_workers_from_the_environment_and_auto(tmp_path: Path) -> None:
    """PODIUM_WORKERS counts like --workers; `auto` is one per CPU (here 1 or more)."""
    env = {"PODIUM_SECRET": SECRET, "PODIUM_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    refused = _podium("serve", cwd=tmp_path, env={**env, "PODIUM_WORKERS": "3"})
    assert refused.returncode == 2
    assert "--workers 3 needs PostgreSQL and Redis" in refused.stderr
    bad = _podium("serve", "--workers", "0", cwd=tmp_path, env=env)
    assert bad.returncode == 2
    assert "--workers must be a positive number or 'auto', got '0'" in bad.stderr
    if (os.cpu_count() or 1) > 1:
        auto = _podium("serve", "--workers", "auto", cwd=tmp_path, env=env)
        assert auto.returncode == 2
        assert f"--workers {os.cpu_count()} needs" in auto.stderr


def test_serve_workers_on_a_port_in_use_exits_1_before_starting_any(tmp_path: Path) -> None:
    """The supervisor checks the port itself, like a lone server (URLs are only read here)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _podium(
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
            cwd=tmp_path,
            env={
                "PODIUM_SECRET": SECRET,
                "PODIUM_DATABASE_URL": "postgresql+asyncpg://podium@127.0.0.1:9/never",
                "PODIUM_REDIS_URL": "redis://127.0.0.1:9/0",
            },
        )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"127.0.0.1:{port}" in done.stderr and "Podium on" not in done.stderr


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "token", "call-types"):
        assert command in result.stdout
