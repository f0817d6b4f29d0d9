"""JWT (HS256) tokens: minting for the CLI and dev mode, verification for the API.

Every token minted here carries a random `jti`, the id a revocation names.
Tokens without one (minted by other tools) are named by a hash of the whole
token instead, so they can be revoked too (by the token itself).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from podium.core.errors import InvalidToken, TokenExpired
from podium.protocol.ids import ID_PATTERN
from podium.services.identity import Identity

ALGORITHM = "HS256"
MAX_CLAIM_LENGTH = 256
#: A `jti` longer than this is not ours: the token is named by its hash instead.
MAX_JTI_LENGTH = 128
DEFAULT_USER_TTL_S = 24 * 3600
DEFAULT_SERVER_TTL_S = 3600


def _new_jti() -> str:
    return secrets.token_hex(16)


def mint_user_token(
    secret: str,
    user_id: str,
    *,
    name: str | None = None,
    role: str | None = None,
    image: str | None = None,
    ttl_s: int = DEFAULT_USER_TTL_S,
) -> str:
    if not ID_PATTERN.fullmatch(user_id):
        raise ValueError("user id must be 1-64 chars of [A-Za-z0-9_-]")
    claims: dict[str, Any] = {"sub": user_id, "iat": int(time.time()), "jti": _new_jti()}
    claims["exp"] = claims["iat"] + ttl_s
    for key, value in (("name", name), ("role", role), ("image", image)):
        if value is not None:
            claims[key] = value
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def mint_server_token(secret: str, *, ttl_s: int = DEFAULT_SERVER_TTL_S) -> str:
    now = int(time.time())
    claims = {"server": True, "iat": now, "exp": now + ttl_s, "jti": _new_jti()}
    return jwt.encode(claims, secret, ALGORITHM)


def token_id(claims: dict[str, Any], token: str) -> str:
    """The id revocations use: the `jti`, or a hash of the token when it has none."""
    jti = claims.get("jti")
    if isinstance(jti, str) and 0 < len(jti) <= MAX_JTI_LENGTH:
        return jti
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """What revoking a token needs to know of it, read whether it has expired or not."""

    token_id: str
    expires_at: int
    user_id: str | None
    server: bool


def token_info(secret: str, token: str) -> TokenInfo:
    """A token of this server, expired or not; `invalid_token` when it is not one."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"invalid token: {exc}") from exc
    sub = claims.get("sub")
    return TokenInfo(
        token_id=token_id(claims, token),
        expires_at=int(claims["exp"]),
        user_id=sub if isinstance(sub, str) else None,
        server=claims.get("server") is True,
    )


def verify(secret: str, token: str) -> Identity:
    """The identity a token proves; `token_expired` or `invalid_token` otherwise.

    Whether it was revoked is the caller's to check (`Revocations.check`).
    """
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired("token has expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"invalid token: {exc}") from exc
    tid, expires_at = token_id(claims, token), int(claims["exp"])
    if claims.get("server") is True:
        sub = claims.get("sub")
        return Identity.server_identity(
            sub if isinstance(sub, str) else None, token_id=tid, expires_at=expires_at
        )
    sub = claims.get("sub")
    if not isinstance(sub, str) or not ID_PATTERN.fullmatch(sub):
        raise InvalidToken("token subject must be a user id of 1-64 chars of [A-Za-z0-9_-]")
    optional: dict[str, str | None] = {}
    for key in ("name", "image", "role"):
        value = claims.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_CLAIM_LENGTH):
            raise InvalidToken(f"token claim {key} must be a string of at most 256 chars")
        optional[key] = value
    return Identity(
        user_id=sub,
        name=optional["name"],
        image=optional["image"],
        role=optional["role"],
        token_id=tid,
        expires_at=expires_at,
    )
