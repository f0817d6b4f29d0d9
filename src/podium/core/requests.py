"""The permission-request state machine: `pending → accepted | rejected | cancelled | expired`.

Pure decisions over plain data. The service reads the requester's open and
recently rejected requests from the store, asks `decide_request`, and writes
what it returns; `resolve` is the only way a request leaves `pending`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from podium.core.call_types import CallType
from podium.core.capabilities import Capabilities, sorted_names
from podium.core.errors import (
    CapabilityHeld,
    NotRequestable,
    PermissionDenied,
    RequestAlreadyResolved,
    RequestCooldown,
    ValidationFailed,
)


class RequestState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Resolution(StrEnum):
    """What can happen to a pending request, and the state each one leads to."""

    ACCEPT = "accept"
    REJECT = "reject"
    CANCEL = "cancel"
    EXPIRE = "expire"

    @property
    def final_state(self) -> RequestState:
        return _FINAL_STATE[self]


_FINAL_STATE = {
    Resolution.ACCEPT: RequestState.ACCEPTED,
    Resolution.REJECT: RequestState.REJECTED,
    Resolution.CANCEL: RequestState.CANCELLED,
    Resolution.EXPIRE: RequestState.EXPIRED,
}


@dataclass(frozen=True)
class PermissionRequest:
    id: str
    call_cid: str
    user_id: str
    permissions: Capabilities
    state: RequestState
    created_at: datetime
    expires_at: datetime
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    reason: str | None = None

    @property
    def is_pending(self) -> bool:
        return self.state is RequestState.PENDING

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "call_cid": self.call_cid,
            "user_id": self.user_id,
            "permissions": sorted_names(self.permissions),
            "state": self.state.value,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }
        if self.state is not RequestState.PENDING:
            data["resolved_by"] = self.resolved_by
            data["resolved_at"] = self.resolved_at.isoformat() if self.resolved_at else None
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class ExistingRequest:
    """Asking again for what is already pending returns the pending request."""

    request: PermissionRequest


@dataclass(frozen=True)
class NewRequest:
    """A new pending request should be stored for these capabilities."""

    permissions: Capabilities
    expires_at: datetime


Decision = ExistingRequest | NewRequest


def decide_request(
    *,
    call_type: CallType,
    asked: Capabilities,
    held: Capabilities,
    may_request: bool,
    pending: Sequence[PermissionRequest],
    rejected: Sequence[PermissionRequest],
    now: datetime,
) -> Decision:
    """Decide what asking for `asked` does.

    `held` is the requester's own capabilities, `may_request` whether it is a
    member or joined participant, `pending` its pending requests in this call
    and `rejected` its rejected ones (any age; only those within the cooldown
    matter). Raises the domain error that applies, checked in this order:
    empty, not a member/participant, not requestable, already held, cooldown.
    """
    if not asked:
        raise ValidationFailed("permissions must name at least one capability")
    if not may_request:
        raise PermissionDenied(
            "only members and joined participants may request permissions",
            {"required": "member_or_participant"},
        )
    not_requestable = asked - call_type.requestable
    if not_requestable:
        raise NotRequestable(
            f"not requestable in call type {call_type.name}: "
            + ", ".join(sorted_names(not_requestable)),
            {"permissions": sorted_names(not_requestable)},
        )
    already = asked & held
    if already:
        raise CapabilityHeld(
            "already held: " + ", ".join(sorted_names(already)),
            {"permissions": sorted_names(already)},
        )
    live = [r for r in pending if r.is_pending and not is_expired(r, now)]
    covered = frozenset().union(*(r.permissions for r in live)) if live else frozenset()
    uncovered = asked - covered
    if not uncovered:
        return ExistingRequest(next(r for r in live if r.permissions & asked))
    wait = cooldown_remaining(rejected, uncovered, call_type.request_cooldown_s, now)
    if wait > 0:
        raise RequestCooldown(
            f"request rejected recently; try again in {wait} s",
            {"retry_after_s": wait, "permissions": sorted_names(uncovered)},
        )
    return NewRequest(uncovered, now + timedelta(seconds=call_type.request_ttl_s))


def cooldown_remaining(
    rejected: Iterable[PermissionRequest],
    asked: Capabilities,
    cooldown_s: int,
    now: datetime,
) -> int:
    """Whole seconds until `asked` may be requested again (0 when it may now)."""
    remaining = 0.0
    for req in rejected:
        if req.state is not RequestState.REJECTED or req.resolved_at is None:
            continue
        if not req.permissions & asked:
            continue
        left = (req.resolved_at + timedelta(seconds=cooldown_s) - now).total_seconds()
        remaining = max(remaining, left)
    return math.ceil(remaining) if remaining > 0 else 0


def is_expired(request: PermissionRequest, now: datetime) -> bool:
    return request.is_pending and now >= request.expires_at


def resolve(
    request: PermissionRequest,
    resolution: Resolution,
    *,
    by: str | None,
    now: datetime,
    reason: str | None = None,
) -> PermissionRequest:
    """Move a pending request to its final state; a resolved one cannot move again.

    A pending request past its expiry can only expire: answering it late is
    `request_already_resolved` just as if the expiry had been written first.
    """
    if not request.is_pending:
        raise RequestAlreadyResolved(
            f"request {request.id} is already {request.state.value}",
            {"state": request.state.value, "resolved_by": request.resolved_by},
        )
    if resolution is not Resolution.EXPIRE and is_expired(request, now):
        raise RequestAlreadyResolved(
            f"request {request.id} has expired", {"state": RequestState.EXPIRED.value}
        )
    return replace(
        request,
        state=resolution.final_state,
        resolved_by=by,
        resolved_at=now,
        reason=reason,
    )


def satisfied_requests(
    pending: Iterable[PermissionRequest], held: Capabilities
) -> list[PermissionRequest]:
    """Pending requests whose every capability is now held some other way.

    These are resolved as `accepted` (a direct grant or a role change made
    the request moot), so no one is left awaiting what they already have.
    """
    return [r for r in pending if r.is_pending and r.permissions <= held]
