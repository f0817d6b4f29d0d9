// One call: its state and events, its HTTP actions, and its media session.

import { PodiumError, reportHandlerError, runHandlers } from "./errors.js";
import { MediaSession, SOURCES, checkSource } from "./media.js";
import { callCid } from "./protocol.js";
import { PermissionHandle } from "./permission.js";
import { checkId, muteBody, participantsQuery, requestId } from "./requests.js";
import { CallState, checkCapabilities, checkCapability } from "./state.js";
import { deferred, within } from "./waiting.js";

const PHASE_EVENTS = new Set(["call.live_started", "call.live_stopped", "call.ended"]);
// Reads of the call after a phase change, until one is not older than the state.
const PHASE_REREADS = 3;

/** @typedef {import("./events.js").CallEvent} CallEvent */
/** @typedef {import("./events.js").Event} Event */
/** @typedef {import("./events.js").Frame} Frame */
/** @typedef {import("./events.js").SfuFrame} SfuFrame */
/** @typedef {import("./events.js").WatchOk} WatchOk */
/**
 * @template {string} T
 * @typedef {import("./events.js").EventOf<T>} EventOf
 */
/** @typedef {(event: Event) => unknown} Handler */
/** @typedef {() => void} Unsubscribe */
/** @typedef {import("./state.js").PermissionRequest | string} RequestRef A request object or its id. */

/**
 * @typedef {object} MuteKinds Which kinds to mute; none set: every kind.
 * @property {boolean} [audio]
 * @property {boolean} [video]
 * @property {boolean} [screenshare]
 */

/** @typedef {import("./state.js").Tier} Tier Where a participant is: `stage` or `audience`. */
/**
 * @typedef {object} ParticipantsPage
 * @property {(import("./state.js").Participant & { tier: Tier })[]} participants
 * @property {string | null} next_cursor The `cursor` of the next page; null after the last.
 */

/** One call: its state, events, moderation actions and media. */
export class Call {
  /**
   * @param {import("./client.js").Client} client
   * @param {string} type
   * @param {string} id
   */
  constructor(client, type, id) {
    this.client = client;
    this.type = type;
    this.id = id;
    this.cid = callCid(type, id);
    this.state = new CallState(this.cid);
    /** @type {import("./state.js").CallSnapshot["media"] | null} What `join` answered about media (ICE servers). */
    this.mediaInfo = null;
    /** @type {Map<string, Set<Handler>>} */
    this._handlers = new Map();
    /** @type {Set<(state: CallState) => unknown>} */
    this._stateHandlers = new Set();
    this._watching = false;
    /** @type {import("./waiting.js").Deferred<WatchOk> | null} */
    this._watchWaiter = null;
    /** Whether the watch asks for the audience's joins and leaves too (`watch({audience})`). */
    this._audience = false;
    // Joined and not left: after a reconnect, or removed for being disconnected, join again.
    this._joined = false;
    // The re-watch and re-join after a reconnect, and a re-join on its own (never reject).
    /** @type {Promise<void> | null} */
    this._recovery = null;
    /** @type {Promise<void> | null} */
    this._rejoining = null;
    /** @type {MediaSession | null} */
    this._media = null;
    // Requests this client saw resolved: a snapshot read just before must not bring them back.
    /** @type {Set<string>} */
    this._resolved = new Set();
    // The seq of the last call event the handlers saw (from the first snapshot on). A re-read
    // may reflect events whose frames are still on their way; their handlers run when they
    // arrive, so this moves with frames, never with reads.
    /** @type {number | null} */
    this._handledSeq = null;
  }

  get path() {
    return `/v1/calls/${encodeURIComponent(this.type)}/${encodeURIComponent(this.id)}`;
  }

  get watching() {
    return this._watching;
  }

  // State and events.

  /**
   * `handler(state)` after every change of `state`; returns an unsubscribe function.
   * @param {(state: CallState) => unknown} handler
   * @returns {Unsubscribe}
   */
  onStateChange(handler) {
    this._stateHandlers.add(handler);
    return () => this._stateHandlers.delete(handler);
  }

  /**
   * `handler(event)` for each event of `type` (`"*"`: every call event); returns an unsubscribe.
   * @template {string} T
   * @param {T} type a call event (`call.*`), a media event (`media.*`), an `sfu.*` frame, `error`, or `"*"`
   * @param {(event: EventOf<T>) => unknown} handler
   * @returns {Unsubscribe}
   */
  on(type, handler) {
    if (typeof type !== "string" || !type) throw new TypeError("type must be an event name or '*'");
    const handlers = this._handlers.get(type) ?? new Set();
    this._handlers.set(type, handlers);
    handlers.add(/** @type {Handler} */ (handler));
    return () => this._handlers.get(type)?.delete(/** @type {Handler} */ (handler));
  }

  /** @param {import("./state.js").Capability} capability */
  hasPermission(capability) {
    return this.state.ownCapabilities.has(checkCapability(capability));
  }

  /** @param {import("./state.js").Capability} capability */
  permission(capability) {
    return new PermissionHandle(this, capability);
  }

  // HTTP.

  /**
   * @param {{ members?: { user_id: string, role: string }[], custom?: Record<string, unknown> }} [options]
   * @returns {Promise<CallState>}
   */
  async getOrCreate({ members, custom } = {}) {
    /** @type {{ members?: { user_id: string, role: string }[], custom?: Record<string, unknown> }} */
    const body = {};
    if (members) body.members = members;
    if (custom) body.custom = custom;
    return this.#snapshot(await this.client.request("POST", this.path, body));
  }

  /** @returns {Promise<CallState>} */
  async get() {
    return this.#snapshot(await this.client.request("GET", this.path));
  }

  /**
   * Become a participant, and follow the call's events.
   * @returns {Promise<CallState>}
   */
  async join() {
    await this.client.connect();
    const data = await this.client.request("POST", `${this.path}/join`);
    this._joined = true;
    this.mediaInfo = data.media ?? null;
    this.#snapshot(data);
    await this.#watch();
    return this.state;
  }

  /**
   * Read the state and follow the call's events without joining.
   *
   * `audience: true` (needs `update-call-permissions`) also delivers each audience join
   * and leave to the handlers; `state.participants` still holds the stage only, and
   * `state.audienceCount` counts the rest. Every re-watch after a reconnect asks again.
   * @param {{ audience?: boolean }} [options]
   * @returns {Promise<CallState>}
   */
  async watch({ audience = false } = {}) {
    this._audience = audience;
    await this.client.connect();
    if (!this.state.loaded) await this.get();
    await this.#watch();
    return this.state;
  }

  /** @returns {Promise<void>} */
  async unwatch() {
    if (!this._watching) return;
    this._watching = false;
    if (this.client.connected) await this.client.send({ type: "unwatch", call_cid: this.cid });
  }

  /**
   * Close media, stop being a participant, and stop following events.
   * @returns {Promise<CallState>}
   */
  async leave() {
    this._joined = false;
    await this.closeMedia("left");
    const data = await this.client.request("POST", `${this.path}/leave`);
    this.#snapshot(data);
    await this.unwatch();
    return this.state;
  }

  /** @returns {Promise<CallState>} */
  async goLive() {
    return this.#snapshot(await this.client.request("POST", `${this.path}/go-live`));
  }

  /** @returns {Promise<CallState>} */
  async stopLive() {
    return this.#snapshot(await this.client.request("POST", `${this.path}/stop-live`));
  }

  /** @returns {Promise<CallState>} */
  async end() {
    return this.#snapshot(await this.client.request("POST", `${this.path}/end`));
  }

  /**
   * One page of the call's participants, for reading a large audience page by page (the call
   * state is not touched). Pass the page's `next_cursor` as `cursor` for the next one.
   * @param {{ tier?: Tier, limit?: number, cursor?: string, q?: string }} [options]
   * @returns {Promise<ParticipantsPage>}
   */
  async participantsPage(options = {}) {
    const page = await this.client.request("GET", `${this.path}/participants${participantsQuery(options)}`);
    return /** @type {ParticipantsPage} */ (page);
  }

  /**
   * Ask for capabilities; resolves to the request (new, or the one already pending).
   * @param {readonly import("./state.js").Capability[]} capabilities
   * @returns {Promise<import("./state.js").PermissionRequest>}
   */
  async requestPermissions(capabilities) {
    const data = await this.client.request("POST", `${this.path}/permission-requests`, {
      permissions: checkCapabilities(capabilities),
    });
    /** @type {import("./state.js").PermissionRequest} */
    const request = data.request || {};
    if (request.state === "pending" && typeof request.id === "string" && !this._resolved.has(request.id)) {
      this.state.pendingRequests[request.id] = { ...request };
      this.#changed();
    }
    return request;
  }

  /**
   * @param {RequestRef} request
   * @returns {Promise<import("./state.js").PermissionRequest>} the resolved request
   */
  accept(request) {
    return this.#resolve(request, "accept");
  }

  /**
   * @param {RequestRef} request
   * @param {string} [reason] told to the requester
   * @returns {Promise<import("./state.js").PermissionRequest>} the resolved request
   */
  reject(request, reason) {
    return this.#resolve(request, "reject", reason ? { reason } : {});
  }

  /**
   * @param {RequestRef} request
   * @returns {Promise<import("./state.js").PermissionRequest>} the resolved request
   */
  async cancel(request) {
    const data = await this.client.request("DELETE", `${this.path}/permission-requests/${requestId(request)}`);
    return this.#resolvedRequest(data);
  }

  /**
   * @param {string} userId
   * @param {readonly import("./state.js").Capability[]} capabilities
   * @returns {Promise<string[]>} the user's capabilities now
   */
  grantPermissions(userId, capabilities) {
    return this.#userPermissions(userId, { grant: checkCapabilities(capabilities) });
  }

  /**
   * @param {string} userId
   * @param {readonly import("./state.js").Capability[]} capabilities
   * @returns {Promise<string[]>} the user's capabilities now
   */
  revokePermissions(userId, capabilities) {
    return this.#userPermissions(userId, { revoke: checkCapabilities(capabilities) });
  }

  /**
   * Force-mute users' published media; with no kind set, every kind.
   * @param {readonly string[]} userIds
   * @param {MuteKinds} [kinds]
   * @returns {Promise<void>}
   */
  async mute(userIds, kinds = {}) {
    await this.client.request("POST", `${this.path}/mute`, muteBody(userIds, kinds));
  }

  // Media.

  /**
   * The tracks being sent, by source.
   * @returns {Partial<Record<import("./media.js").Source, MediaStreamTrack>>}
   */
  get published() {
    return this._media ? { ...this._media.published } : {};
  }

  /**
   * The tracks being received, by `userId/source`.
   * @returns {Map<string, import("./media.js").RemoteTrack>}
   */
  get remoteTracks() {
    return this._media ? new Map(this._media.remoteTracks) : new Map();
  }

  /**
   * Open the media session without publishing, to receive (`subscribe`: "all" or user ids).
   * @param {{ subscribe?: import("./media.js").Selection }} [options]
   * @returns {Promise<MediaSession>}
   */
  async connectMedia({ subscribe = "all" } = {}) {
    // The SFU takes only participants: after a reconnect, be one again first.
    await this._recovery;
    await this._rejoining;
    if (!this._media || this._media.closed) {
      this._media = new MediaSession(this, { subscribe });
    } else {
      await this._media.subscribe(subscribe);
    }
    await this._media.start();
    return this._media;
  }

  /**
   * Send `track` as `source` once the SFU accepts; rejects with `PublishDeniedError`.
   * @param {import("./media.js").Source} source
   * @param {MediaStreamTrack} track
   * @returns {Promise<void>}
   */
  async publish(source, track) {
    checkSource(source);
    if (!track || track.kind !== SOURCES[source]) {
      throw new TypeError(`${source} takes an ${SOURCES[source]} track`);
    }
    const media = await this.connectMedia();
    await media.publish(source, track);
  }

  /**
   * Stop sending `source` (the track is left running: it is yours).
   * @param {import("./media.js").Source} source
   * @returns {Promise<void>}
   */
  async unpublish(source) {
    checkSource(source);
    if (this._media) await this._media.unpublish(source);
  }

  /**
   * @param {string} [reason] the `media.closed` reason
   * @param {{ tellServer?: boolean }} [options]
   * @returns {Promise<void>}
   */
  async closeMedia(reason = "left", { tellServer = true } = {}) {
    if (this._media) await this._media.close(reason, { tellServer });
  }

  /**
   * The media session's `RTCStatsReport`, or null without one.
   * @returns {Promise<RTCStatsReport | null>}
   */
  async getStats() {
    return this._media && !this._media.closed ? this._media.pc.getStats() : null;
  }

  /**
   * `userId` → audio level (0..1) of every remote microphone, and of your own while published.
   * @returns {Promise<Map<string | null, number>>}
   */
  async audioLevels() {
    return this._media && !this._media.closed ? this._media.audioLevels() : new Map();
  }

  // From the client.

  /**
   * A frame the client received about this call.
   * @param {Frame} frame
   */
  _handleFrame(frame) {
    const type = frame.type;
    if (typeof type !== "string") return;
    if (type === "watch.ok") {
      this._watchWaiter?.resolve(frame);
      return;
    }
    if (type === "call.permission_request_resolved" && typeof frame.request?.id === "string") {
      this._resolved.add(frame.request.id);
    }
    if (type.startsWith("sfu.")) {
      const sfuFrame = /** @type {SfuFrame} */ (frame);
      this._media?.handle(sfuFrame);
      this._emit(sfuFrame);
      return;
    }
    if (frame.type === "error") {
      const error = PodiumError.fromBody(0, frame);
      if (String(frame.in_reply_to || "").startsWith("sfu.")) this._media?.fail(error);
      if (frame.in_reply_to === "watch") this._watchWaiter?.reject(error);
      this._emit(frame);
      return;
    }
    if (!type.startsWith("call.")) return;
    const event = /** @type {CallEvent} */ (frame);
    if (!this.#firstArrival(event)) return;
    // False when an HTTP answer that overtook this frame brought its change already.
    const fresh = this.state.applyEvent(event, this.client.userId);
    if (event.type === "call.participant_left" && event.participant?.user_id === this.client.userId) {
      this.#leftByServer(event.reason);
    }
    if (!fresh) {
      this._emit(event);
      return;
    }
    if (PHASE_EVENTS.has(type)) {
      this.#reread()
        .catch(() => this.#changed())
        .finally(() => this._emit(event));
      return;
    }
    this.#changed();
    this._emit(event);
  }

  /**
   * Whether the handlers have not seen this call event yet (and now will): an event at or
   * below the first snapshot's seq, or a frame already handled, reaches no handler.
   * @param {CallEvent} event
   */
  #firstArrival(event) {
    if (!Number.isInteger(event.seq)) return true;
    if (this._handledSeq !== null && event.seq <= this._handledSeq) return false;
    this._handledSeq = event.seq;
    return true;
  }

  /** The client's WebSocket closed. */
  _disconnected() {
    // The server ends a user's media session with their last WebSocket.
    if (this._media && !this._media.closed) this._media.close("lost", { tellServer: false });
    this._watchWaiter?.reject(new PodiumError("the WebSocket closed", { code: "network_error" }));
  }

  /** The client's WebSocket is open again after a drop. */
  _reconnected() {
    if (!this._watching && !this.#mayRejoin()) return;
    const recovery = this.#recover().finally(() => {
      if (this._recovery === recovery) this._recovery = null;
    });
    this._recovery = recovery;
  }

  /**
   * Hand an event to the handlers of its type (and, for call events, to `"*"`).
   * @param {Event} event
   */
  _emit(event) {
    const targets = [...(this._handlers.get(event.type) || [])];
    if (event.type.startsWith("call.")) targets.push(...(this._handlers.get("*") || []));
    runHandlers(targets, event);
  }

  // Helpers.

  /**
   * Re-watch from the last seq seen and re-join (the server may have removed us while we
   * were away; joining again is harmless otherwise). The join is sent at once, but its
   * answer is applied after the replay, so that handlers see every event missed.
   */
  async #recover() {
    const joining = this.#mayRejoin() ? this.client.request("POST", `${this.path}/join`) : null;
    joining?.catch(() => {}); // awaited below, unless the watch fails first
    try {
      if (this._watching) await this.#watch();
      if (joining) this.#rejoined(await joining);
    } catch (error) {
      // Dropped again: the next reconnect recovers.
      if (this.client.connected) this.#reportError(error);
    }
  }

  /**
   * The server removed us from the call (or saw us leave, e.g. from another tab).
   * @param {string | undefined} reason
   */
  #leftByServer(reason) {
    const disconnected = reason === "disconnected";
    // First, so that a `media.closed` handler reconnecting media waits for it.
    if (disconnected && this.#mayRejoin() && !this._rejoining) {
      this._rejoining = this.client
        .request("POST", `${this.path}/join`)
        .then((data) => this.#rejoined(data))
        .catch((error) => this.#reportError(error))
        .finally(() => {
          this._rejoining = null;
        });
    }
    // Our media session ended with our participation.
    if (this._media && !this._media.closed) {
      this._media.close(disconnected ? "lost" : "left", { tellServer: false });
    }
  }

  #mayRejoin() {
    return this._joined && !this.state.ended && !this.state.blockedUserIds.has(/** @type {string} */ (this.client.userId));
  }

  /** @param {import("./state.js").CallSnapshot} data */
  #rejoined(data) {
    if (!this._joined) return; // left meanwhile
    this.mediaInfo = data.media ?? this.mediaInfo;
    this.#apply(data);
  }

  /** @param {unknown} error */
  #reportError(error) {
    const { code, message } = /** @type {{ code?: string, message?: string }} */ (error);
    this._emit({ type: "error", call_cid: this.cid, error: { code, message } });
  }

  async #watch() {
    /** @type {import("./waiting.js").Deferred<WatchOk>} */
    const waiter = deferred();
    this._watchWaiter = waiter;
    const since = this.state.seq >= 0 ? this.state.seq : undefined;
    await this.client.send({ type: "watch", call_cid: this.cid, since, ...(this._audience ? { audience: true } : {}) });
    try {
      await within(waiter.promise, this.client.timeoutMs, `watch.ok for ${this.cid}`);
    } finally {
      if (this._watchWaiter === waiter) this._watchWaiter = null;
    }
    this._watching = true;
  }

  /**
   * @param {import("./state.js").CallSnapshot} data
   * @returns {CallState}
   */
  #snapshot(data) {
    this.#apply(data);
    return this.state;
  }

  /**
   * Apply a snapshot; false if it was older than the state (and so ignored).
   * @param {import("./state.js").CallSnapshot} data
   */
  #apply(data) {
    const applied = this.state.applySnapshot(data);
    if (this._handledSeq === null && this.state.loaded) this._handledSeq = this.state.seq;
    for (const id of Object.keys(this.state.pendingRequests)) {
      if (this._resolved.has(id)) delete this.state.pendingRequests[id];
    }
    this.#changed();
    return applied;
  }

  /**
   * A phase change alters capabilities the event does not carry: re-read them. A read
   * answered before a later event arrived is older than the state and ignored, so it
   * is read again, a few times at most.
   */
  async #reread() {
    for (let attempt = 0; attempt < PHASE_REREADS; attempt += 1) {
      if (this.#apply(await this.client.request("GET", this.path))) return;
    }
  }

  #changed() {
    for (const handler of [...this._stateHandlers]) {
      try {
        handler(this.state);
      } catch (error) {
        reportHandlerError({ type: "state" }, error);
      }
    }
  }

  /**
   * @param {RequestRef} request
   * @param {"accept" | "reject"} action
   * @param {{ reason?: string }} [body]
   */
  async #resolve(request, action, body = {}) {
    const id = requestId(request);
    const data = await this.client.request("POST", `${this.path}/permission-requests/${id}/${action}`, body);
    return this.#resolvedRequest(data);
  }

  /**
   * @param {import("./http.js").JsonObject} data
   * @returns {import("./state.js").PermissionRequest}
   */
  #resolvedRequest(data) {
    /** @type {import("./state.js").PermissionRequest} */
    const request = data.request || {};
    if (typeof request.id === "string" && request.state !== "pending") {
      this._resolved.add(request.id);
      if (Object.hasOwn(this.state.pendingRequests, request.id)) {
        delete this.state.pendingRequests[request.id];
        this.#changed();
      }
    }
    return request;
  }

  /**
   * @param {string} userId
   * @param {{ grant?: string[], revoke?: string[] }} change
   * @returns {Promise<string[]>}
   */
  async #userPermissions(userId, { grant = [], revoke = [] }) {
    const data = await this.client.request("POST", `${this.path}/user-permissions`, {
      user_id: checkId(userId, "user id"),
      grant,
      revoke,
    });
    return data.own_capabilities || [];
  }
}
