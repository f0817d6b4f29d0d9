"""JWT tokens: minting and verifying user and server tokens, and every way to be refused."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from podium.core.errors import InvalidToken, TokenExpired
from podium.services.identity import SERVER_USER_ID, Identity
from podium.tokens import MAX_CLAIM_LENGTH, mint_server_token, mint_user_token, verify

SECRET = "token-test-secret-0123456789abcdef0123456789"
OTHER_SECRET = "another-secret-0123456789abcdef0123456789abc"


def _sign(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _future() -> int:
    return int(time.time()) + 600


# round trips


def test_user_token_round_trip() -> None:
    token = mint_user_token(SECRET, "alice", name="Alice", role="admin", image="https://x/a.png")
    assert verify(SECRET, token) == Identity(
        user_id="alice", name="Alice", image="https://x/a.png", role="admin", server=False
    )


def test_user_token_minimal_claims() -> None:
    token = mint_user_token(SECRET, "bob")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert set(claims) == {"sub", "iat", "exp", "jti"}
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert verify(SECRET, token) == Identity(user_id="bob")


def test_ttl_sets_expiry() -> None:
    before = int(time.time())
    claims = jwt.decode(mint_user_token(SECRET, "bob", ttl_s=60), SECRET, algorithms=["HS256"])
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 60


@pytest.mark.parametrize("user_id", ["a", "A-z_0-9", "x" * 64])
def test_valid_user_ids(user_id: str) -> None:
    assert verify(SECRET, mint_user_token(SECRET, user_id)).user_id == user_id


@pytest.mark.parametrize("user_id", ["", "x" * 65, "has space", "dot.ted", "é", "a/b", "a:b"])
def test_mint_refuses_bad_user_ids(user_id: str) -> None:
    with pytest.raises(ValueError, match="user id"):
        mint_user_token(SECRET, user_id)


def test_mint_refuses_a_user_id_with_a_trailing_newline() -> None:
    """`$` alone would also match before a final newline."""
    with pytest.raises(ValueError, match="user id"):
        mint_user_token(SECRET, "alice\n")


def test_server_token_round_trip() -> None:
    token = mint_server_token(SECRET)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["server"] is True
    assert claims["exp"] - claims["iat"] == 3600
    identity = verify(SECRET, token)
    assert identity.server is True
    assert identity.user_id == SERVER_USER_ID == "server"


def test_server_token_may_name_its_actor() -> None:
    identity = verify(SECRET, _sign({"server": True, "sub": "billing", "exp": _future()}))
    assert identity == Identity.server_identity("billing")
    assert identity.server is True


def test_server_claim_must_be_true_itself() -> None:
    """A truthy non-boolean `server` claim is not a server token (and has no subject)."""
    with pytest.raises(InvalidToken):
        verify(SECRET, _sign({"server": "true", "exp": _future()}))
    identity = verify(SECRET, _sign({"server": 1, "sub": "carol", "exp": _future()}))
    assert identity.server is False
    assert identity.user_id == "carol"


# expired


def test_expired_user_token() -> None:
    with pytest.raises(TokenExpired) as caught:
        verify(SECRET, mint_user_token(SECRET, "alice", ttl_s=-10))
    assert caught.value.code == "token_expired"
    assert caught.value.status == 401


def test_expired_server_token() -> None:
    with pytest.raises(TokenExpired):
        verify(SECRET, mint_server_token(SECRET, ttl_s=-10))


# invalid


def _invalid(token: str, secret: str = SECRET) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        verify(secret, token)
    assert caught.value.code == "invalid_token"
    assert caught.value.status == 401
    return caught.value


def test_wrong_secret() -> None:
    _invalid(mint_user_token(OTHER_SECRET, "alice"))
    _invalid(mint_server_token(OTHER_SECRET))


@pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "x" * 2000, "Bearer abc"])
def test_garbage(garbage: str) -> None:
    _invalid(garbage)


def test_tampered_payload() -> None:
    header, _, signature = mint_user_token(SECRET, "alice").split(".")
    forged = _sign({"sub": "mallory", "exp": _future()}, OTHER_SECRET).split(".")[1]
    _invalid(f"{header}.{forged}.{signature}")


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode({"sub": "alice", "exp": _future()}, None, algorithm="none")
    _invalid(unsigned)
    server = jwt.encode({"server": True, "exp": _future()}, None, algorithm="none")
    _invalid(server)


def test_other_hmac_algorithm_is_refused() -> None:
    long_secret = SECRET * 2  # long enough for HS512, so PyJWT does not warn
    token = _sign({"sub": "alice", "exp": _future()}, long_secret, algorithm="HS512")
    _invalid(token, long_secret)


def test_exp_is_required() -> None:
    _invalid(_sign({"sub": "alice"}))
    _invalid(_sign({"server": True}))


def test_not_yet_valid() -> None:
    _invalid(_sign({"sub": "alice", "exp": _future(), "nbf": _future()}))


@pytest.mark.parametrize(
    "sub",
    [None, "", 42, ["alice"], {"id": "alice"}, "x" * 65, "has space", "a.b", "ali:ce", "é"],
    ids=lambda v: repr(v)[:20],
)
def test_bad_subject(sub: object) -> None:
    claims: dict[str, Any] = {"exp": _future()}
    if sub is not None:
        claims["sub"] = sub
    _invalid(_sign(claims))


def test_subject_with_a_trailing_newline_is_refused() -> None:
    _invalid(_sign({"sub": "alice\n", "exp": _future()}))


@pytest.mark.parametrize("claim", ["name", "image", "role"])
def test_optional_claims_must_be_short_strings(claim: str) -> None:
    _invalid(_sign({"sub": "alice", "exp": _future(), claim: 7}))
    _invalid(_sign({"sub": "alice", "exp": _future(), claim: "x" * (MAX_CLAIM_LENGTH + 1)}))
    ok = verify(SECRET, _sign({"sub": "alice", "exp": _future(), claim: "x" * MAX_CLAIM_LENGTH}))
    assert getattr(ok, claim) == "x" * MAX_CLAIM_LENGTH
