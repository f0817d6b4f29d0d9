"""Role names that the built-in call types use; custom types may add their own."""

from __future__ import annotations

import re
from typing import Final

USER: Final = "user"
SPEAKER: Final = "speaker"
HOST: Final = "host"
ADMIN: Final = "admin"

ROLE_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def effective_role(member_role: str | None, token_role: str | None) -> str:
    """The role a user has in a call.

    A token carrying `"role": "admin"` makes its holder admin in every call;
    otherwise it is the member role, or `user` for non-members.
    """
    if token_role == ADMIN:
        return ADMIN
    return member_role or USER
