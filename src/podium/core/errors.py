"""Domain errors: each carries the wire `code`, the HTTP status it maps to, and details.

The core raises them; the API adapter renders them as
`{"error": {"code", "message", "details"}}` without knowing the cases.
"""

from __future__ import annotations

from typing import Any, ClassVar

from podium.protocol.errors import ErrorCode


class PodiumError(Exception):
    code: ClassVar[str] = ErrorCode.BAD_REQUEST
    status: ClassVar[int] = 400

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}


class InvalidToken(PodiumError):
    code = ErrorCode.INVALID_TOKEN
    status = 401


class TokenExpired(PodiumError):
    code = ErrorCode.TOKEN_EXPIRED
    status = 401


class PermissionDenied(PodiumError):
    code = ErrorCode.PERMISSION_DENIED
    status = 403


class NotRequestable(PodiumError):
    code = ErrorCode.NOT_REQUESTABLE
    status = 403


class CallNotFound(PodiumError):
    code = ErrorCode.CALL_NOT_FOUND
    status = 404


class CallTypeNotFound(PodiumError):
    code = ErrorCode.CALL_TYPE_NOT_FOUND
    status = 404


class RequestNotFound(PodiumError):
    code = ErrorCode.REQUEST_NOT_FOUND
    status = 404


class RequestAlreadyResolved(PodiumError):
    code = ErrorCode.REQUEST_ALREADY_RESOLVED
    status = 409


class CapabilityHeld(PodiumError):
    code = ErrorCode.CAPABILITY_HELD
    status = 409


class CallEnded(PodiumError):
    code = ErrorCode.CALL_ENDED
    status = 409


class ValidationFailed(PodiumError):
    code = ErrorCode.VALIDATION_ERROR
    status = 422


class RequestCooldown(PodiumError):
    code = ErrorCode.REQUEST_COOLDOWN
    status = 429


class TokenRevoked(PodiumError):
    code = ErrorCode.TOKEN_REVOKED
    status = 401


class UserBlocked(PodiumError):
    """The user an action targets is blocked in the call: nothing may be granted to them."""

    code = ErrorCode.USER_BLOCKED
    status = 409


class RateLimited(PodiumError):
    """Too many actions of one kind in a window; `details.retry_after_s` says when to retry."""

    code = ErrorCode.RATE_LIMITED
    status = 429


class ServiceUnavailable(PodiumError):
    """A backing service (the database) is unreachable for now; retry after `retry_after_s`."""

    code = ErrorCode.SERVICE_UNAVAILABLE
    status = 503


class TooManyConnections(PodiumError):
    code = ErrorCode.TOO_MANY_CONNECTIONS
    status = 429
