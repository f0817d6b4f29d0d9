"""Request bodies and path parameters, validated by Pydantic (422 `validation_error`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from podium.core.capabilities import Capability
from podium.core.json_values import MAX_CUSTOM_BYTES, encoded_size
from podium.protocol.ids import ID_REGEX
from podium.protocol.media import MuteKind

ROLE_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"

Id = Annotated[str, Field(pattern=ID_REGEX, min_length=1, max_length=64)]
Role = Annotated[str, Field(pattern=ROLE_PATTERN, min_length=1, max_length=32)]
CallTypePath = Annotated[str, Path(pattern=ID_REGEX, min_length=1, max_length=64)]
CallIdPath = Annotated[str, Path(pattern=ID_REGEX, min_length=1, max_length=64)]
RequestIdPath = Annotated[str, Path(pattern=ID_REGEX, min_length=1, max_length=64)]
Capabilities = Annotated[list[Capability], Field(max_length=len(Capability) * 2)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberIn(Body):
    user_id: Id
    role: Role


class GetOrCreateIn(Body):
    members: Annotated[list[MemberIn], Field(max_length=100)] = []
    custom: dict[str, Any] = {}

    @field_validator("custom")
    @classmethod
    def _custom_fits(cls, custom: dict[str, Any]) -> dict[str, Any]:
        size = encoded_size(custom)
        if size > MAX_CUSTOM_BYTES:
            raise ValueError(f"custom is {size} bytes as JSON; at most {MAX_CUSTOM_BYTES}")
        return custom


class MembersIn(Body):
    update: Annotated[list[MemberIn], Field(max_length=100)] = []
    remove: Annotated[list[Id], Field(max_length=100)] = []


class PermissionsIn(Body):
    permissions: Annotated[list[Capability], Field(min_length=1, max_length=len(Capability))]


class RejectIn(Body):
    reason: Annotated[str | None, Field(max_length=500)] = None


class UserPermissionsIn(Body):
    user_id: Id
    grant: Capabilities = []
    revoke: Capabilities = []


class MuteIn(Body):
    """Kinds not given default to false; giving none mutes every kind."""

    user_ids: Annotated[list[Id], Field(min_length=1, max_length=100)]
    audio: bool = False
    video: bool = False
    screenshare: bool = False

    def kinds(self) -> list[MuteKind]:
        chosen = [
            kind
            for kind, on in (
                (MuteKind.AUDIO, self.audio),
                (MuteKind.VIDEO, self.video),
                (MuteKind.SCREENSHARE, self.screenshare),
            )
            if on
        ]
        return chosen or list(MuteKind)


class UserIn(Body):
    user_id: Id


class CallTypeIn(Body):
    grants: dict[Role, Capabilities]
    requestable: Capabilities = []
    backstage: bool = False
    request_ttl_s: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 300
    request_cooldown_s: Annotated[int, Field(ge=0, le=7 * 24 * 3600)] = 30


class RevokeTokenIn(Body):
    """Exactly one of `token` (the JWT itself) or `jti` (its id; server tokens only)."""

    token: Annotated[str | None, Field(min_length=1, max_length=8192)] = None
    jti: Annotated[str | None, Field(min_length=1, max_length=128)] = None

    @model_validator(mode="after")
    def _one_of(self) -> RevokeTokenIn:
        if (self.token is None) == (self.jti is None):
            raise ValueError("give exactly one of 'token' or 'jti'")
        return self


class DevTokenIn(Body):
    user_id: Id
    name: Annotated[str | None, Field(max_length=256)] = None
    role: Role | None = None
