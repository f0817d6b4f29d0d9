"""Call types: which role holds which capability, what may be requested, and timings.

The four built-in types are defined here once; the store seeds them and the
API may replace them (`PUT /v1/call-types/{type}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from podium.core import roles
from podium.core.capabilities import (
    ALL_CAPABILITIES,
    MEDIA_CAPABILITIES,
    Capabilities,
    Capability,
    parse_capabilities,
    sorted_names,
)
from podium.core.errors import ValidationFailed
from podium.protocol.ids import ID_PATTERN

DEFAULT_REQUEST_TTL_S: Final = 300
DEFAULT_REQUEST_COOLDOWN_S: Final = 30
MAX_TTL_S: Final = 7 * 24 * 3600

_EVERY_ROLE: Capabilities = frozenset({Capability.READ_CALL, Capability.CREATE_CALL})


@dataclass(frozen=True)
class CallType:
    """A call type; `grants` maps role name to the capabilities that role holds."""

    name: str
    grants: Mapping[str, Capabilities]
    requestable: Capabilities = frozenset()
    backstage: bool = False
    request_ttl_s: int = DEFAULT_REQUEST_TTL_S
    request_cooldown_s: int = DEFAULT_REQUEST_COOLDOWN_S
    builtin: bool = field(default=False, compare=False)

    def role_capabilities(self, role: str) -> Capabilities:
        """What `role` holds; a role the type does not define holds what `user` holds.

        The spec gives "every role" of a built-in type `read-call` and
        `create-call` (and every role of `development` everything), and being
        made a member must never leave a user with less than a non-member.
        """
        if role in self.grants:
            return self.grants[role]
        return self.grants.get(roles.USER, frozenset())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "grants": {role: sorted_names(caps) for role, caps in sorted(self.grants.items())},
            "requestable": sorted_names(self.requestable),
            "backstage": self.backstage,
            "request_ttl_s": self.request_ttl_s,
            "request_cooldown_s": self.request_cooldown_s,
        }

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> CallType:
        """Build a call type from its wire form, validating every field."""
        # fullmatch, not match: `$` also matches before a trailing newline.
        if not ID_PATTERN.fullmatch(name):
            raise ValidationFailed("call type name must be 1-64 chars of [A-Za-z0-9_-]")
        raw_grants = data.get("grants", {})
        if not isinstance(raw_grants, Mapping):
            raise ValidationFailed("grants must be an object of role -> [capability]")
        grants: dict[str, Capabilities] = {}
        for role, caps in raw_grants.items():
            if not isinstance(role, str) or not roles.ROLE_PATTERN.fullmatch(role):
                raise ValidationFailed(f"invalid role name: {role!r}", {"role": str(role)})
            if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
                raise ValidationFailed(f"grants[{role}] must be a list of capability names")
            grants[role] = parse_capabilities(caps)
        requestable = data.get("requestable", [])
        if not isinstance(requestable, list) or not all(isinstance(c, str) for c in requestable):
            raise ValidationFailed("requestable must be a list of capability names")
        ttl = data.get("request_ttl_s", DEFAULT_REQUEST_TTL_S)
        cooldown = data.get("request_cooldown_s", DEFAULT_REQUEST_COOLDOWN_S)
        for label, value in (("request_ttl_s", ttl), ("request_cooldown_s", cooldown)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValidationFailed(f"{label} must be an integer")
            if not 0 <= value <= MAX_TTL_S:
                raise ValidationFailed(f"{label} must be between 0 and {MAX_TTL_S}")
        if ttl < 1:
            raise ValidationFailed("request_ttl_s must be at least 1")
        backstage = data.get("backstage", False)
        if not isinstance(backstage, bool):
            raise ValidationFailed("backstage must be a boolean")
        return cls(
            name=name,
            grants=grants,
            requestable=parse_capabilities(requestable),
            backstage=backstage,
            request_ttl_s=ttl,
            request_cooldown_s=cooldown,
        )


def _grants(**by_role: Capabilities) -> dict[str, Capabilities]:
    return {role: caps | _EVERY_ROLE for role, caps in by_role.items()}


_JOIN: Capabilities = frozenset({Capability.JOIN_CALL})

BUILTIN_CALL_TYPES: Final[Mapping[str, CallType]] = {
    ct.name: ct
    for ct in (
        CallType(
            name="default",
            grants=_grants(
                user=_JOIN | MEDIA_CAPABILITIES,
                host=ALL_CAPABILITIES,
                admin=ALL_CAPABILITIES,
            ),
            builtin=True,
        ),
        CallType(
            name="audio_room",
            grants=_grants(
                user=_JOIN,
                speaker=_JOIN | {Capability.SEND_AUDIO},
                host=ALL_CAPABILITIES,
                admin=ALL_CAPABILITIES,
            ),
            requestable=MEDIA_CAPABILITIES,
            backstage=True,
            builtin=True,
        ),
        CallType(
            name="livestream",
            grants=_grants(user=_JOIN, host=ALL_CAPABILITIES, admin=ALL_CAPABILITIES),
            backstage=True,
            builtin=True,
        ),
        CallType(
            name="development",
            grants=_grants(user=ALL_CAPABILITIES, host=ALL_CAPABILITIES, admin=ALL_CAPABILITIES),
            builtin=True,
        ),
    )
}
