"""Request-scoped dependencies: the services of this app and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from podium.config import Settings
from podium.core.errors import InvalidToken
from podium.services.calls import CallsService
from podium.services.delivery import EventHub
from podium.services.identity import Identity
from podium.services.media import MediaService
from podium.services.moderation import ModerationService
from podium.services.permissions import PermissionsService
from podium.services.revocations import Revocations
from podium.tokens import verify


@dataclass
class Services:
    settings: Settings
    calls: CallsService
    permissions: PermissionsService
    moderation: ModerationService
    hub: EventHub
    media: MediaService
    revocations: Revocations


async def services(request: Request) -> Services:
    # async on purpose: FastAPI runs plain `def` dependencies in a thread pool.
    found: Services = request.app.state.services
    return found


_bearer = HTTPBearer(auto_error=False, description="A Podium JWT (HS256)")


async def identity(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Identity:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidToken("missing bearer token: send 'Authorization: Bearer <JWT>'")
    found: Services = request.app.state.services
    who = verify(found.settings.secret, credentials.credentials)
    found.revocations.check(who)
    return who


Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Identity, Depends(identity)]
