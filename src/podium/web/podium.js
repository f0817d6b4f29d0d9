// podium.js: Podium's browser client library (one ES module, no dependencies, no build step).
//
// It mirrors the Python SDK (`podium.client`): a `Client` holds the token and
// the one WebSocket of the page; `client.call(type, id)` gives a `Call` whose
// `state` is kept current from the server's snapshots and events, whose
// `permission(cap)` handles say what the user may do or request, and which
// publishes and receives media through Podium's SFU over one
// RTCPeerConnection. Reference: docs/podium-js.md.

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

/** Each source a participant publishes and its track kind, in the m-line order the SFU reads. */
export const SOURCES = Object.freeze({ microphone: "audio", camera: "video", screen: "video" });

/** The capability each source needs. */
export const SOURCE_CAPABILITY = Object.freeze({
  microphone: "send-audio",
  camera: "send-video",
  screen: "screenshare",
});

const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const PHASE_EVENTS = new Set(["call.live_started", "call.live_stopped", "call.ended"]);
// Reads of the call after a phase change, until one is not older than the state.
const PHASE_REREADS = 3;
// A `sfu.stop_source` with one of these reasons means the server ended the whole media session.
// Not `left`: the server sends it for every way a session ends and then says which
// (`sfu.error` `replaced`, the participant leaving), so that reason is not lost.
const SESSION_ENDING = new Set(["blocked", "call_ended"]);
const DEFAULT_TIMEOUT_MS = 15000;
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 5000, 10000];
const WS_OPEN = 1;
// The server closes with this code when the token is refused: reconnecting would not help.
const WS_AUTH_FAILED = 4001;

/** An error the server answered (`status`, `code`, `details` from its error object), or a local one. */
export class PodiumError extends Error {
  constructor(message, { status = 0, code = "client_error", details = {} } = {}) {
    super(message);
    this.name = "PodiumError";
    this.status = status;
    this.code = code;
    this.details = details;
  }

  static fromBody(status, body) {
    const error = body && typeof body === "object" ? body.error : null;
    if (error && typeof error === "object") {
      return new PodiumError(String(error.message || error.code || `HTTP ${status}`), {
        status,
        code: String(error.code || "error"),
        details: error.details && typeof error.details === "object" ? error.details : {},
      });
    }
    return new PodiumError(`HTTP ${status}`, { status, code: "http_error" });
  }
}

/** The SFU refused to take a source: the capability is missing. */
export class PublishDeniedError extends PodiumError {
  constructor(source, capability, reason) {
    super(`publishing ${source} needs ${capability} (${reason})`, {
      code: "publish_denied",
      details: { source, capability, reason },
    });
    this.name = "PublishDeniedError";
    this.source = source;
    this.capability = capability;
    this.reason = reason;
  }
}

export function checkCapability(capability) {
  if (!CAPABILITIES.includes(capability)) {
    throw new TypeError(`unknown capability ${JSON.stringify(capability)}`);
  }
  return capability;
}

function checkCapabilities(capabilities) {
  if (!Array.isArray(capabilities) || capabilities.length === 0) {
    throw new TypeError("pass a non-empty array of capability names");
  }
  return [...new Set(capabilities.map(checkCapability))];
}

function checkId(value, what) {
  if (typeof value !== "string" || !ID_PATTERN.test(value)) {
    throw new TypeError(`${what} must be 1-64 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkSource(source) {
  if (!Object.hasOwn(SOURCES, source)) {
    throw new TypeError(`source must be one of ${Object.keys(SOURCES).join(", ")}, got ${source}`);
  }
  return source;
}

/** The payload of a JWT, decoded but not verified (the server verifies it); null if unreadable. */
export function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = part + "=".repeat((4 - (part.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
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

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  // A waiter that nobody awaits any more must not surface as an unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

function within(promise, timeoutMs, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new PodiumError(`no ${what} within ${timeoutMs} ms`, { code: "timeout" })),
      timeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
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

/** What the user may do with one capability in one call. */
export class PermissionHandle {
  constructor(call, capability) {
    this.call = call;
    this.capability = checkCapability(capability);
  }

  get hasPermission() {
    return this.call.state.ownCapabilities.has(this.capability);
  }

  /** Your pending request that asks for this capability, if any. */
  get pendingRequest() {
    const userId = this.call.client.userId;
    if (!userId) return null;
    const requests = this.call.state.pendingOf(userId);
    return requests.find((r) => (r.permissions || []).includes(this.capability)) ?? null;
  }

  get isAwaitingPermission() {
    return this.pendingRequest !== null;
  }

  /** Requestable in the call type, not held, not awaiting, and you are in the call. */
  get canRequestPermission() {
    const state = this.call.state;
    const userId = this.call.client.userId;
    return (
      Boolean(userId) &&
      state.requestable.has(this.capability) &&
      !this.hasPermission &&
      !this.isAwaitingPermission &&
      state.isMemberOrParticipant(userId)
    );
  }

  /** Ask for the capability; resolves to the (new or already pending) request. */
  request() {
    return this.call.requestPermissions([this.capability]);
  }
}

/** The page's connection to a Podium server: its token, HTTP calls and one WebSocket. */
export class Client {
  constructor({ token, baseUrl, fetch, WebSocket, loopbackOnly = false, timeoutMs } = {}) {
    if (typeof token !== "string" || !token) throw new TypeError("a Client needs a token");
    this.token = token;
    this.baseUrl = String(baseUrl ?? globalThis.location.origin).replace(/\/+$/, "");
    /** Offer the SFU only 127.0.0.1 candidates (tests and one-machine demos). */
    this.loopbackOnly = loopbackOnly;
    this.timeoutMs = timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.claims = tokenClaims(token);
    this._fetch = fetch ?? globalThis.fetch.bind(globalThis);
    this._WebSocket = WebSocket ?? globalThis.WebSocket;
    this._calls = new Map();
    this._socket = null;
    // The socket being opened, until its `connection.ok` (closing the client closes it too).
    this._opening = null;
    this._connecting = null;
    this._closed = false;
    this._reconnects = 0;
    this._reconnectTimer = null;
    this._connectionState = "disconnected";
    this._connectionHandlers = new Set();
    // Set once a connection was ready: every later one is a reconnection.
    this._everConnected = false;
  }

  /** The token's `sub`. */
  get userId() {
    return typeof this.claims?.sub === "string" ? this.claims.sub : null;
  }

  /** The token's `name`. */
  get userName() {
    return typeof this.claims?.name === "string" ? this.claims.name : null;
  }

  get connected() {
    return this._socket !== null && this._socket.readyState === WS_OPEN;
  }

  /**
   * `disconnected` (before `connect()`), `connecting`, `connected`, `reconnecting` (the
   * WebSocket dropped and is being opened again) or `closed` (by `close()`, or the server
   * refused the token: no reconnecting).
   */
  get connectionState() {
    return this._connectionState;
  }

  /** `handler(state)` whenever `connectionState` changes; returns an unsubscribe function. */
  onConnectionStateChange(handler) {
    this._connectionHandlers.add(handler);
    return () => this._connectionHandlers.delete(handler);
  }

  /** The `Call` for `type`/`id` (one object per call). */
  call(type, id) {
    const cid = `${checkId(type, "call type")}:${checkId(id, "call id")}`;
    if (!this._calls.has(cid)) this._calls.set(cid, new Call(this, type, id));
    return this._calls.get(cid);
  }

  async queryCalls({ type, live } = {}) {
    const query = new URLSearchParams();
    if (type !== undefined) query.set("type", type);
    if (live !== undefined) query.set("live", String(live));
    const suffix = query.toString() ? `?${query}` : "";
    const data = await this.request("GET", `/v1/calls${suffix}`);
    return data.calls || [];
  }

  async callTypes() {
    const data = await this.request("GET", "/v1/call-types");
    return data.call_types || [];
  }

  /** Open the WebSocket (once); resolves on the server's `connection.ok`. */
  connect() {
    if (this._closed) return Promise.reject(new PodiumError("the client is closed"));
    if (this.connected) return Promise.resolve();
    if (!this._connecting) {
      if (this._connectionState !== "reconnecting") this.#setConnectionState("connecting");
      this._connecting = this.#open()
        .catch((error) => {
          if (this._connectionState === "connecting") this.#setConnectionState("disconnected");
          throw error;
        })
        .finally(() => {
          this._connecting = null;
        });
    }
    return this._connecting;
  }

  /** Close the WebSocket and every media session; the client cannot be used again. */
  close() {
    this._closed = true;
    clearTimeout(this._reconnectTimer);
    for (const call of this._calls.values()) call.closeMedia("left", { tellServer: false });
    for (const socket of [this._socket, this._opening]) socket?.close(1000, "client closed");
    this._socket = null;
    this._opening = null;
    this.#setConnectionState("closed");
  }

  /** One HTTP call to the API; resolves to the JSON body, rejects with `PodiumError`. */
  async request(method, path, body) {
    const headers = { Authorization: `Bearer ${this.token}` };
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetchJson(this._fetch, `${this.baseUrl}${path}`, init);
  }

  /** Send one frame on the WebSocket (connecting first if needed). */
  async send(frame) {
    await this.connect();
    this._socket.send(JSON.stringify(frame));
  }

  /** Mint a user token on a server started with `--dev`; resolves to the token. */
  static async devToken({ userId, name, role, baseUrl, fetch } = {}) {
    const body = { user_id: checkId(userId, "user id") };
    if (name) body.name = name;
    if (role) body.role = role;
    const data = await fetchJson(fetch ?? globalThis.fetch.bind(globalThis), `${origin(baseUrl)}/v1/dev/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    return data.token;
  }

  /** `{ version, dev, media_loopback }`: what a page needs to know before it has a token. */
  static serverInfo(baseUrl, fetch) {
    return fetchJson(fetch ?? globalThis.fetch.bind(globalThis), `${origin(baseUrl)}/v1/server`, {
      method: "GET",
    });
  }

  #open() {
    return new Promise((resolve, reject) => {
      const url = `${this.baseUrl.replace(/^http/, "ws")}/v1/ws?token=${encodeURIComponent(this.token)}`;
      const socket = new this._WebSocket(url);
      this._opening = socket;
      let ready = false;
      socket.onmessage = (message) => {
        let frame;
        try {
          frame = JSON.parse(message.data);
        } catch {
          return;
        }
        if (!ready && frame.type === "connection.ok") {
          ready = true;
          if (this._opening === socket) this._opening = null;
          if (this._closed) {
            socket.close(1000, "client closed");
            reject(new PodiumError("the client is closed"));
            return;
          }
          this._socket = socket;
          this._reconnects = 0;
          clearTimeout(this._reconnectTimer);
          const reconnected = this._everConnected;
          this._everConnected = true;
          // Before anyone hears "connected": a call's media then waits for its re-join.
          if (reconnected) for (const call of this._calls.values()) call._reconnected();
          this.#setConnectionState("connected");
          resolve();
          return;
        }
        this.#dispatch(frame);
      };
      socket.onerror = () => {
        if (!ready) reject(new PodiumError(`cannot connect to ${this.baseUrl}`, { code: "network_error" }));
      };
      socket.onclose = (event) => {
        if (this._opening === socket) this._opening = null;
        if (!ready) {
          const code = event.code === WS_AUTH_FAILED ? "invalid_token" : "network_error";
          reject(new PodiumError(event.reason || "the WebSocket closed before it was ready", { code }));
          return;
        }
        if (this._socket !== socket) return;
        this._socket = null;
        const reconnecting = !this._closed && event.code !== WS_AUTH_FAILED;
        if (reconnecting) this.#reconnectLater();
        for (const call of this._calls.values()) call._disconnected(event);
        this.#setConnectionState(reconnecting ? "reconnecting" : "closed");
      };
    });
  }

  #reconnectLater() {
    const delay = RECONNECT_DELAYS_MS[Math.min(this._reconnects, RECONNECT_DELAYS_MS.length - 1)];
    this._reconnects += 1;
    this._reconnectTimer = setTimeout(async () => {
      try {
        await this.connect();
      } catch (error) {
        if (this._closed) return;
        // A token refused now (it expired meanwhile) will be refused on every try.
        if (error.code === "invalid_token") this.#setConnectionState("closed");
        else this.#reconnectLater();
      }
    }, delay);
  }

  #setConnectionState(state) {
    if (this._connectionState === state) return;
    this._connectionState = state;
    for (const handler of [...this._connectionHandlers]) {
      try {
        handler(state);
      } catch (error) {
        reportHandlerError({ type: "connection state" }, error);
      }
    }
  }

  #dispatch(frame) {
    if (frame.type === "health.check") {
      this._socket?.send(JSON.stringify({ type: "health.check" }));
      return;
    }
    const call = typeof frame.call_cid === "string" ? this._calls.get(frame.call_cid) : undefined;
    if (call) call._handleFrame(frame);
  }
}

function origin(baseUrl) {
  return String(baseUrl ?? globalThis.location.origin).replace(/\/+$/, "");
}

async function fetchJson(fetchImpl, url, init) {
  let response;
  try {
    response = await fetchImpl(url, init);
  } catch (error) {
    throw new PodiumError(`cannot reach ${url}: ${error.message}`, { code: "network_error" });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw PodiumError.fromBody(response.status, data);
  return data ?? {};
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

function reportHandlerError(event, error) {
  console.error(`podium.js: a handler for ${event.type} failed`, error);
}

/**
 * One call's RTCPeerConnection with the SFU. The client offers three sendrecv
 * m-lines (audio, video, video: microphone, camera, screen), which the SFU
 * also uses to send remote tracks back; further remote tracks arrive in the
 * server's offers, which the session answers. Publishing puts the track on
 * its m-line with `replaceTrack`, without renegotiating.
 */
class MediaSession {
  constructor(call, { subscribe }) {
    this.call = call;
    this.closed = false;
    this.published = {};
    this.remoteTracks = new Map();
    this.selection = subscribe;
    const iceServers = call.mediaInfo?.ice_servers ?? [];
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    this.transceivers = {};
    for (const [source, kind] of Object.entries(SOURCES)) {
      this.transceivers[source] = this.pc.addTransceiver(kind, { direction: "sendrecv" });
    }
    this._trackList = [];
    this._inbox = Promise.resolve();
    this._started = null;
    this._offerSent = false;
    this._pendingCandidates = [];
    this._answered = deferred();
    this._connected = deferred();
    this._publishing = { microphone: [], camera: [], screen: [] };
    this._locks = { microphone: Promise.resolve(), camera: Promise.resolve(), screen: Promise.resolve() };
    this.pc.onicecandidate = (event) => this.#sendCandidate(event.candidate);
    this.pc.onconnectionstatechange = () => this.#onConnectionState();
    this.pc.ontrack = () => this.#reconcile();
  }

  start() {
    if (!this._started) this._started = this.#start();
    return this._started;
  }

  async publish(source, track) {
    await this.start();
    return this.#serially(source, async () => {
      this.#checkOpen();
      const accepted = deferred();
      this._publishing[source].push(accepted);
      this.#send({ type: "sfu.publish", source });
      await within(accepted.promise, this.call.client.timeoutMs, `sfu.publish_ok for ${source}`);
      this.#checkOpen();
      await this.transceivers[source].sender.replaceTrack(track);
      this.published[source] = track;
      track.addEventListener("ended", () => this.#endedByItself(source, track), { once: true });
    });
  }

  unpublish(source) {
    return this.#serially(source, async () => {
      const track = this.published[source];
      delete this.published[source];
      if (!this.closed) {
        await this.transceivers[source].sender.replaceTrack(null);
        if (track && this._started) this.#send({ type: "sfu.unpublish", source });
      }
    });
  }

  async subscribe(selection) {
    this.selection = selection;
    if (this._offerSent && !this.closed) this.#send({ type: "sfu.subscribe", user_ids: selection });
  }

  async close(reason = "left", { tellServer = true } = {}) {
    if (this.closed) return;
    if (tellServer && this._offerSent && this.call.client.connected) this.#send({ type: "sfu.leave" });
    for (const source of Object.keys(this.published)) this.#stopSource(source, reason);
    this.closed = true;
    this.fail(new PodiumError(`the media session of ${this.call.cid} closed (${reason})`, { code: "media_closed" }));
    this._trackList = [];
    this.#reconcile();
    this.pc.close();
    this.call._emit({ type: "media.closed", call_cid: this.call.cid, reason });
  }

  /** Fail everything waiting on the server (a refused frame, or the session closing). */
  fail(error) {
    this._answered.reject(error);
    this._connected.reject(error);
    for (const waiting of Object.values(this._publishing)) {
      for (const waiter of waiting.splice(0)) waiter.reject(error);
    }
  }

  handle(frame) {
    if (this.closed) return;
    const { type, source } = frame;
    if (type === "sfu.offer" || type === "sfu.answer" || type === "sfu.candidate" || type === "sfu.tracks") {
      // In order: a track's mid exists only once the offer that adds it is applied.
      this._inbox = this._inbox.then(() => this.#negotiate(frame)).catch((error) => {
        console.error(`podium.js: media negotiation of ${this.call.cid} failed`, error);
        this.close("connection_failed");
      });
    } else if (type === "sfu.publish_ok") {
      this._publishing[source]?.shift()?.resolve();
    } else if (type === "sfu.publish_denied") {
      this._publishing[source]?.shift()?.reject(new PublishDeniedError(source, frame.capability, frame.reason));
    } else if (type === "sfu.stop_source") {
      this.#stopSource(source, frame.reason);
      if (SESSION_ENDING.has(frame.reason)) this.close(frame.reason, { tellServer: false });
    } else if (type === "sfu.source_resumed") {
      this.call._emit({ type: "media.source_resumed", call_cid: this.call.cid, source });
    } else if (type === "sfu.error") {
      if (frame.code === "offer_required") {
        this.close("lost", { tellServer: false });
      } else if (frame.code === "replaced") {
        // Another tab or connection of this user offered: the session is theirs now.
        this.close("replaced", { tellServer: false });
      } else {
        this.fail(new PodiumError(`sfu.error ${frame.code}: ${frame.message}`, { code: frame.code }));
      }
    }
  }

  async audioLevels() {
    const levels = new Map();
    const report = await this.pc.getStats();
    const byMid = new Map(this._trackList.filter((t) => t.source === "microphone").map((t) => [t.mid, t.user_id]));
    report.forEach((stats) => {
      if (stats.type === "inbound-rtp" && stats.kind === "audio" && byMid.has(stats.mid)) {
        levels.set(byMid.get(stats.mid), stats.audioLevel ?? 0);
      } else if (stats.type === "media-source" && stats.kind === "audio" && this.published.microphone) {
        if (stats.trackIdentifier === this.published.microphone.id) {
          levels.set(this.call.client.userId, stats.audioLevel ?? 0);
        }
      }
    });
    return levels;
  }

  async #start() {
    try {
      await this.pc.setLocalDescription();
      this.#send({ type: "sfu.offer", sdp: this.pc.localDescription.sdp });
      this._offerSent = true;
      this._pendingCandidates.splice(0).forEach((c) => this.#sendCandidate(c));
      const timeout = this.call.client.timeoutMs;
      await within(this._answered.promise, timeout, "the SFU's sfu.answer");
      this.#send({ type: "sfu.subscribe", user_ids: this.selection });
      await within(this._connected.promise, timeout, "a media connection");
    } catch (error) {
      await this.close("connection_failed");
      throw error;
    }
  }

  async #negotiate(frame) {
    if (frame.type === "sfu.tracks") {
      this._trackList = Array.isArray(frame.tracks) ? frame.tracks : [];
    } else if (frame.type === "sfu.answer") {
      await this.pc.setRemoteDescription({ type: "answer", sdp: frame.sdp });
      this._answered.resolve();
    } else if (frame.type === "sfu.offer") {
      await this.pc.setRemoteDescription({ type: "offer", sdp: frame.sdp });
      await this.pc.setLocalDescription();
      this.#send({ type: "sfu.answer", sdp: this.pc.localDescription.sdp });
    } else if (frame.type === "sfu.candidate" && frame.candidate) {
      await this.pc.addIceCandidate({
        candidate: frame.candidate,
        sdpMid: frame.sdp_mid,
        sdpMLineIndex: frame.sdp_mline_index,
      });
    }
    this.#reconcile();
  }

  /** Map the announced tracks to receivers by mid; emit what was removed, then what was added. */
  #reconcile() {
    const byMid = new Map(this.pc.getTransceivers().filter((t) => t.mid !== null).map((t) => [t.mid, t]));
    const current = new Map();
    for (const entry of this._trackList) {
      const transceiver = byMid.get(entry.mid);
      if (!transceiver || this.closed) continue;
      const key = `${entry.user_id}/${entry.source}`;
      current.set(key, { userId: entry.user_id, source: entry.source, track: transceiver.receiver.track, mid: entry.mid });
    }
    const previous = this.remoteTracks;
    this.remoteTracks = current;
    for (const [key, entry] of previous) {
      if (current.get(key)?.track !== entry.track) this.#emitTrack("media.track_removed", entry);
    }
    for (const [key, entry] of current) {
      if (previous.get(key)?.track !== entry.track) this.#emitTrack("media.track_added", entry);
    }
  }

  #emitTrack(type, entry) {
    this.call._emit({ type, call_cid: this.call.cid, ...entry });
  }

  /** The server stopped `source` (forwarding already has): stop sending and stop the track. */
  #stopSource(source, reason) {
    const track = this.published[source];
    delete this.published[source];
    if (!this.closed) this.transceivers[source]?.sender.replaceTrack(null).catch(() => {});
    if (track) track.stop();
    this.call._emit({ type: "media.source_stopped", call_cid: this.call.cid, source, reason, track: track ?? null });
  }

  #endedByItself(source, track) {
    if (this.published[source] !== track) return;
    this.unpublish(source).catch(() => {});
    this.call._emit({ type: "media.source_stopped", call_cid: this.call.cid, source, reason: "ended", track });
  }

  #sendCandidate(candidate) {
    if (this.closed) return;
    if (!this._offerSent) {
      this._pendingCandidates.push(candidate);
      return;
    }
    if (!candidate || !candidate.candidate) {
      this.#send({ type: "sfu.candidate", candidate: "" });
      return;
    }
    if (this.call.client.loopbackOnly && candidate.address !== "127.0.0.1") return;
    this.#send({
      type: "sfu.candidate",
      candidate: candidate.candidate,
      sdp_mid: candidate.sdpMid,
      sdp_mline_index: candidate.sdpMLineIndex,
    });
  }

  #onConnectionState() {
    const state = this.pc.connectionState;
    if (state === "connected") this._connected.resolve();
    if (state === "failed" && !this.closed) this.close("connection_failed");
  }

  #serially(source, work) {
    const run = this._locks[source].then(work);
    this._locks[source] = run.catch(() => {});
    return run;
  }

  #checkOpen() {
    if (this.closed) throw new PodiumError(`the media session of ${this.call.cid} is closed`, { code: "media_closed" });
  }

  #send(frame) {
    this.call.client.send({ ...frame, call_cid: this.call.cid }).catch((error) => this.fail(error));
  }
}
