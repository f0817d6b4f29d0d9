"""Revoked tokens: recorded in the store (shared by every node), checked from memory.

Every request's token is checked against an in-memory set, so revocation
costs nothing per request. Each node reads the revocations recorded since its
last read every `interval_s` (1 s), so a token revoked through any node, or
with `podium token --revoke`, is refused everywhere within about a second,
and the WebSockets it opened are closed (4001 `token_revoked`). Revocations
are kept until the token would have expired anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from podium.core.errors import InvalidToken, PermissionDenied, TokenRevoked, ValidationFailed
from podium.services.context import Clock, utcnow
from podium.services.identity import Identity
from podium.services.periodic import run_every
from podium.store.base import Store
from podium.store.records import RevokedToken
from podium.tokens import token_info

#: Rows are re-read this far back, so one committed late (after a later one was read) is seen.
OVERLAP = timedelta(seconds=10)
#: How often a node deletes revocations of expired tokens.
PRUNE_EVERY_S = 60.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def record_revocation(store: Store, revoked: RevokedToken) -> None:
    async with store.write() as tx:
        await tx.revoke_token(revoked)


def revocation_of(
    secret: str, token: str, *, by: Identity | None, now: datetime
) -> RevokedToken | None:
    """The revocation of `token`, kept until it expires; None once it has expired.

    `by` None is the server's operator (the CLI); a user may revoke only their
    own tokens, a server token any.
    """
    try:
        info = token_info(secret, token)
    except InvalidToken as exc:
        raise ValidationFailed("not a token of this server", {"token": exc.message}) from exc
    if by is not None and not by.server and (info.server or info.user_id != by.user_id):
        raise PermissionDenied(
            "a user token may revoke only tokens of the same user", {"server": True}
        )
    expires_at = datetime.fromtimestamp(info.expires_at, UTC)
    if expires_at <= now:
        return None
    return RevokedToken(info.token_id, expires_at, now, "operator" if by is None else by.user_id)


def revocation_by_id(token_id: str, *, by: Identity, max_ttl_s: int, now: datetime) -> RevokedToken:
    """The revocation of a token known only by its `jti` (server tokens only).

    Its expiry is unknown, so the record is kept for the longest lifetime a
    token may be minted with (`Limits.token_ttl_s`).
    """
    if not by.server:
        raise PermissionDenied("only server tokens may revoke by jti", {"server": True})
    return RevokedToken(token_id, now + timedelta(seconds=max_ttl_s), now, by.user_id)


class Revocations:
    def __init__(
        self,
        store: Store,
        *,
        on_revoked: Callable[[frozenset[str]], None],
        clock: Clock = utcnow,
        interval_s: float = 1.0,
    ) -> None:
        self.store = store
        self.on_revoked = on_revoked
        self.clock = clock
        self.interval_s = interval_s
        #: Revoked token id → when the token expires.
        self._revoked: dict[str, datetime] = {}
        self._read_up_to = _EPOCH
        self._pruned_at = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(
            run_every(self.interval_s, self.step, "reading revoked tokens"),
            name="podium-revocations",
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def check(self, identity: Identity) -> None:
        """`token_revoked` when the token that proved `identity` was revoked."""
        expires = self._revoked.get(identity.token_id or "")
        if expires is not None and expires > self.clock():
            raise TokenRevoked("this token has been revoked")

    async def revoke(self, revoked: RevokedToken) -> None:
        """Record a revocation and apply it here at once (other nodes within `interval_s`)."""
        await record_revocation(self.store, revoked)
        self._learn([revoked])

    async def refresh(self) -> None:
        """Learn the revocations recorded (on any node) since the last refresh."""
        async with self.store.read() as tx:
            found = await tx.revocations_since(self._read_up_to - OVERLAP)
        if found:
            self._read_up_to = max(self._read_up_to, found[-1].revoked_at)
        self._learn(found)

    def _learn(self, found: list[RevokedToken]) -> None:
        now = self.clock()
        new = frozenset(
            r.token_id for r in found if r.token_id not in self._revoked and r.expires_at > now
        )
        for r in found:
            if r.expires_at > now:
                self._revoked[r.token_id] = r.expires_at
        if new:
            self.on_revoked(new)

    async def _prune(self) -> None:
        now = self.clock()
        for token_id in [t for t, expires in self._revoked.items() if expires <= now]:
            del self._revoked[token_id]
        async with self.store.write() as tx:
            await tx.delete_expired_revocations(now)

    async def step(self) -> None:
        """Refresh, and now and then forget revocations of expired tokens."""
        await self.refresh()
        now = time.monotonic()
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            await self._prune()
