// The capabilities a user can hold, and one call's state kept from snapshots and events.

import { CAPABILITIES } from "./protocol.js";

export { CAPABILITIES };

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
export function checkCapability(capability) {
  if (!CAPABILITIES.includes(/** @type {Capability} */ (capability))) {
    throw new TypeError(`unknown capability ${JSON.stringify(capability)}`);
  }
  return /** @type {Capability} */ (capability);
}

/**
 * The known capabilities of a non-empty array, once each; else a TypeError.
 * @param {readonly string[]} capabilities
 * @returns {Capability[]}
 */
export function checkCapabilities(capabilities) {
  if (!Array.isArray(capabilities) || capabilities.length === 0) {
    throw new TypeError("pass a non-empty array of capability names");
  }
  return [...new Set(capabilities.map(checkCapability))];
}

/**
 * Copies of the objects of `items` keyed by their string field `key`.
 * @template {object} T
 * @param {T[] | undefined} items
 * @param {string} key
 * @returns {Record<string, T>}
 */
function byKey(items, key) {
  /** @type {Record<string, T>} */
  const result = {};
  for (const item of Array.isArray(items) ? items : []) {
    const value = item && typeof item === "object" ? /** @type {Record<string, unknown>} */ (item)[key] : undefined;
    if (typeof value === "string") result[value] = { ...item };
  }
  return result;
}

/**
 * @param {PermissionRequest} request
 * @param {number} now milliseconds since the epoch
 */
function isExpired(request, now) {
  const expires = Date.parse(request.expires_at);
  return Number.isFinite(expires) && now >= expires;
}

/**
 * `value` if it is an integer, else `fallback`.
 * @param {unknown} value
 * @param {number} fallback
 */
function integerOr(value, fallback) {
  return typeof value === "number" && Number.isInteger(value) ? value : fallback;
}

/**
 * A copy of the participant, if it names a user.
 * @param {Participant | undefined} participant
 * @returns {Participant | null}
 */
function participantOf(participant) {
  return participant && typeof participant.user_id === "string" ? { ...participant } : null;
}

/**
 * Whether `participants` holds this record: on the stage, or this client's own. A record
 * without a tier counts as the stage (servers before the audience split sent everyone).
 * @param {Participant} participant
 * @param {string | null} userId
 */
function kept(participant, userId) {
  return (participant.tier ?? "stage") === "stage" || participant.user_id === userId;
}

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
  /** @param {string} [cid] `type:id` */
  constructor(cid = "") {
    this.cid = cid;
    /** @type {Partial<CallObject>} The server's call object; empty before the first snapshot. */
    this.call = {};
    /** @type {Partial<CallSettings>} */
    this.settings = {};
    /** @type {Record<string, Member>} By user id. */
    this.members = {};
    /** @type {Record<string, Participant>} The stage and your own record, by user id. */
    this.participants = {};
    /** Joined participants in the audience (not in `participants`). */
    this.audienceCount = 0;
    /** @type {Set<string>} */
    this.blockedUserIds = new Set();
    /** @type {Set<string>} */
    this.ownCapabilities = new Set();
    /** @type {Record<string, PermissionRequest>} By request id. */
    this.pendingRequests = {};
    this.seq = -1;
    this.loaded = false;
  }

  get type() {
    return this.cid.split(":")[0];
  }

  get id() {
    return this.cid.slice(this.cid.indexOf(":") + 1);
  }

  /**
   * `backstage`, `live` or `ended`; null before the first snapshot.
   * @returns {Phase | null}
   */
  get phase() {
    return typeof this.call.phase === "string" ? this.call.phase : null;
  }

  get live() {
    return Boolean(this.call.live);
  }

  get backstage() {
    return Boolean(this.call.backstage);
  }

  get ended() {
    return Boolean(this.call.ended);
  }

  /**
   * The capabilities the call type lets users request.
   * @returns {Set<string>}
   */
  get requestable() {
    return new Set(this.settings.requestable || []);
  }

  /**
   * @param {CallSnapshot} snapshot
   * @returns {CallState}
   */
  static fromSnapshot(snapshot) {
    const state = new CallState(String(snapshot?.call?.cid ?? ""));
    state.applySnapshot(snapshot);
    return state;
  }

  /**
   * Replace the state with a call state object; false (nothing changed) if it is older.
   * @param {CallSnapshot} snapshot
   * @returns {boolean}
   */
  applySnapshot(snapshot) {
    const seq = integerOr(snapshot.seq, -1);
    if (this.loaded && seq < this.seq) return false;
    /** @type {Partial<CallObject>} */
    const call = snapshot.call || {};
    if (typeof call.cid === "string") this.cid = call.cid;
    this.call = { ...call };
    this.settings = { ...(snapshot.settings || {}) };
    this.members = byKey(snapshot.members, "user_id");
    this.participants = byKey(snapshot.participants, "user_id");
    this.blockedUserIds = new Set(snapshot.blocked_user_ids || []);
    this.ownCapabilities = new Set(snapshot.own_capabilities || []);
    this.pendingRequests = {};
    for (const request of Array.isArray(snapshot.pending_requests) ? snapshot.pending_requests : []) {
      if (request && typeof request.id === "string" && (request.state ?? "pending") === "pending") {
        this.pendingRequests[request.id] = { ...request };
      }
    }
    this.audienceCount = integerOr(snapshot.audience_count, 0);
    this.seq = seq;
    this.loaded = true;
    return true;
  }

  /**
   * Fold one call event in; false when the state already reflects it.
   * @param {CallEvent} event
   * @param {string | null} userId this client's user, whose `call.permissions_updated` counts
   * @returns {boolean}
   */
  applyEvent(event, userId) {
    if (Number.isInteger(event.seq)) {
      if (this.loaded && event.seq <= this.seq) return false;
      this.seq = event.seq;
    }
    switch (event.type) {
      case "call.created":
      case "call.updated":
      case "call.live_started":
      case "call.live_stopped":
        this.#setCall(event);
        break;
      case "call.ended":
        this.#setCall(event);
        // The server removes every participant and cancels every pending request.
        this.participants = {};
        this.pendingRequests = {};
        break;
      case "call.participant_joined": {
        const participant = participantOf(event.participant);
        if (participant && kept(participant, userId)) this.participants[participant.user_id] = participant;
        break;
      }
      case "call.participant_left":
        // Whatever the tier, nobody who left stays (an audience leave is a no-op).
        if (event.participant) delete this.participants[event.participant.user_id];
        break;
      case "call.participant_moved": {
        const participant = participantOf(event.participant);
        if (participant && kept(participant, userId)) this.participants[participant.user_id] = participant;
        else if (participant) delete this.participants[participant.user_id];
        break;
      }
      case "call.audience_updated":
        this.audienceCount = integerOr(event.audience_count, this.audienceCount);
        break;
      case "call.member_added":
      case "call.member_updated":
        Object.assign(this.members, byKey(event.members, "user_id"));
        break;
      case "call.member_removed":
        for (const removed of event.user_ids || []) delete this.members[removed];
        break;
      case "call.permission_request": {
        const request = event.request;
        if (request && typeof request.id === "string" && (request.state ?? "pending") === "pending") {
          this.pendingRequests[request.id] = { ...request };
        }
        break;
      }
      case "call.permission_request_resolved":
        if (event.request) delete this.pendingRequests[event.request.id];
        break;
      case "call.permissions_updated":
        if (userId && event.user_id === userId) {
          this.ownCapabilities = new Set(event.own_capabilities || []);
          // A request whose capabilities are all held has been accepted; its event follows.
          for (const [id, request] of Object.entries(this.pendingRequests)) {
            const asked = request.permissions || [];
            if (request.user_id === userId && asked.every((c) => this.ownCapabilities.has(c))) {
              delete this.pendingRequests[id];
            }
          }
        }
        break;
      case "call.blocked_user":
        this.blockedUserIds.add(event.user_id);
        delete this.participants[event.user_id];
        break;
      case "call.unblocked_user":
        this.blockedUserIds.delete(event.user_id);
        break;
      default:
        break;
    }
    return true;
  }

  /**
   * The unexpired pending requests of `userId`.
   * @param {string} userId
   * @param {number} [now] milliseconds since the epoch
   * @returns {PermissionRequest[]}
   */
  pendingOf(userId, now = Date.now()) {
    return Object.values(this.pendingRequests).filter(
      (request) => request.user_id === userId && !isExpired(request, now),
    );
  }

  /** @param {string} userId */
  isMemberOrParticipant(userId) {
    return Object.hasOwn(this.members, userId) || Object.hasOwn(this.participants, userId);
  }

  /** @param {{ call?: unknown }} event */
  #setCall(event) {
    if (event.call && typeof event.call === "object") this.call = { ...event.call };
  }
}
