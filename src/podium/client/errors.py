"""Errors the SDK raises.

Every non-2xx HTTP answer becomes a `PodiumAPIError` carrying the server's
`{"error": {"code", "message", "details"}}`. An `error` frame received over the
WebSocket in answer to a `watch` becomes one too; the frame has no HTTP status,
so `status` is the one the HTTP API uses for the same `code` (spec §2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The HTTP status the API answers with for each error code (spec §2); used only
# for errors that arrive over the WebSocket, where no status travels.
WS_ERROR_STATUS: Mapping[str, int] = {
    "invalid_token": 401,
    "token_expired": 401,
    "permission_denied": 403,
    "not_requestable": 403,
    "call_not_found": 404,
    "call_type_not_found": 404,
    "request_not_found": 404,
    "request_already_resolved": 409,
    "capability_held": 409,
    "call_ended": 409,
    "payload_too_large": 413,
    "validation_error": 422,
    "request_cooldown": 429,
}


class PodiumError(Exception):
    """Base class of every error the SDK raises on its own."""


class PodiumAPIError(PodiumError):
    """The server refused a request: HTTP `status` with the wire `code`, `message`, `details`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def __repr__(self) -> str:
        return (
            f"PodiumAPIError(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, details={self.details!r})"
        )

    @classmethod
    def from_body(cls, status: int, body: object, fallback: str = "") -> PodiumAPIError:
        """Build from a decoded error body; odd bodies (a proxy's HTML page) still map."""
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            message = error.get("message")
            details = error.get("details")
            return cls(
                status,
                error["code"],
                message if isinstance(message, str) else "",
                details if isinstance(details, dict) else None,
            )
        return cls(status, "http_error", fallback or f"HTTP {status}")

    @classmethod
    def from_frame(cls, frame: Mapping[str, Any]) -> PodiumAPIError:
        """Build from a WebSocket `{"type": "error", "error": {...}}` frame."""
        error = frame.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        if not isinstance(code, str):
            return cls(400, "error", "malformed error frame", {"frame": dict(frame)})
        return cls.from_body(WS_ERROR_STATUS.get(code, 400), {"error": error})


class PodiumConnectionError(PodiumError):
    """The event connection could not be (re)established or was refused for good."""
