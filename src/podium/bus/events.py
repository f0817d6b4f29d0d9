"""Call events: the envelope, who may receive it, and its wire forms.

An event is written to the call's durable log (allocating its `seq`) in the
same transaction as the change it reports, then published on the bus. The
WebSocket hub on every node decides per connection whether to deliver it,
from its `Audience`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from podium.core.capabilities import Capability


class AudienceKind(StrEnum):
    WATCHERS = "watchers"
    """Every connection watching the call whose user holds `read-call`."""
    CAPABILITY = "capability"
    """Watchers holding `capability`, plus the listed users."""
    USERS = "users"
    """Only the listed users, on all their connections."""
    OPTED_IN = "opted_in"
    """Watchers that asked for audience joins and leaves and hold `capability`, plus the
    listed users' watching connections (an audience participant's own join, say)."""


@dataclass(frozen=True)
class Audience:
    kind: AudienceKind
    capability: Capability | None = None
    user_ids: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def watchers(cls) -> Audience:
        return cls(AudienceKind.WATCHERS)

    @classmethod
    def holders(cls, capability: Capability, *also: str) -> Audience:
        return cls(AudienceKind.CAPABILITY, capability, frozenset(also))

    @classmethod
    def opted_in(cls, capability: Capability, *also: str) -> Audience:
        return cls(AudienceKind.OPTED_IN, capability, frozenset(also))

    @classmethod
    def users(cls, *user_ids: str) -> Audience:
        return cls(AudienceKind.USERS, None, frozenset(user_ids))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "capability": self.capability.value if self.capability else None,
            "user_ids": sorted(self.user_ids),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Audience:
        cap = data.get("capability")
        return cls(
            AudienceKind(data["kind"]),
            Capability(cap) if cap else None,
            frozenset(data.get("user_ids", ())),
        )


@dataclass(frozen=True)
class EventDraft:
    """An event before the log gives it its `seq`."""

    type: str
    payload: dict[str, Any]
    audience: Audience
    refresh: bool = False


@dataclass(frozen=True)
class CallEvent:
    """One entry of a call's event log.

    `refresh` marks events after which recipients' capabilities may differ
    (grants, revokes, role changes, phase changes, blocks): hubs reload their
    view of the call before deciding who receives later events.
    """

    call_cid: str
    seq: int
    type: str
    created_at: datetime
    payload: dict[str, Any]
    audience: Audience
    refresh: bool = False

    def frame(self) -> dict[str, Any]:
        """The JSON object sent to clients."""
        return {
            "type": self.type,
            "call_cid": self.call_cid,
            "seq": self.seq,
            "created_at": self.created_at.isoformat(),
            **self.payload,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_cid": self.call_cid,
            "seq": self.seq,
            "type": self.type,
            "created_at": self.created_at.isoformat(),
            "payload": self.payload,
            "audience": self.audience.to_dict(),
            "refresh": self.refresh,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallEvent:
        return cls(
            call_cid=data["call_cid"],
            seq=int(data["seq"]),
            type=data["type"],
            created_at=datetime.fromisoformat(data["created_at"]),
            payload=data["payload"],
            audience=Audience.from_dict(data["audience"]),
            refresh=bool(data.get("refresh", False)),
        )
