"""Error codes: `error.code` of HTTP answers and WebSocket frames, and `sfu.error` codes."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """`error.code` of HTTP answers and WebSocket `error` frames."""

    BAD_REQUEST = "bad_request"
    INVALID_JSON = "invalid_json"
    INVALID_TOKEN = "invalid_token"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_REVOKED = "token_revoked"
    PERMISSION_DENIED = "permission_denied"
    NOT_REQUESTABLE = "not_requestable"
    HOST_NOT_ALLOWED = "host_not_allowed"
    NOT_FOUND = "not_found"
    CALL_NOT_FOUND = "call_not_found"
    CALL_TYPE_NOT_FOUND = "call_type_not_found"
    REQUEST_NOT_FOUND = "request_not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_ALREADY_RESOLVED = "request_already_resolved"
    CAPABILITY_HELD = "capability_held"
    CALL_ENDED = "call_ended"
    USER_BLOCKED = "user_blocked"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    VALIDATION_ERROR = "validation_error"
    REQUEST_COOLDOWN = "request_cooldown"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    SERVICE_UNAVAILABLE = "service_unavailable"
    HTTP_ERROR = "http_error"
    INTERNAL_ERROR = "internal_error"


class SfuErrorCode(StrEnum):
    """`code` of `sfu.error` frames: media signalling that was refused."""

    INVALID_MESSAGE = "invalid_message"
    OFFER_REQUIRED = "offer_required"
    NEGOTIATION_IN_PROGRESS = "negotiation_in_progress"
    UNEXPECTED_ANSWER = "unexpected_answer"
    #: Another connection of the same user offered: the media session moved there.
    REPLACED = "replaced"
    #: An SDP too large or with too many m-lines, or too many ICE candidates.
    LIMIT_EXCEEDED = "limit_exceeded"
