"""Who is acting: a verified token's claims, independent of how it arrived."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from podium.core.capabilities import ALL_CAPABILITIES, Capabilities
from podium.core.policy import CallAccess

SERVER_USER_ID = "server"


@dataclass(frozen=True)
class Identity:
    """Who acts; `token_id` and `expires_at` say which token proved it (not who it is)."""

    user_id: str
    name: str | None = None
    image: str | None = None
    role: str | None = None
    server: bool = False
    #: What revoking the token refers to (`podium.tokens.token_id`).
    token_id: str | None = field(default=None, compare=False)
    #: The token's `exp` (Unix seconds).
    expires_at: int | None = field(default=None, compare=False)

    @classmethod
    def server_identity(
        cls,
        user_id: str | None = None,
        *,
        token_id: str | None = None,
        expires_at: int | None = None,
    ) -> Identity:
        return cls(
            user_id=user_id or SERVER_USER_ID,
            name="server",
            server=True,
            token_id=token_id,
            expires_at=expires_at,
        )

    def capabilities_in(self, access: CallAccess) -> Capabilities:
        """Server tokens may act on anything; users get their effective capabilities."""
        if self.server:
            return ALL_CAPABILITIES
        return access.capabilities_of(self.user_id, self.role)

    def public(self) -> dict[str, str | None]:
        return {"id": self.user_id, "name": self.name, "image": self.image}

    def to_dict(self) -> dict[str, str | int | bool | None]:
        """Every field, token ones included, for another process to act as this identity.

        `podium serve --workers N` relays `sfu.*` frames to the media worker, which
        re-reads capabilities with the identity (a token's role counts).
        """
        return {
            "user_id": self.user_id,
            "name": self.name,
            "image": self.image,
            "role": self.role,
            "server": self.server,
            "token_id": self.token_id,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Identity:
        """The identity `to_dict` gave; `ValueError` when a field has the wrong type."""
        user_id, expires_at = data.get("user_id"), data.get("expires_at")
        texts = {key: data.get(key) for key in ("name", "image", "role", "token_id")}
        if not isinstance(user_id, str) or not isinstance(data.get("server"), bool):
            raise ValueError("an identity needs a user_id string and a server flag")
        if any(value is not None and not isinstance(value, str) for value in texts.values()):
            raise ValueError("identity names, image, role and token id are strings or null")
        if expires_at is not None and (
            not isinstance(expires_at, int) or isinstance(expires_at, bool)
        ):
            raise ValueError("an identity's expires_at is whole seconds or null")
        return cls(
            user_id=user_id,
            name=texts["name"],
            image=texts["image"],
            role=texts["role"],
            server=bool(data["server"]),
            token_id=texts["token_id"],
            expires_at=expires_at,
        )
