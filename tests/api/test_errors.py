"""Errors over real HTTP: every error has the spec §2 body shape and the right status/code."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from podium.tokens import mint_user_token
from tests.api.helpers import (
    ClientFactory,
    Room,
    ask,
    assert_error_shape,
    create,
    expect_error,
    live_audio_room,
    ok,
    uid,
)
from tests.server import SECRET, ServerProcess

LIMIT = 64 * 1024


PAD = 8 * 1024


def padded_body(size: int) -> bytes:
    """A valid get-or-create JSON body of exactly `size` bytes (custom `pad`, then spaces)."""
    body = json.dumps({"custom": {"pad": "x" * PAD}}).encode()
    body += b" " * (size - len(body))
    assert len(body) == size
    return body


# 401


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer garbage",
        "Bearer a.b.c",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "bearer-ish xyz",
    ],
)
async def test_invalid_token(server: ServerProcess, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for method, path in (
            ("GET", "/v1/call-types"),
            ("GET", "/v1/calls"),
            ("POST", f"/v1/calls/default/{uid('c')}"),
        ):
            response = await client.request(method, path, headers=headers)
            expect_error(response, 401, "invalid_token")


async def test_non_bearer_scheme_with_a_valid_token(server: ServerProcess) -> None:
    token = server.token(uid("u"))
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for scheme in ("Basic", "Token", "JWT"):
            response = await client.get(
                "/v1/call-types", headers={"Authorization": f"{scheme} {token}"}
            )
            expect_error(response, 401, "invalid_token")
        # the scheme is case-insensitive (RFC 7235)
        ok(await client.get("/v1/call-types", headers={"Authorization": f"bearer {token}"}))


def forged_tokens() -> dict[str, str]:
    with warnings.catch_warnings():
        # PyJWT warns about the short HS512 key: forging with it is the point.
        warnings.simplefilter("ignore")
        return _forged_tokens()


def _forged_tokens() -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": "mallory", "iat": now, "exp": now + 3600}
    return {
        "wrong secret": jwt.encode(
            claims, "not-the-secret-0123456789abcdef0123", algorithm="HS256"
        ),
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "HS512": jwt.encode(claims, SECRET, algorithm="HS512"),
        "no exp": jwt.encode({"sub": "mallory", "iat": now}, SECRET, algorithm="HS256"),
        "no sub": jwt.encode({"iat": now, "exp": now + 3600}, SECRET, algorithm="HS256"),
        "bad sub": jwt.encode({"sub": "mal lory", "exp": now + 3600}, SECRET, algorithm="HS256"),
        "sub with newline": jwt.encode({"sub": "mallory\n", "exp": now + 3600}, SECRET),
        "long sub": jwt.encode({"sub": "m" * 65, "exp": now + 3600}, SECRET, algorithm="HS256"),
        "int sub": jwt.encode({"sub": 7, "exp": now + 3600}, SECRET, algorithm="HS256"),
        "bad role": jwt.encode({"sub": "m", "role": ["admin"], "exp": now + 3600}, SECRET),
        "long name": jwt.encode({"sub": "m", "name": "n" * 300, "exp": now + 3600}, SECRET),
        "server not true": jwt.encode({"server": "yes", "exp": now + 3600}, SECRET),
        "tampered": _tampered(claims),
        "server token, wrong secret": jwt.encode(
            {"server": True, "exp": now + 3600}, "another-secret-0123456789abcdef01234", "HS256"
        ),
    }


def _tampered(claims: dict[str, object]) -> str:
    header, _, signature = jwt.encode(claims, SECRET, algorithm="HS256").split(".")
    payload = jwt.utils.base64url_encode(json.dumps({**claims, "role": "admin"}).encode()).decode()
    return f"{header}.{payload}.{signature}"


@pytest.mark.parametrize("kind", sorted(forged_tokens()))
async def test_forged_tokens_are_invalid(server: ServerProcess, kind: str) -> None:
    token = forged_tokens()[kind]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.get("/v1/call-types", headers={"Authorization": f"Bearer {token}"})
        expect_error(response, 401, "invalid_token")


async def test_expired_token(server: ServerProcess) -> None:
    token = mint_user_token(SECRET, uid("late"), ttl_s=-30)
    expired_server = jwt.encode({"server": True, "exp": int(time.time()) - 30}, SECRET, "HS256")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for t in (token, expired_server):
            response = await client.get("/v1/call-types", headers={"Authorization": f"Bearer {t}"})
            expect_error(response, 401, "token_expired")
            response = await client.post(
                f"/v1/calls/default/{uid('c')}", headers={"Authorization": f"Bearer {t}"}
            )
            expect_error(response, 401, "token_expired")


async def test_auth_is_checked_before_existence(clients: ClientFactory) -> None:
    """A bad token on an unknown call is 401, not 404 (no probing without a token)."""
    anonymous = clients(token="garbage")
    expect_error(await anonymous.get(Room("default", uid("nope")).path()), 401, "invalid_token")


# 403


async def test_permission_denied_names_the_missing_capability(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, _, by_user = await live_audio_room(clients, host_id, [a_id])
    a = by_user[a_id]
    cases = [
        ("/go-live", None, "go-live"),
        ("/stop-live", None, "go-live"),
        ("/end", None, "end-call"),
        ("/members", {"remove": [host_id]}, "update-call-member"),
        ("/user-permissions", {"user_id": a_id, "grant": ["go-live"]}, "update-call-permissions"),
        ("/mute", {"user_ids": [host_id]}, "mute-users"),
        ("/block", {"user_id": host_id}, "block-users"),
        ("/unblock", {"user_id": host_id}, "block-users"),
    ]
    for suffix, body, capability in cases:
        response = (
            await a.post(room.path(suffix), json=body) if body else await a.post(room.path(suffix))
        )
        details = expect_error(response, 403, "permission_denied")
        assert details["capability"] == capability, (suffix, details)

    # every built-in role may create calls: a custom type without create-call for `user`
    name = uid("nocreate")
    ok(
        await clients().put(
            f"/v1/call-types/{name}",
            json={"grants": {"user": ["read-call"], "host": ["read-call", "create-call"]}},
        )
    )
    details = expect_error(await a.post(Room(name, uid("c")).path()), 403, "permission_denied")
    assert details["capability"] == "create-call"


async def test_not_requestable_is_403(clients: ClientFactory) -> None:
    room, _, by_user = await live_audio_room(clients, uid("host"), [a_id := uid("a")])
    response = await by_user[a_id].post(
        room.path("/permission-requests"), json={"permissions": ["end-call"]}
    )
    expect_error(response, 403, "not_requestable")


# 404


async def test_not_found(clients: ClientFactory) -> None:
    host_id = uid("host")
    user = clients(host_id)
    missing = Room("default", uid("missing"))
    for method, suffix in (
        ("GET", ""),
        ("POST", "/join"),
        ("POST", "/leave"),
        ("POST", "/go-live"),
        ("POST", "/stop-live"),
        ("POST", "/end"),
        ("GET", "/permission-requests"),
    ):
        details = expect_error(
            await user.request(method, missing.path(suffix)), 404, "call_not_found"
        )
        assert details.get("call_cid") == missing.cid
    expect_error(
        await user.post(missing.path("/members"), json={"remove": ["x"]}), 404, "call_not_found"
    )
    expect_error(
        await user.post(missing.path("/mute"), json={"user_ids": ["x"]}), 404, "call_not_found"
    )
    expect_error(
        await user.post(missing.path("/block"), json={"user_id": "x"}), 404, "call_not_found"
    )

    room, _ = await create(user, "default")
    expect_error(
        await user.post(room.path("/permission-requests/abc/accept")), 404, "request_not_found"
    )
    expect_error(await user.delete(room.path("/permission-requests/abc")), 404, "request_not_found")

    # unknown routes and methods keep the error shape too
    response = await user.get("/v1/no-such-endpoint")
    assert response.status_code == 404
    assert_error_shape(response)
    response = await user.delete(room.path())
    assert response.status_code == 405
    assert_error_shape(response)


# 409


async def test_conflicts(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id])
    a = by_user[a_id]
    request = await ask(a, room, "send-audio")
    ok(await host.post(room.path(f"/permission-requests/{request['id']}/accept")))
    details = expect_error(
        await host.post(room.path(f"/permission-requests/{request['id']}/reject")),
        409,
        "request_already_resolved",
    )
    assert details
    expect_error(
        await a.post(room.path("/permission-requests"), json={"permissions": ["send-audio"]}),
        409,
        "capability_held",
    )
    ok(await host.post(room.path("/end")))
    expect_error(await a.post(room.path("/join")), 409, "call_ended")


# 413


async def test_body_limit_with_content_length(clients: ClientFactory) -> None:
    client = clients(uid("big"))
    headers = {"Content-Type": "application/json"}
    # exactly the limit is fine
    response = await client.post(
        Room("default", uid("c")).path(), content=padded_body(LIMIT), headers=headers
    )
    assert response.status_code == 201, response.text
    details = expect_error(
        await client.post(
            Room("default", uid("c")).path(), content=padded_body(LIMIT + 1), headers=headers
        ),
        413,
        "payload_too_large",
    )
    assert details.get("limit_bytes") == LIMIT
    # every body-taking endpoint, and before any other check (even an unknown call)
    room, _, _ = await live_audio_room(clients, uid("host"))
    for path in (
        room.path("/members"),
        room.path("/permission-requests"),
        room.path("/mute"),
        Room("default", uid("missing")).path("/block"),
    ):
        expect_error(
            await client.post(path, content=b"{" + b" " * (200 * 1024) + b"}", headers=headers),
            413,
            "payload_too_large",
        )
    expect_error(
        await clients().put(
            f"/v1/call-types/{uid('ct')}", content=padded_body(LIMIT + 1), headers=headers
        ),
        413,
        "payload_too_large",
    )


def _chunked(body: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]

    return chunks()


async def test_body_limit_chunked(clients: ClientFactory) -> None:
    client = clients(uid("chunky"))
    response = await client.post(
        Room("default", uid("c")).path(),
        content=_chunked(padded_body(LIMIT + 4096)),
        headers={"Content-Type": "application/json"},
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.request.headers.get("transfer-encoding") == "chunked"
    expect_error(response, 413, "payload_too_large")


async def test_chunked_body_under_the_limit(clients: ClientFactory) -> None:
    client = clients(uid("chunky"))
    response = await client.post(
        Room("default", uid("c")).path(),
        content=_chunked(padded_body(LIMIT)),
        headers={"Content-Type": "application/json"},
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 201, response.text
    assert len(response.json()["call"]["custom"]["pad"]) == PAD


async def test_chunked_body_over_the_limit_is_refused(clients: ClientFactory) -> None:
    """Whatever the status, a streamed oversize body is never accepted nor a 5xx."""
    client = clients(uid("chunky"))
    room = Room("default", uid("c"))
    response = await client.post(
        room.path(),
        content=_chunked(padded_body(LIMIT + 4096)),
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert_error_shape(response)
    expect_error(await client.get(room.path()), 404, "call_not_found")


# 422


async def test_validation_errors(clients: ClientFactory) -> None:
    host_id, a_id = uid("host"), uid("a")
    room, host, by_user = await live_audio_room(clients, host_id, [a_id])
    a = by_user[a_id]
    requests_path = room.path("/permission-requests")
    bad_requests = [
        {"permissions": ["fly"]},
        {"permissions": ["send-audio", "SEND-AUDIO"]},
        {"permissions": "send-audio"},
        {"permissions": [1]},
        {"permissions": []},
        {"permissions": None},
        {},
        {"permissions": ["send-audio"], "extra": 1},
        [],
        "send-audio",
        42,
        None,
    ]
    for body in bad_requests:
        details = expect_error(await a.post(requests_path, json=body), 422, "validation_error")
        assert "errors" in details, body
    assert ok(await a.get(requests_path))["requests"] == []

    perms = room.path("/user-permissions")
    for body in (
        {"user_id": a_id, "grant": ["teleport"]},
        {"user_id": a_id, "revoke": ["everything"]},
        {"user_id": a_id, "grant": "send-audio"},
        {"user_id": "x" * 65, "grant": ["send-audio"]},
        {"user_id": "a b", "grant": ["send-audio"]},
        {"user_id": "", "grant": ["send-audio"]},
        {"grant": ["send-audio"]},
    ):
        expect_error(await host.post(perms, json=body), 422, "validation_error")

    members = room.path("/members")
    for body in (
        {"update": [{"user_id": "x" * 65, "role": "user"}]},
        {"update": [{"user_id": "a/b", "role": "user"}]},
        {"update": [{"user_id": a_id, "role": "Speaker!"}]},
        {"update": [{"user_id": a_id}]},
        {"update": "all"},
        {"remove": ["ünïcode"]},
        {"remove": [7]},
    ):
        expect_error(await host.post(members, json=body), 422, "validation_error")
    for body in (
        {"user_ids": "x"},
        {"user_ids": ["ok"], "audio": "loud"},
        {"user_ids": ["x" * 65]},
    ):
        expect_error(await host.post(room.path("/mute"), json=body), 422, "validation_error")
    for body in ({}, {"user_id": None}, {"user_id": "a.b"}):
        expect_error(await host.post(room.path("/block"), json=body), 422, "validation_error")
    request = await ask(a, room, "send-audio")
    expect_error(
        await host.post(
            room.path(f"/permission-requests/{request['id']}/reject"), json={"reason": 5}
        ),
        422,
        "validation_error",
    )
    expect_error(
        await host.post(
            room.path(f"/permission-requests/{request['id']}/reject"), json={"reason": "r" * 501}
        ),
        422,
        "validation_error",
    )
    body = ok(await host.get(room.path("/permission-requests")))
    assert [r["state"] for r in body["requests"]] == ["pending"]
    expect_error(
        await host.post(
            room.path(), json={"members": [{"user_id": "ok", "role": "host"}], "custom": []}
        ),
        422,
        "validation_error",
    )


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/calls/default/{'x' * 65}",
        f"/v1/calls/{'t' * 65}/abc",
        "/v1/calls/default/a.b",
        "/v1/calls/default/a%20b",
        "/v1/calls/default/a%21",
        "/v1/calls/default/%C3%A9",
        "/v1/calls/default/a%0A",
        "/v1/calls/def%24ault/abc",
    ],
)
async def test_bad_ids_in_path(clients: ClientFactory, path: str) -> None:
    client = clients(uid("ids"))
    for method in ("GET", "POST"):
        expect_error(await client.request(method, path), 422, "validation_error")
    expect_error(await client.post(f"{path}/join"), 422, "validation_error")


async def test_longest_ids_are_fine(clients: ClientFactory) -> None:
    client = clients(uid("ids"))
    call_id = uid("c") + "x" * (64 - len(uid("c")))
    assert len(call_id) == 64
    ok(await client.post(Room("default", call_id).path()), 201)
    expect_error(
        await client.post(
            Room("default", "x").path("/permission-requests/" + "r" * 65 + "/accept")
        ),
        422,
        "validation_error",
    )


# 400


async def test_invalid_json(clients: ClientFactory) -> None:
    host_id = uid("host")
    room, host, _ = await live_audio_room(clients, host_id)
    headers = {"Content-Type": "application/json"}
    for raw in (b"{", b"{'permissions': []}", b'{"permissions": [}', b"\xff\xfe", b"nul"):
        response = await host.post(room.path("/permission-requests"), content=raw, headers=headers)
        expect_error(response, 400, "invalid_json")
    response = await host.post(
        Room("default", uid("c")).path(), content=b'{"custom": ', headers=headers
    )
    expect_error(response, 400, "invalid_json")


# dev token


async def test_dev_token(server: ServerProcess) -> None:
    user_id = uid("dev")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        body = ok(await client.post("/v1/dev/token", json={"user_id": user_id, "name": "Dev"}))
        assert body["user_id"] == user_id
        claims = jwt.decode(body["token"], SECRET, algorithms=["HS256"])
        assert claims["sub"] == user_id and claims["name"] == "Dev" and claims["exp"] > time.time()
        headers = {"Authorization": f"Bearer {body['token']}"}
        room = Room("default", uid("c"))
        state = ok(await client.post(room.path(), headers=headers), 201)
        assert state["call"]["created_by"] == user_id
        expect_error(
            await client.post("/v1/dev/token", json={"user_id": "bad id"}), 422, "validation_error"
        )
        expect_error(await client.post("/v1/dev/token", json={}), 422, "validation_error")
        expect_error(
            await client.post(
                "/v1/dev/token", content=b"{", headers={"Content-Type": "application/json"}
            ),
            400,
            "invalid_json",
        )
        spec = ok(await client.get("/openapi.json"))
        assert "/v1/dev/token" in spec["paths"]


def test_dev_token_absent_without_dev(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Without --dev there is no way to mint tokens over HTTP."""
    workdir = tmp_path_factory.mktemp("nodev")
    proc = ServerProcess(workdir, f"sqlite:///{workdir / 'podium.db'}", dev=False)
    proc.start()
    try:
        response = httpx.post(f"{proc.url}/v1/dev/token", json={"user_id": "x"}, timeout=10)
        assert response.status_code in (404, 405)
        assert_error_shape(response)
        assert (
            "/v1/dev/token" not in httpx.get(f"{proc.url}/openapi.json", timeout=10).json()["paths"]
        )
    finally:
        proc.stop()
