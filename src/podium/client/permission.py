"""`PermissionHandle`: one capability of one call, as a UI button needs it (spec §5).

Every property is computed from the call's current `CallState` when read, so
a handle stays right as events arrive; keep it as long as you like.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from podium.client.state import check_capability

if TYPE_CHECKING:
    from podium.client.call import Call


class PermissionHandle:
    """`call.permission("send-audio")`: held? requestable? awaiting an answer? ask."""

    def __init__(self, call: Call, capability: str) -> None:
        self.call = call
        self.capability = check_capability(capability)

    def __repr__(self) -> str:
        return (
            f"PermissionHandle({self.call.cid!r}, {self.capability!r}, "
            f"has={self.has_permission}, can_request={self.can_request_permission}, "
            f"awaiting={self.is_awaiting_permission})"
        )

    @property
    def has_permission(self) -> bool:
        """You hold the capability in this call now."""
        return self.capability in self.call.state.own_capabilities

    @property
    def pending_request(self) -> dict[str, Any] | None:
        """Your pending request that asks for this capability, if there is one."""
        user_id = self.call.user_id
        if user_id is None:
            return None
        for request in self.call.state.pending_of(user_id):
            if self.capability in (request.get("permissions") or ()):
                return request
        return None

    @property
    def is_awaiting_permission(self) -> bool:
        """You asked for the capability and no one has answered yet."""
        return self.pending_request is not None

    @property
    def can_request_permission(self) -> bool:
        """Requestable in the call type, not held, not awaiting, and you are in the call.

        "In the call" means a member or a joined participant (spec §1).
        """
        state = self.call.state
        user_id = self.call.user_id
        return (
            user_id is not None
            and self.capability in state.requestable
            and not self.has_permission
            and not self.is_awaiting_permission
            and state.is_member_or_participant(user_id)
        )

    async def request(self) -> dict[str, Any]:
        """Ask for the capability; returns the (new or already pending) request."""
        return await self.call.request_permissions([self.capability])
