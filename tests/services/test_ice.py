"""ICE servers for clients and the SFU, and coturn-compatible TURN credentials."""

from __future__ import annotations

from podium.config import IceServer
from podium.services.ice import client_ice_servers, sfu_ice_servers, turn_credentials

STUN = IceServer(("stun:127.0.0.1:3478",))
TURN = IceServer(("turn:127.0.0.1:3478", "turns:127.0.0.1:5349"))
FIXED = IceServer(("turn:127.0.0.1:3479",), "alice", "pw")


def test_turn_credentials_match_coturns_rest_scheme() -> None:
    # Computed independently with openssl:
    # printf '1700000000:hana' | openssl dgst -sha1 -hmac turn-shared-secret -binary | base64
    assert turn_credentials("turn-shared-secret", "hana", 1_700_000_000) == (
        "1700000000:hana",
        "b2djYlFprMZni4P7WEtmYccq7KY=",
    )


def test_client_servers_get_per_user_expiring_credentials() -> None:
    servers = client_ice_servers(
        (STUN, TURN, FIXED), user_id="hana", now=1_700_000_000.7, turn_secret="s", turn_ttl_s=600
    )
    assert servers[0] == {"urls": ["stun:127.0.0.1:3478"]}
    assert servers[1]["urls"] == ["turn:127.0.0.1:3478", "turns:127.0.0.1:5349"]
    assert servers[1]["username"] == "1700000600:hana"
    assert servers[1]["credential"] == turn_credentials("s", "hana", 1_700_000_600)[1]
    assert servers[2] == {"urls": ["turn:127.0.0.1:3479"], "username": "alice", "credential": "pw"}


def test_no_servers_by_default() -> None:
    assert client_ice_servers((), user_id="u", now=0, turn_secret=None, turn_ttl_s=60) == []
    assert sfu_ice_servers(()) == []


def test_the_sfu_uses_stun_only() -> None:
    [server] = sfu_ice_servers((STUN, TURN, FIXED))
    assert server.urls == ["stun:127.0.0.1:3478"]
    assert sfu_ice_servers((TURN, FIXED)) == []
