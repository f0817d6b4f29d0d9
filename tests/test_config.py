"""Settings: environment first, flags on top, defaults; the generated secret file."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from podium.config import (
    DEFAULT_DATABASE_URL,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_SECRET_FILE,
    LOOPBACK_HOSTS,
    IceServer,
    Limits,
    Settings,
    SettingsError,
    load_secret,
)

SECRET = "config-test-secret-0123456789abcdef0123456789"


def test_defaults() -> None:
    settings = Settings.from_env({"PODIUM_SECRET": SECRET})
    assert settings == Settings(secret=SECRET)
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///./podium.db"
    assert settings.redis_url is None
    assert (settings.host, settings.port, settings.dev) == (DEFAULT_HOST, DEFAULT_PORT, False)
    assert DEFAULT_HOST == "127.0.0.1"
    assert DEFAULT_PORT == 8000
    assert DEFAULT_SECRET_FILE == ".podium-secret"


def test_environment_overrides() -> None:
    settings = Settings.from_env(
        {
            "PODIUM_SECRET": SECRET,
            "PODIUM_DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1/db",
            "PODIUM_REDIS_URL": "redis://127.0.0.1:6379/3",
        }
    )
    assert settings.secret == SECRET
    assert settings.database_url == "postgresql+asyncpg://u@127.0.0.1/db"
    assert settings.redis_url == "redis://127.0.0.1:6379/3"


def test_empty_variables_mean_unset() -> None:
    settings = Settings.from_env(
        {
            "PODIUM_SECRET": SECRET,
            "PODIUM_DATABASE_URL": "",
            "PODIUM_REDIS_URL": "",
        }
    )
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.redis_url is None


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_SECRET", SECRET)
    monkeypatch.setenv("PODIUM_DATABASE_URL", "sqlite:///x.db")
    monkeypatch.delenv("PODIUM_REDIS_URL", raising=False)
    settings = Settings.from_env()
    assert settings.secret == SECRET
    assert settings.database_url == "sqlite:///x.db"
    assert settings.redis_url is None


def test_from_env_does_not_modify_the_mapping_given() -> None:
    env = {"PODIUM_SECRET": SECRET}
    Settings.from_env(env)
    assert env == {"PODIUM_SECRET": SECRET}


def test_flags_override_and_none_keeps_the_value() -> None:
    base = Settings.from_env({"PODIUM_SECRET": SECRET, "PODIUM_REDIS_URL": "redis://127.0.0.1"})
    changed = base.with_overrides(
        host="localhost", port=9001, dev=True, database_url=None, redis_url=None
    )
    assert (changed.host, changed.port, changed.dev) == ("localhost", 9001, True)
    assert changed.database_url == DEFAULT_DATABASE_URL
    assert changed.redis_url == "redis://127.0.0.1"
    assert changed.secret == SECRET
    assert base.port == DEFAULT_PORT, "with_overrides returns a copy"
    assert base.with_overrides() == base


def test_false_and_zero_are_overrides_not_unset() -> None:
    base = Settings(secret=SECRET, dev=True)
    assert base.with_overrides(dev=False).dev is False
    assert base.with_overrides(port=0).port == 0


def test_settings_are_immutable() -> None:
    settings = Settings(secret=SECRET)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


def test_loopback_hosts() -> None:
    assert {"127.0.0.1", "localhost", "::1"} == LOOPBACK_HOSTS
    assert "0.0.0.0" not in LOOPBACK_HOSTS
    assert "::" not in LOOPBACK_HOSTS


# the secret file


def test_without_secret_one_is_generated_in_the_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    first = Settings.from_env({"PODIUM_SECRET_FILE": str(path)})
    assert len(first.secret) >= 32
    assert path.read_text() == first.secret + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = Settings.from_env({"PODIUM_SECRET_FILE": str(path)})
    assert second.secret == first.secret


def test_default_secret_file_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert (tmp_path / ".podium-secret").read_text().strip() == settings.secret
    assert Settings.from_env({}).secret == settings.secret


def test_podium_secret_wins_and_no_file_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _private_file(tmp_path / "other", "from-file\n")
    settings = Settings.from_env({"PODIUM_SECRET": SECRET, "PODIUM_SECRET_FILE": "other"})
    assert settings.secret == SECRET
    assert sorted(os.listdir(tmp_path)) == ["other"]


def _private_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_existing_secret_file_is_read_and_stripped(tmp_path: Path) -> None:
    path = _private_file(tmp_path / "secret", f"  {SECRET}  \n\n")
    assert load_secret(path) == SECRET
    assert path.read_text() == f"  {SECRET}  \n\n", "an existing secret is not rewritten"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o666])
def test_a_secret_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = _private_file(tmp_path / "secret", SECRET)
    path.chmod(mode)
    with pytest.raises(SettingsError, match=rf"mode {mode:04o}\); run: chmod 600 "):
        Settings.from_env({"PODIUM_SECRET_FILE": str(path)})


@pytest.mark.parametrize("secret", ["abc", "x" * 31, "é" * 15])
def test_short_secrets_are_refused_with_a_way_to_make_one(tmp_path: Path, secret: str) -> None:
    with pytest.raises(SettingsError, match=r"at least 32 random bytes.*secrets.token_urlsafe"):
        Settings.from_env({"PODIUM_SECRET": secret})
    path = _private_file(tmp_path / "secret", secret)
    with pytest.raises(SettingsError, match="at least 32"):
        load_secret(path)


def test_a_32_byte_secret_is_enough() -> None:
    assert Settings.from_env({"PODIUM_SECRET": "s" * 32}).secret == "s" * 32


def test_empty_secret_file_is_replaced(tmp_path: Path) -> None:
    path = _private_file(tmp_path / "secret", " \n")
    secret = load_secret(path)
    assert len(secret) >= 32
    assert path.read_text() == secret + "\n"
    assert load_secret(path) == secret


def test_generated_secrets_differ(tmp_path: Path) -> None:
    assert load_secret(tmp_path / "a") != load_secret(tmp_path / "b")


def test_ice_servers_and_turn_settings() -> None:
    settings = Settings.from_env(
        {
            "PODIUM_SECRET": SECRET,
            "PODIUM_ICE_SERVERS": (
                '[{"urls": "stun:127.0.0.1:3478"},'
                ' {"urls": ["turn:127.0.0.1:3478"], "username": "u", "credential": "c"},'
                ' {"urls": "turns:127.0.0.1:5349"}]'
            ),
            "PODIUM_TURN_SECRET": "shared",
            "PODIUM_TURN_TTL": "3600",
        }
    )
    assert settings.ice_servers == (
        IceServer(("stun:127.0.0.1:3478",)),
        IceServer(("turn:127.0.0.1:3478",), "u", "c"),
        IceServer(("turns:127.0.0.1:5349",)),
    )
    assert (settings.turn_secret, settings.turn_ttl_s) == ("shared", 3600)
    assert Settings.from_env({"PODIUM_SECRET": SECRET}).ice_servers == ()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PODIUM_ICE_SERVERS": "stun:x"}, "not valid JSON"),
        ({"PODIUM_ICE_SERVERS": "{}"}, "must be a JSON list"),
        ({"PODIUM_ICE_SERVERS": "[1]"}, r"PODIUM_ICE_SERVERS\[0\] must be an object"),
        ({"PODIUM_ICE_SERVERS": '[{"urls": []}]'}, "non-empty list"),
        ({"PODIUM_ICE_SERVERS": '[{"urls": "http://x"}]'}, "must start with one of"),
        ({"PODIUM_ICE_SERVERS": '[{"urls": "stun:x", "user": "u"}]'}, "unknown field"),
        ({"PODIUM_ICE_SERVERS": '[{"urls": "turn:x", "username": "u"}]'}, "or neither"),
        (
            {"PODIUM_ICE_SERVERS": '[{"urls": "turn:x", "username": 1, "credential": "c"}]'},
            "string",
        ),
        ({"PODIUM_ICE_SERVERS": '[{"urls": "turn:x"}]'}, "set PODIUM_TURN_SECRET"),
        ({"PODIUM_TURN_TTL": "10"}, "PODIUM_TURN_TTL"),
        ({"PODIUM_TURN_TTL": "1h"}, "PODIUM_TURN_TTL"),
    ],
)
def test_bad_ice_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"PODIUM_SECRET": SECRET, **env})


# limits and the other trust settings


def test_limits_have_defaults_and_each_can_be_set() -> None:
    settings = Settings.from_env({"PODIUM_SECRET": SECRET})
    assert settings.limits == Limits()
    assert (settings.presence_grace_s, settings.metrics_port) == (30.0, None)
    assert settings.metrics_call_labels is False
    env = {f"PODIUM_LIMIT_{f.name.upper()}": "7" for f in dataclasses.fields(Limits)}
    limits = Settings.from_env({"PODIUM_SECRET": SECRET, **env}).limits
    assert all(getattr(limits, f.name) == 7 for f in dataclasses.fields(Limits))
    assert Limits.from_env({"PODIUM_LIMIT_WS_MESSAGES_PER_S": "2.5"}).ws_messages_per_s == 2.5
    other = Settings.from_env(
        {
            "PODIUM_SECRET": SECRET,
            "PODIUM_PRESENCE_GRACE_S": "5",
            "PODIUM_METRICS_PORT": "9100",
            "PODIUM_METRICS_CALL_LABELS": "1",
        }
    )
    assert (other.presence_grace_s, other.metrics_port, other.metrics_call_labels) == (
        5.0,
        9100,
        True,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PODIUM_LIMIT_CALLS_PER_HOUR": "0"}, "PODIUM_LIMIT_CALLS_PER_HOUR must be a positive"),
        ({"PODIUM_LIMIT_CALLS_PER_HOUR": "2.5"}, "whole number"),
        ({"PODIUM_LIMIT_HEADER_TIMEOUT_S": "-1"}, "PODIUM_LIMIT_HEADER_TIMEOUT_S"),
        ({"PODIUM_LIMIT_WS_FRAME_BYTES": "lots"}, "PODIUM_LIMIT_WS_FRAME_BYTES"),
        ({"PODIUM_PRESENCE_GRACE_S": "0"}, "PODIUM_PRESENCE_GRACE_S"),
        ({"PODIUM_METRICS_PORT": "70000"}, "PODIUM_METRICS_PORT"),
    ],
)
def test_bad_limits_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"PODIUM_SECRET": SECRET, **env})
