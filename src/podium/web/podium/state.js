// The capabilities a user can hold, and one call's state kept from snapshots and events.

export const CAPABILITIES = Object.freeze([
  "read-call",
  "create-call",
  "join-call",
  "join-backstage",
  "send-audio",
  "send-video",
  "screenshare",
  "update-call-permissions",
  "update-call-member",
  "mute-users",
  "go-live",
  "update-call",
  "end-call",
  "block-users",
]);


export function checkCapability(capability) {
  if (!CAPABILITIES.includes(capability)) {
    throw new TypeError(`unknown capability ${JSON.stringify(capability)}`);
  }
  return capability;
}

export function checkCapabilities(capabilities) {
  if (!Array.isArray(capabilities) || capabilities.length === 0) {
    throw new TypeError("pass a non-empty array of capability names");
  }
  return [...new Set(capabilities.map(checkCapability))];
}

function byKey(items, key) {
  const result = {};
  for (const item of Array.isArray(items) ? items : []) {
    if (item && typeof item === "object" && typeof item[key] === "string") result[item[key]] = { ...item };
  }
  return result;
}

function isExpired(request, now) {
  const expires = Date.parse(request.expires_at);
  return Number.isFinite(expires) && now >= expires;
}


/**
 * One call as this client sees it: plain data, updated by snapshots and events.
 *
 * A snapshot older than the state is ignored; an event at or below `seq` is
 * already reflected (it came before the snapshot) and is skipped.
 */
export class CallState {
  constructor(cid = "") {
    this.cid = cid;
    this.call = {};
    this.settings = {};
    this.members = {};
    this.participants = {};
    this.blockedUserIds = new Set();
    this.ownCapabilities = new Set();
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

  /** `backstage`, `live` or `ended`; null before the first snapshot. */
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

  /** The capabilities the call type lets users request. */
  get requestable() {
    return new Set(this.settings.requestable || []);
  }

  static fromSnapshot(snapshot) {
    const state = new CallState(String(snapshot?.call?.cid ?? ""));
    state.applySnapshot(snapshot);
    return state;
  }

  /** Replace the state with a call state object; false (nothing changed) if it is older. */
  applySnapshot(snapshot) {
    const seq = Number.isInteger(snapshot.seq) ? snapshot.seq : -1;
    if (this.loaded && seq < this.seq) return false;
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
    this.seq = seq;
    this.loaded = true;
    return true;
  }

  /** Fold one call event in; false when the state already reflects it. */
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
        const participant = event.participant;
        if (participant && typeof participant.user_id === "string") {
          this.participants[participant.user_id] = { ...participant };
        }
        break;
      }
      case "call.participant_left":
        if (event.participant) delete this.participants[event.participant.user_id];
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

  /** The unexpired pending requests of `userId`. */
  pendingOf(userId, now = Date.now()) {
    return Object.values(this.pendingRequests).filter(
      (request) => request.user_id === userId && !isExpired(request, now),
    );
  }

  isMemberOrParticipant(userId) {
    return Object.hasOwn(this.members, userId) || Object.hasOwn(this.participants, userId);
  }

  #setCall(event) {
    if (event.call && typeof event.call === "object") this.call = { ...event.call };
  }
}
