"""What a client needs to reach the SFU: ICE servers, with short-lived TURN credentials.

A self-hosted TURN server (coturn with `use-auth-secret`) shares a secret with
Podium instead of a user list. Each join then gets its own credentials that
expire (the "TURN REST API" scheme): the username is `<expiry>:<user_id>` and
the credential is base64(HMAC-SHA1(secret, username)), which coturn checks
without asking Podium.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from aiortc import RTCIceServer

from podium.config import IceServer


def turn_credentials(secret: str, user_id: str, expires_at: int) -> tuple[str, str]:
    """The (username, credential) pair coturn's `use-auth-secret` accepts until `expires_at`."""
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def client_ice_servers(
    servers: tuple[IceServer, ...],
    *,
    user_id: str,
    now: float,
    turn_secret: str | None,
    turn_ttl_s: int,
) -> list[dict[str, Any]]:
    """The `ice_servers` of a join response, in `RTCIceServer` form (`urls` always a list)."""
    out: list[dict[str, Any]] = []
    for server in servers:
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.username is not None:
            entry["username"], entry["credential"] = server.username, server.credential
        elif server.is_turn and turn_secret is not None:
            expires_at = int(now) + turn_ttl_s
            entry["username"], entry["credential"] = turn_credentials(
                turn_secret, user_id, expires_at
            )
        out.append(entry)
    return out


def sfu_ice_servers(servers: tuple[IceServer, ...]) -> list[RTCIceServer]:
    """ICE servers for the SFU's own peer connections: STUN only (it never needs a relay).

    Empty unless configured, so the server never contacts a STUN server by default.
    """
    urls = [u for s in servers for u in s.urls if u.startswith(("stun:", "stuns:"))]
    return [RTCIceServer(urls=urls)] if urls else []
