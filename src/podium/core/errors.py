"""Domain errors: each carries the wire `code`, the HTTP status it maps to, and details.

The core raises them; the API adapter renders them as
`{"error": {"code", "message", "details"}}` without knowing the cases.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PodiumError(Exception):
    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}


class InvalidToken(PodiumError):
    code = "invalid_token"
    status = 401


class TokenExpired(PodiumError):
    code = "token_expired"
    status = 401


class PermissionDenied(PodiumError):
    code = "permission_denied"
    status = 403


class NotRequestable(PodiumError):
    code = "not_requestable"
    status = 403


class CallNotFound(PodiumError):
    code = "call_not_found"
    status = 404


class CallTypeNotFound(PodiumError):
    code = "call_type_not_found"
    status = 404


class RequestNotFound(PodiumError):
    code = "request_not_found"
    status = 404


class RequestAlreadyResolved(PodiumError):
    code = "request_already_resolved"
    status = 409


class CapabilityHeld(PodiumError):
    code = "capability_held"
    status = 409


class CallEnded(PodiumError):
    code = "call_ended"
    status = 409


class ValidationFailed(PodiumError):
    code = "validation_error"
    status = 422


class RequestCooldown(PodiumError):
    code = "request_cooldown"
    status = 429


class TokenRevoked(PodiumError):
    code = "token_revoked"
    status = 401


class UserBlocked(PodiumError):
    """The user an action targets is blocked in the call: nothing may be granted to them."""

    code = "user_blocked"
    status = 409


class RateLimited(PodiumError):
    """Too many actions of one kind in a window; `details.retry_after_s` says when to retry."""

    code = "rate_limited"
    status = 429


class ServiceUnavailable(PodiumError):
    """A backing service (the database) is unreachable for now; retry after `retry_after_s`."""

    code = "service_unavailable"
    status = 503


class TooManyConnections(PodiumError):
    code = "too_many_connections"
    status = 429
