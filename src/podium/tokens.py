"""JWT (HS256) tokens: minting for the CLI and dev mode, verification for the API."""

from __future__ import annotations

import re
import time
from typing import Any

import jwt

from podium.core.errors import InvalidToken, TokenExpired
from podium.services.identity import Identity

ALGORITHM = "HS256"
USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_CLAIM_LENGTH = 256


def mint_user_token(
    secret: str,
    user_id: str,
    *,
    name: str | None = None,
    role: str | None = None,
    image: str | None = None,
    ttl_s: int = 24 * 3600,
) -> str:
    if not USER_ID_PATTERN.fullmatch(user_id):
        raise ValueError("user id must be 1-64 chars of [A-Za-z0-9_-]")
    claims: dict[str, Any] = {"sub": user_id, "iat": int(time.time())}
    claims["exp"] = claims["iat"] + ttl_s
    for key, value in (("name", name), ("role", role), ("image", image)):
        if value is not None:
            claims[key] = value
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def mint_server_token(secret: str, *, ttl_s: int = 3600) -> str:
    now = int(time.time())
    return jwt.encode({"server": True, "iat": now, "exp": now + ttl_s}, secret, ALGORITHM)


def verify(secret: str, token: str) -> Identity:
    """The identity a token proves; `token_expired` or `invalid_token` otherwise."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired("token has expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"invalid token: {exc}") from exc
    if claims.get("server") is True:
        sub = claims.get("sub")
        return Identity.server_identity(sub if isinstance(sub, str) else None)
    sub = claims.get("sub")
    if not isinstance(sub, str) or not USER_ID_PATTERN.fullmatch(sub):
        raise InvalidToken("token subject must be a user id of 1-64 chars of [A-Za-z0-9_-]")
    optional: dict[str, str | None] = {}
    for key in ("name", "image", "role"):
        value = claims.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_CLAIM_LENGTH):
            raise InvalidToken(f"token claim {key} must be a string of at most 256 chars")
        optional[key] = value
    return Identity(
        user_id=sub, name=optional["name"], image=optional["image"], role=optional["role"]
    )
