"""`podium.core.roles`: built-in role names, the role-name pattern, the effective role."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.core import roles
from podium.core.roles import ADMIN, HOST, ROLE_PATTERN, SPEAKER, USER, effective_role
from tests.core import PROPERTY_SETTINGS, role_names, token_roles


def test_builtin_role_names() -> None:
    assert (USER, SPEAKER, HOST, ADMIN) == ("user", "speaker", "host", "admin")


@pytest.mark.parametrize(
    "name",
    ["user", "speaker", "host", "admin", "a", "x1", "call_member", "co-host", "a" * 32, "z-_9"],
)
def test_role_pattern_accepts(name: str) -> None:
    assert ROLE_PATTERN.fullmatch(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Host",
        "ADMIN",
        "1host",
        "-host",
        "_host",
        "a" * 33,
        "co host",
        "host.x",
        "host:1",
        "hôst",
        "host\n",
        "\nhost",
    ],
)
def test_role_pattern_rejects(name: str) -> None:
    assert not ROLE_PATTERN.fullmatch(name)


@pytest.mark.parametrize(
    ("member_role", "token_role", "expected"),
    [
        # Not a member: `user`.
        (None, None, "user"),
        # The member role otherwise.
        ("user", None, "user"),
        ("speaker", None, "speaker"),
        ("host", None, "host"),
        ("admin", None, "admin"),
        ("moderator", None, "moderator"),
        # A token with "role": "admin" makes its holder admin in every call.
        (None, "admin", "admin"),
        ("user", "admin", "admin"),
        ("speaker", "admin", "admin"),
        ("host", "admin", "admin"),
        ("moderator", "admin", "admin"),
        # Any other token role changes nothing.
        (None, "host", "user"),
        (None, "user", "user"),
        ("speaker", "host", "speaker"),
        ("host", "user", "host"),
        ("host", "Admin", "host"),
        (None, "ADMIN", "user"),
        (None, "", "user"),
    ],
)
def test_effective_role(member_role: str | None, token_role: str | None, expected: str) -> None:
    assert effective_role(member_role, token_role) == expected


@PROPERTY_SETTINGS
@given(st.none() | role_names)
def test_admin_token_always_wins(member_role: str | None) -> None:
    assert effective_role(member_role, roles.ADMIN) == "admin"


@PROPERTY_SETTINGS
@given(role_names, token_roles)
def test_member_role_kept_unless_admin_token(member_role: str, token_role: str | None) -> None:
    expected = "admin" if token_role == "admin" else member_role
    assert effective_role(member_role, token_role) == expected
