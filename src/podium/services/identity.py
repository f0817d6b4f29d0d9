"""Who is acting: a verified token's claims, independent of how it arrived."""

from __future__ import annotations

from dataclasses import dataclass

from podium.core.capabilities import ALL_CAPABILITIES, Capabilities
from podium.core.policy import CallAccess

SERVER_USER_ID = "server"


@dataclass(frozen=True)
class Identity:
    user_id: str
    name: str | None = None
    image: str | None = None
    role: str | None = None
    server: bool = False

    @classmethod
    def server_identity(cls, user_id: str | None = None) -> Identity:
        return cls(user_id=user_id or SERVER_USER_ID, name="server", server=True)

    def capabilities_in(self, access: CallAccess) -> Capabilities:
        """Server tokens may act on anything; users get their effective capabilities."""
        if self.server:
            return ALL_CAPABILITIES
        return access.capabilities_of(self.user_id, self.role)

    def public(self) -> dict[str, str | None]:
        return {"id": self.user_id, "name": self.name, "image": self.image}
