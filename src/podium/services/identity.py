"""Who is acting: a verified token's claims, independent of how it arrived."""

from __future__ import annotations

from dataclasses import dataclass, field

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
