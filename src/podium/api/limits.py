"""Request bodies, checked before the application sees them.

`BodyGuard` reads the whole body first (at most one byte past the limit,
declared or streamed) and refuses, in the API's error shape:

- 413 `payload_too_large` past `limit` bytes;
- 422 `validation_error` for JSON that Podium would store but could not send
  back (`podium.core.json_values`: `NaN`/`Infinity`, lone surrogates, numbers
  too large, nesting deeper than `MAX_DEPTH`), with the reason.

Bodies that are not JSON at all go on to the application, which answers
400 `invalid_json`.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podium.api.errors import send_error
from podium.core.json_values import decode_strict, json_problem
from podium.protocol.errors import ErrorCode

MAX_BODY_BYTES = 64 * 1024


def body_problem(body: bytes) -> str | None:
    """Why this body is refused with 422, or None (also when it is not JSON)."""
    try:
        value = decode_strict(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    except RecursionError:
        return "value: nested too deep"
    except ValueError as exc:
        return f"value: {exc}"
    return json_problem(value)


class BodyGuard:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._too_large(send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                await self._too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole = b"".join(chunks)
        problem = body_problem(whole) if whole else None
        if problem is not None:
            await send_error(
                send,
                422,
                ErrorCode.VALIDATION_ERROR,
                f"request body is not valid: {problem}",
                {"errors": [{"loc": ["body"], "msg": problem, "type": "json_value"}]},
            )
            return
        message = {"type": "http.request", "body": whole, "more_body": False}
        await self.app(scope, _replay([message], receive), send)

    async def _too_large(self, send: Send) -> None:
        await send_error(
            send,
            413,
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"request body exceeds {self.limit} bytes",
            {"limit_bytes": self.limit},
        )


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A `receive` that yields the buffered messages, then defers to `then`."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive
