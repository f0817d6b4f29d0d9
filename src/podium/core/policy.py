"""Effective capabilities of a user in a call.

`own_capabilities = (grants[call_role] | user_grants) - user_revokes`, then
limited by the call's phase: an ended call allows only `read-call`; a
backstage call removes `join-call` from anyone without `join-backstage`; a
blocked user holds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from podium.core.call_types import CallType
from podium.core.capabilities import Capabilities, Capability
from podium.core.roles import effective_role

_EMPTY: Capabilities = frozenset()


class CallPhase(StrEnum):
    BACKSTAGE = "backstage"
    LIVE = "live"
    ENDED = "ended"


def initial_phase(call_type: CallType) -> CallPhase:
    return CallPhase.BACKSTAGE if call_type.backstage else CallPhase.LIVE


@dataclass(frozen=True)
class MemberGrants:
    """What the store keeps per call member that matters for permissions."""

    role: str
    grants: Capabilities = _EMPTY
    revokes: Capabilities = _EMPTY


def own_capabilities(
    call_type: CallType,
    phase: CallPhase,
    member: MemberGrants | None,
    token_role: str | None = None,
    blocked: bool = False,
) -> Capabilities:
    """The capabilities a user holds in a call right now."""
    if blocked:
        return _EMPTY
    role = effective_role(member.role if member else None, token_role)
    caps = call_type.role_capabilities(role)
    if member is not None:
        caps = (caps | member.grants) - member.revokes
    if phase is CallPhase.ENDED:
        return caps & {Capability.READ_CALL}
    if phase is CallPhase.BACKSTAGE and Capability.JOIN_BACKSTAGE not in caps:
        return caps - {Capability.JOIN_CALL}
    return caps


def with_granted(member: MemberGrants, caps: Capabilities) -> MemberGrants:
    """A grant adds to the user's grants and lifts any revoke of the same capability."""
    return MemberGrants(member.role, member.grants | caps, member.revokes - caps)


def with_revoked(member: MemberGrants, caps: Capabilities) -> MemberGrants:
    """A revoke wins over the role: the capability is gone until granted again."""
    return MemberGrants(member.role, member.grants - caps, member.revokes | caps)


@dataclass(frozen=True)
class CallAccess:
    """Everything needed to compute any user's capabilities in one call.

    The WebSocket hub keeps one per watched call to decide who receives an
    event without a database read per recipient.
    """

    call_type: CallType
    phase: CallPhase
    members: Mapping[str, MemberGrants]
    blocked: frozenset[str]

    def capabilities_of(self, user_id: str, token_role: str | None = None) -> Capabilities:
        return own_capabilities(
            self.call_type,
            self.phase,
            self.members.get(user_id),
            token_role,
            blocked=user_id in self.blocked,
        )
