/** @typedef {typeof CAPABILITIES[number]} Capability A capability a user can hold in a call. */
/** @typedef {"backstage" | "live" | "ended"} Phase */
/**
 * The server's call object.
 * @typedef {object} CallObject
 * @property {string} cid `type:id`
 * @property {string} type
 * @property {string} id
 * @property {Phase} phase
 * @property {boolean} backstage
 * @property {boolean} live
 * @property {boolean} ended
 * @property {string} created_by
 * @property {string} created_at
 * @property {Record<string, unknown>} custom
 */
/**
 * The call type's settings, as a call state object carries them.
 * @typedef {object} CallSettings
 * @property {string} name
 * @property {boolean} backstage
 * @property {number} request_ttl_s
 * @property {number} request_cooldown_s
 * @property {string[]} requestable the capabilities users may request
 */
/**
 * @typedef {object} Member
 * @property {string} user_id
 * @property {string} role
 * @property {string} [name]
 */
/**
 * @typedef {object} Participant
 * @property {string} user_id
 * @property {string} [name]
 * @property {string} [joined_at]
 * @property {Tier} [tier] "stage" (may publish or moderate) or "audience"
 */
/** @typedef {(typeof import("./protocol.js").TIERS)[number]} Tier Where a joined participant is. */
/** @typedef {"pending" | "accepted" | "rejected" | "cancelled" | "expired"} RequestState */
/**
 * A permission request object.
 * @typedef {object} PermissionRequest
 * @property {string} id
 * @property {string} call_cid
 * @property {string} user_id
 * @property {string[]} permissions
 * @property {RequestState} state
 * @property {string} created_at
 * @property {string} expires_at
 * @property {string | null} [resolved_by]
 * @property {string | null} [reason]
 */
/**
 * A call state object, as every call endpoint answers (`join` adds `media`).
 * @typedef {object} CallSnapshot
 * @property {CallObject} [call]
 * @property {CallSettings} [settings]
 * @property {Member[]} [members]
 * @property {Participant[]} [participants]
 * @property {string[]} [blocked_user_ids]
 * @property {string[]} [own_capabilities]
 * @property {PermissionRequest[]} [pending_requests]
 * @property {number} [audience_count] joined participants in the audience, exact at `seq`
 * @property {number} [seq]
 * @property {{ ice_servers?: RTCIceServer[] }} [media]
 */
/**
 * What each call event carries besides `type`, `call_cid`, `seq` and `created_at` (docs/api.md).
 * @typedef {{
 *   "call.created": { call: CallObject },
 *   "call.updated": { call: CallObject },
 *   "call.live_started": { call: CallObject },
 *   "call.live_stopped": { call: CallObject },
 *   "call.ended": { call: CallObject },
 *   "call.member_added": { members: Member[] },
 *   "call.member_updated": { members: Member[] },
 *   "call.member_removed": { user_ids: string[] },
 *   "call.participant_joined": { participant: Participant },
 *   "call.participant_left": { participant: Participant, reason?: string },
 *   "call.participant_moved": { participant: Participant },
 *   "call.audience_updated": { audience_count: number },
 *   "call.permission_request": { request: PermissionRequest, user?: { id: string, name?: string, image?: string } },
 *   "call.permission_request_resolved": { request: PermissionRequest },
 *   "call.permissions_updated": { user_id: string, own_capabilities: string[], reason?: string },
 *   "call.user_muted": { user_id: string, kinds: string[], muted_by: string },
 *   "call.blocked_user": { user_id: string, by?: string },
 *   "call.unblocked_user": { user_id: string, by?: string },
 * }} CallEventPayloads
 */
/**
 * A call event as the WebSocket delivers it: one member per type, told apart by `type`.
 * @typedef {{
 *   [T in keyof CallEventPayloads]: { type: T, call_cid: string, seq: number, created_at: string } & CallEventPayloads[T]
 * }[keyof CallEventPayloads]} CallEvent
 */
/**
 * `capability`, if it is one of `CAPABILITIES`; else a TypeError.
 * @param {string} capability
 * @returns {Capability}
 */
export function checkCapability(capability: string): Capability;
/**
 * The known capabilities of a non-empty array, once each; else a TypeError.
 * @param {readonly string[]} capabilities
 * @returns {Capability[]}
 */
export function checkCapabilities(capabilities: readonly string[]): Capability[];
export { CAPABILITIES };
/**
 * One call as this client sees it: plain data, updated by snapshots and events.
 *
 * A snapshot older than the state is ignored; an event at or below `seq` is
 * already reflected (it came before the snapshot) and is skipped.
 *
 * `participants` holds the stage plus this client's own record, never the whole
 * audience (which can be thousands); `audienceCount` says how many listen. A moderator
 * watching with `{audience: true}` sees audience joins and leaves in its handlers only.
 */
export class CallState {
    /**
     * @param {CallSnapshot} snapshot
     * @returns {CallState}
     */
    static fromSnapshot(snapshot: CallSnapshot): CallState;
    /** @param {string} [cid] `type:id` */
    constructor(cid?: string);
    cid: string;
    /** @type {Partial<CallObject>} The server's call object; empty before the first snapshot. */
    call: Partial<CallObject>;
    /** @type {Partial<CallSettings>} */
    settings: Partial<CallSettings>;
    /** @type {Record<string, Member>} By user id. */
    members: Record<string, Member>;
    /** @type {Record<string, Participant>} The stage and your own record, by user id. */
    participants: Record<string, Participant>;
    /** Joined participants in the audience (not in `participants`). */
    audienceCount: number;
    /** @type {Set<string>} */
    blockedUserIds: Set<string>;
    /** @type {Set<string>} */
    ownCapabilities: Set<string>;
    /** @type {Record<string, PermissionRequest>} By request id. */
    pendingRequests: Record<string, PermissionRequest>;
    seq: number;
    loaded: boolean;
    get type(): string;
    get id(): string;
    /**
     * `backstage`, `live` or `ended`; null before the first snapshot.
     * @returns {Phase | null}
     */
    get phase(): Phase | null;
    get live(): boolean;
    get backstage(): boolean;
    get ended(): boolean;
    /**
     * The capabilities the call type lets users request.
     * @returns {Set<string>}
     */
    get requestable(): Set<string>;
    /**
     * Replace the state with a call state object; false (nothing changed) if it is older.
     * @param {CallSnapshot} snapshot
     * @returns {boolean}
     */
    applySnapshot(snapshot: CallSnapshot): boolean;
    /**
     * Fold one call event in; false when the state already reflects it.
     * @param {CallEvent} event
     * @param {string | null} userId this client's user, whose `call.permissions_updated` counts
     * @returns {boolean}
     */
    applyEvent(event: CallEvent, userId: string | null): boolean;
    /**
     * The unexpired pending requests of `userId`.
     * @param {string} userId
     * @param {number} [now] milliseconds since the epoch
     * @returns {PermissionRequest[]}
     */
    pendingOf(userId: string, now?: number): PermissionRequest[];
    /** @param {string} userId */
    isMemberOrParticipant(userId: string): boolean;
    #private;
}
/**
 * A capability a user can hold in a call.
 */
export type Capability = (typeof CAPABILITIES)[number];
export type Phase = "backstage" | "live" | "ended";
/**
 * The server's call object.
 */
export type CallObject = {
    /**
     * `type:id`
     */
    cid: string;
    type: string;
    id: string;
    phase: Phase;
    backstage: boolean;
    live: boolean;
    ended: boolean;
    created_by: string;
    created_at: string;
    custom: Record<string, unknown>;
};
/**
 * The call type's settings, as a call state object carries them.
 */
export type CallSettings = {
    name: string;
    backstage: boolean;
    request_ttl_s: number;
    request_cooldown_s: number;
    /**
     * the capabilities users may request
     */
    requestable: string[];
};
export type Member = {
    user_id: string;
    role: string;
    name?: string | undefined;
};
export type Participant = {
    user_id: string;
    name?: string | undefined;
    joined_at?: string | undefined;
    /**
     * "stage" (may publish or moderate) or "audience"
     */
    tier?: "stage" | "audience" | undefined;
};
/**
 * Where a joined participant is.
 */
export type Tier = (typeof import("./protocol.js").TIERS)[number];
export type RequestState = "pending" | "accepted" | "rejected" | "cancelled" | "expired";
/**
 * A permission request object.
 */
export type PermissionRequest = {
    id: string;
    call_cid: string;
    user_id: string;
    permissions: string[];
    state: RequestState;
    created_at: string;
    expires_at: string;
    resolved_by?: string | null | undefined;
    reason?: string | null | undefined;
};
/**
 * A call state object, as every call endpoint answers (`join` adds `media`).
 */
export type CallSnapshot = {
    call?: CallObject | undefined;
    settings?: CallSettings | undefined;
    members?: Member[] | undefined;
    participants?: Participant[] | undefined;
    blocked_user_ids?: string[] | undefined;
    own_capabilities?: string[] | undefined;
    pending_requests?: PermissionRequest[] | undefined;
    /**
     * joined participants in the audience, exact at `seq`
     */
    audience_count?: number | undefined;
    seq?: number | undefined;
    media?: {
        ice_servers?: RTCIceServer[];
    } | undefined;
};
/**
 * What each call event carries besides `type`, `call_cid`, `seq` and `created_at` (docs/api.md).
 */
export type CallEventPayloads = {
    "call.created": {
        call: CallObject;
    };
    "call.updated": {
        call: CallObject;
    };
    "call.live_started": {
        call: CallObject;
    };
    "call.live_stopped": {
        call: CallObject;
    };
    "call.ended": {
        call: CallObject;
    };
    "call.member_added": {
        members: Member[];
    };
    "call.member_updated": {
        members: Member[];
    };
    "call.member_removed": {
        user_ids: string[];
    };
    "call.participant_joined": {
        participant: Participant;
    };
    "call.participant_left": {
        participant: Participant;
        reason?: string;
    };
    "call.participant_moved": {
        participant: Participant;
    };
    "call.audience_updated": {
        audience_count: number;
    };
    "call.permission_request": {
        request: PermissionRequest;
        user?: {
            id: string;
            name?: string;
            image?: string;
        };
    };
    "call.permission_request_resolved": {
        request: PermissionRequest;
    };
    "call.permissions_updated": {
        user_id: string;
        own_capabilities: string[];
        reason?: string;
    };
    "call.user_muted": {
        user_id: string;
        kinds: string[];
        muted_by: string;
    };
    "call.blocked_user": {
        user_id: string;
        by?: string;
    };
    "call.unblocked_user": {
        user_id: string;
        by?: string;
    };
};
/**
 * A call event as the WebSocket delivers it: one member per type, told apart by `type`.
 */
export type CallEvent = { [T in keyof CallEventPayloads]: {
    type: T;
    call_cid: string;
    seq: number;
    created_at: string;
} & CallEventPayloads[T]; }[keyof CallEventPayloads];
import { CAPABILITIES } from "./protocol.js";
