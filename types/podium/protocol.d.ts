/** The `call_cid` that names a call on the wire: `{type}:{id}`. */
export function callCid(type: string, id: string): string;
/** Every capability name, in the server's order. */
export const CAPABILITIES: readonly ["read-call", "create-call", "join-call", "join-backstage", "send-audio", "send-video", "screenshare", "update-call-permissions", "update-call-member", "mute-users", "go-live", "update-call", "end-call", "block-users"];
/** Each source a participant publishes and its track kind, in the m-line order the SFU reads. */
export const SOURCES: Readonly<{
    readonly microphone: "audio";
    readonly camera: "video";
    readonly screen: "video";
}>;
/** The capability each source needs. */
export const SOURCE_CAPABILITY: Readonly<{
    readonly microphone: "send-audio";
    readonly camera: "send-video";
    readonly screen: "screenshare";
}>;
/** What a mute names (`POST .../mute`, `call.user_muted`), and the source each stops. */
export const MUTE_SOURCE: Readonly<{
    readonly audio: "microphone";
    readonly video: "camera";
    readonly screenshare: "screen";
}>;
/** Every call event type. */
export const EVENT_TYPES: readonly ["call.created", "call.updated", "call.ended", "call.live_started", "call.live_stopped", "call.member_added", "call.member_updated", "call.member_removed", "call.participant_joined", "call.participant_left", "call.participant_moved", "call.audience_updated", "call.permission_request", "call.permission_request_resolved", "call.permissions_updated", "call.user_muted", "call.blocked_user", "call.unblocked_user"];
/** `reason` of `call.permissions_updated`. */
export const PERMISSIONS_REASONS: readonly ["permissions_changed", "role_changed", "blocked", "unblocked"];
/** `reason` of `call.participant_left` when the participant did not leave by itself. */
export const LEFT_REASONS: readonly ["blocked", "disconnected"];
/** Where a joined participant is: on the stage (may publish or moderate) or in the audience. */
export const TIERS: readonly ["stage", "audience"];
/** Why the server stopped a source (`sfu.stop_source`). */
export const STOP_REASONS: readonly ["revoked", "muted", "blocked", "role_changed", "call_ended", "left"];
/** Why a publish was refused (`sfu.publish_denied`). */
export const DENY_REASONS: readonly ["not_granted", "revoked", "role_changed"];
/** `error.code` of HTTP answers and WebSocket `error` frames. */
export const ERROR_CODES: readonly ["bad_request", "invalid_json", "invalid_token", "token_expired", "token_revoked", "permission_denied", "not_requestable", "host_not_allowed", "not_found", "call_not_found", "call_type_not_found", "request_not_found", "method_not_allowed", "request_already_resolved", "capability_held", "call_ended", "user_blocked", "payload_too_large", "validation_error", "request_cooldown", "rate_limited", "too_many_connections", "service_unavailable", "http_error", "internal_error"];
/** `code` of `sfu.error` frames. */
export const SFU_ERROR_CODES: readonly ["invalid_message", "offer_required", "negotiation_in_progress", "unexpected_answer", "replaced", "limit_exceeded"];
/** Call ids, call type names and user ids. */
export const ID_PATTERN: RegExp;
