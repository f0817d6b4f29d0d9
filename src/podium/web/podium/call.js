// One call: its state and events, its HTTP actions, and its media session.

import { PodiumError, reportHandlerError } from "./errors.js";
import { MediaSession, SOURCES, checkSource } from "./media.js";
import { PermissionHandle } from "./permission.js";
import { CallState, checkCapabilities, checkCapability } from "./state.js";
import { deferred, within } from "./waiting.js";

const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const PHASE_EVENTS = new Set(["call.live_started", "call.live_stopped", "call.ended"]);
// Reads of the call after a phase change, until one is not older than the state.
const PHASE_REREADS = 3;

export function checkId(value, what) {
  if (typeof value !== "string" || !ID_PATTERN.test(value)) {
    throw new TypeError(`${what} must be 1-64 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** One call: its state, events, moderation actions and media. */
export class Call {
  constructor(client, type, id) {
    this.client = client;
    this.type = type;
    this.id = id;
    this.cid = `${type}:${id}`;
    this.state = new CallState(this.cid);
    this.mediaInfo = null;
    this._handlers = new Map();
    this._stateHandlers = new Set();
    this._watching = false;
    this._watchWaiter = null;
    // Joined and not left: after a reconnect, or removed for being disconnected, join again.
    this._joined = false;
    // The re-watch and re-join after a reconnect, and a re-join on its own (never reject).
    this._recovery = null;
    this._rejoining = null;
    this._media = null;
    // Requests this client saw resolved: a snapshot read just before must not bring them back.
    this._resolved = new Set();
  }

  get path() {
    return `/v1/calls/${encodeURIComponent(this.type)}/${encodeURIComponent(this.id)}`;
  }

  get watching() {
    return this._watching;
  }

  // State and events.

  /** `handler(state)` after every change of `state`; returns an unsubscribe function. */
  onStateChange(handler) {
    this._stateHandlers.add(handler);
    return () => this._stateHandlers.delete(handler);
  }

  /** `handler(event)` for each event of `type` (`"*"`: every call event); returns an unsubscribe. */
  on(type, handler) {
    if (typeof type !== "string" || !type) throw new TypeError("type must be an event name or '*'");
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(handler);
    return () => this._handlers.get(type)?.delete(handler);
  }

  hasPermission(capability) {
    return this.state.ownCapabilities.has(checkCapability(capability));
  }

  permission(capability) {
    return new PermissionHandle(this, capability);
  }

  // HTTP.

  async getOrCreate({ members, custom } = {}) {
    const body = {};
    if (members) body.members = members;
    if (custom) body.custom = custom;
    return this.#snapshot(await this.client.request("POST", this.path, body));
  }

  async get() {
    return this.#snapshot(await this.client.request("GET", this.path));
  }

  /** Become a participant, and follow the call's events. */
  async join() {
    await this.client.connect();
    const data = await this.client.request("POST", `${this.path}/join`);
    this._joined = true;
    this.mediaInfo = data.media ?? null;
    this.#snapshot(data);
    await this.#watch();
    return this.state;
  }

  /** Read the state and follow the call's events without joining. */
  async watch() {
    await this.client.connect();
    if (!this.state.loaded) await this.get();
    await this.#watch();
    return this.state;
  }

  async unwatch() {
    if (!this._watching) return;
    this._watching = false;
    if (this.client.connected) await this.client.send({ type: "unwatch", call_cid: this.cid });
  }

  /** Close media, stop being a participant, and stop following events. */
  async leave() {
    this._joined = false;
    await this.closeMedia("left");
    const data = await this.client.request("POST", `${this.path}/leave`);
    this.#snapshot(data);
    await this.unwatch();
    return this.state;
  }

  async goLive() {
    return this.#snapshot(await this.client.request("POST", `${this.path}/go-live`));
  }

  async stopLive() {
    return this.#snapshot(await this.client.request("POST", `${this.path}/stop-live`));
  }

  async end() {
    return this.#snapshot(await this.client.request("POST", `${this.path}/end`));
  }

  /** Ask for capabilities; resolves to the request (new, or the one already pending). */
  async requestPermissions(capabilities) {
    const data = await this.client.request("POST", `${this.path}/permission-requests`, {
      permissions: checkCapabilities(capabilities),
    });
    const request = data.request || {};
    if (request.state === "pending" && typeof request.id === "string" && !this._resolved.has(request.id)) {
      this.state.pendingRequests[request.id] = { ...request };
      this.#changed();
    }
    return request;
  }

  accept(request) {
    return this.#resolve(request, "accept");
  }

  reject(request, reason) {
    return this.#resolve(request, "reject", reason ? { reason } : {});
  }

  async cancel(request) {
    const data = await this.client.request("DELETE", `${this.path}/permission-requests/${requestId(request)}`);
    return this.#resolvedRequest(data);
  }

  grantPermissions(userId, capabilities) {
    return this.#userPermissions(userId, { grant: checkCapabilities(capabilities) });
  }

  revokePermissions(userId, capabilities) {
    return this.#userPermissions(userId, { revoke: checkCapabilities(capabilities) });
  }

  /** Force-mute users' published media; with no kind set, every kind. */
  async mute(userIds, { audio, video, screenshare } = {}) {
    if (!Array.isArray(userIds)) throw new TypeError("userIds must be an array of user ids");
    const body = { user_ids: userIds.map((u) => checkId(u, "user id")) };
    if (audio !== undefined) body.audio = audio;
    if (video !== undefined) body.video = video;
    if (screenshare !== undefined) body.screenshare = screenshare;
    await this.client.request("POST", `${this.path}/mute`, body);
  }

  // Media.

  get published() {
    return this._media ? { ...this._media.published } : {};
  }

  get remoteTracks() {
    return this._media ? new Map(this._media.remoteTracks) : new Map();
  }

  /** Open the media session without publishing, to receive (`subscribe`: "all" or user ids). */
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

  /** Send `track` as `source` once the SFU accepts; rejects with `PublishDeniedError`. */
  async publish(source, track) {
    checkSource(source);
    if (!track || track.kind !== SOURCES[source]) {
      throw new TypeError(`${source} takes an ${SOURCES[source]} track`);
    }
    const media = await this.connectMedia();
    await media.publish(source, track);
  }

  /** Stop sending `source` (the track is left running: it is yours). */
  async unpublish(source) {
    checkSource(source);
    if (this._media) await this._media.unpublish(source);
  }

  async closeMedia(reason = "left", { tellServer = true } = {}) {
    if (this._media) await this._media.close(reason, { tellServer });
  }

  /** The media session's `RTCStatsReport`, or null without one. */
  async getStats() {
    return this._media && !this._media.closed ? this._media.pc.getStats() : null;
  }

  /** `userId` → audio level (0..1) of every remote microphone, and of your own while published. */
  async audioLevels() {
    return this._media && !this._media.closed ? this._media.audioLevels() : new Map();
  }

  // From the client.

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
      this._media?.handle(frame);
      this._emit(frame);
      return;
    }
    if (type === "error") {
      const error = PodiumError.fromBody(0, frame);
      if (String(frame.in_reply_to || "").startsWith("sfu.")) this._media?.fail(error);
      if (frame.in_reply_to === "watch") this._watchWaiter?.reject(error);
      this._emit(frame);
      return;
    }
    if (!type.startsWith("call.")) return;
    const changed = this.state.applyEvent(frame, this.client.userId);
    if (!changed) return;
    if (type === "call.participant_left" && frame.participant?.user_id === this.client.userId) {
      this.#leftByServer(frame.reason);
    }
    if (PHASE_EVENTS.has(type)) {
      this.#reread()
        .catch(() => this.#changed())
        .finally(() => this._emit(frame));
      return;
    }
    this.#changed();
    this._emit(frame);
  }

  _disconnected() {
    // The server ends a user's media session with their last WebSocket.
    if (this._media && !this._media.closed) this._media.close("lost", { tellServer: false });
    this._watchWaiter?.reject(new PodiumError("the WebSocket closed", { code: "network_error" }));
  }

  _reconnected() {
    if (!this._watching && !this.#mayRejoin()) return;
    const recovery = this.#recover().finally(() => {
      if (this._recovery === recovery) this._recovery = null;
    });
    this._recovery = recovery;
  }

  /** Hand an event to the handlers of its type (and, for call events, to `"*"`). */
  _emit(event) {
    const targets = [...(this._handlers.get(event.type) || [])];
    if (event.type.startsWith("call.")) targets.push(...(this._handlers.get("*") || []));
    for (const handler of targets) {
      try {
        const result = handler(event);
        if (result && typeof result.catch === "function") result.catch((e) => reportHandlerError(event, e));
      } catch (error) {
        reportHandlerError(event, error);
      }
    }
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

  /** The server removed us from the call (or saw us leave, e.g. from another tab). */
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
    return this._joined && !this.state.ended && !this.state.blockedUserIds.has(this.client.userId);
  }

  #rejoined(data) {
    if (!this._joined) return; // left meanwhile
    this.mediaInfo = data.media ?? this.mediaInfo;
    this.#apply(data);
  }

  #reportError(error) {
    this._emit({ type: "error", call_cid: this.cid, error: { code: error.code, message: error.message } });
  }

  async #watch() {
    const waiter = deferred();
    this._watchWaiter = waiter;
    const since = this.state.seq >= 0 ? this.state.seq : undefined;
    await this.client.send({ type: "watch", call_cid: this.cid, since });
    try {
      await within(waiter.promise, this.client.timeoutMs, `watch.ok for ${this.cid}`);
    } finally {
      if (this._watchWaiter === waiter) this._watchWaiter = null;
    }
    this._watching = true;
  }

  #snapshot(data) {
    this.#apply(data);
    return this.state;
  }

  /** Apply a snapshot; false if it was older than the state (and so ignored). */
  #apply(data) {
    const applied = this.state.applySnapshot(data);
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

  async #resolve(request, action, body = {}) {
    const id = requestId(request);
    const data = await this.client.request("POST", `${this.path}/permission-requests/${id}/${action}`, body);
    return this.#resolvedRequest(data);
  }

  #resolvedRequest(data) {
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

  async #userPermissions(userId, { grant = [], revoke = [] }) {
    const data = await this.client.request("POST", `${this.path}/user-permissions`, {
      user_id: checkId(userId, "user id"),
      grant,
      revoke,
    });
    return data.own_capabilities || [];
  }
}

function requestId(request) {
  const id = typeof request === "string" ? request : request?.id;
  return encodeURIComponent(checkId(id, "request id"));
}
