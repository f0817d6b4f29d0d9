// The client: the token, HTTP to the API, and the page's one WebSocket with its reconnects.

import { Call } from "./call.js";
import { checkId } from "./requests.js";
import { PodiumError, reportHandlerError } from "./errors.js";
import { fetchJson, origin } from "./http.js";
import { callCid } from "./protocol.js";

const DEFAULT_TIMEOUT_MS = 15000;
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 5000, 10000];
const WS_OPEN = 1;
// The server closes with this code when the token is refused: reconnecting would not help.
const WS_AUTH_FAILED = 4001;

/** @typedef {"disconnected" | "connecting" | "connected" | "reconnecting" | "closed"} ConnectionState */

/**
 * @typedef {object} ClientOptions
 * @property {string} token a user token (`podium token`)
 * @property {string | URL} [baseUrl] the server; the page's origin by default
 * @property {typeof fetch} [fetch] the browser's by default (tests pass their own)
 * @property {typeof WebSocket} [WebSocket] the browser's by default (tests pass their own)
 * @property {boolean} [loopbackOnly] offer the SFU only 127.0.0.1 candidates (the server's `media_loopback`)
 * @property {number} [timeoutMs] bounds every wait on the server (15000)
 */

/**
 * @typedef {object} DevTokenOptions
 * @property {string} userId
 * @property {string} [name]
 * @property {string} [role]
 * @property {string | URL} [baseUrl]
 * @property {typeof fetch} [fetch]
 */

/**
 * What a page needs to know before it has a token.
 * @typedef {object} ServerInfo
 * @property {string} version
 * @property {boolean} dev tokens can be minted at `/v1/dev/token`
 * @property {boolean} media_loopback the SFU offers only 127.0.0.1 candidates
 */

/**
 * The payload of a JWT, decoded but not verified (the server verifies it); null if unreadable.
 * @param {string} token
 * @returns {Record<string, unknown> | null}
 */
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

/** The page's connection to a Podium server: its token, HTTP calls and one WebSocket. */
export class Client {
  /** @param {ClientOptions} options */
  constructor(options) {
    const { token, baseUrl, fetch, WebSocket, loopbackOnly = false, timeoutMs } = options ?? {};
    if (typeof token !== "string" || !token) throw new TypeError("a Client needs a token");
    this.token = token;
    this.baseUrl = origin(baseUrl);
    /** Offer the SFU only 127.0.0.1 candidates (tests and one-machine demos). */
    this.loopbackOnly = loopbackOnly;
    this.timeoutMs = timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.claims = tokenClaims(token);
    this._fetch = fetch ?? globalThis.fetch.bind(globalThis);
    this._WebSocket = WebSocket ?? globalThis.WebSocket;
    /** @type {Map<string, Call>} By call cid. */
    this._calls = new Map();
    /** @type {WebSocket | null} */
    this._socket = null;
    // The socket being opened, until its `connection.ok` (closing the client closes it too).
    /** @type {WebSocket | null} */
    this._opening = null;
    /** @type {Promise<void> | null} */
    this._connecting = null;
    this._closed = false;
    this._reconnects = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._reconnectTimer = undefined;
    /** @type {ConnectionState} */
    this._connectionState = "disconnected";
    /** @type {Set<(state: ConnectionState) => unknown>} */
    this._connectionHandlers = new Set();
    // Set once a connection was ready: every later one is a reconnection.
    this._everConnected = false;
  }

  /**
   * The token's `sub`.
   * @returns {string | null}
   */
  get userId() {
    return typeof this.claims?.sub === "string" ? this.claims.sub : null;
  }

  /**
   * The token's `name`.
   * @returns {string | null}
   */
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
   * @returns {ConnectionState}
   */
  get connectionState() {
    return this._connectionState;
  }

  /**
   * `handler(state)` whenever `connectionState` changes; returns an unsubscribe function.
   * @param {(state: ConnectionState) => unknown} handler
   * @returns {() => void}
   */
  onConnectionStateChange(handler) {
    this._connectionHandlers.add(handler);
    return () => this._connectionHandlers.delete(handler);
  }

  /**
   * The `Call` for `type`/`id` (one object per call).
   * @param {string} type
   * @param {string} id
   * @returns {Call}
   */
  call(type, id) {
    const cid = callCid(checkId(type, "call type"), checkId(id, "call id"));
    if (!this._calls.has(cid)) this._calls.set(cid, new Call(this, type, id));
    return /** @type {Call} */ (this._calls.get(cid));
  }

  /**
   * `GET /v1/calls`: the call objects this user may read.
   * @param {{ type?: string, live?: boolean }} [filter]
   * @returns {Promise<import("./state.js").CallObject[]>}
   */
  async queryCalls({ type, live } = {}) {
    const query = new URLSearchParams();
    if (type !== undefined) query.set("type", type);
    if (live !== undefined) query.set("live", String(live));
    const suffix = query.toString() ? `?${query}` : "";
    const data = await this.request("GET", `/v1/calls${suffix}`);
    return data.calls || [];
  }

  /**
   * `GET /v1/call-types`: the call types and their settings.
   * @returns {Promise<import("./http.js").JsonObject[]>}
   */
  async callTypes() {
    const data = await this.request("GET", "/v1/call-types");
    return data.call_types || [];
  }

  /**
   * Open the WebSocket (once); resolves on the server's `connection.ok`.
   * @returns {Promise<void>}
   */
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

  /**
   * One HTTP call to the API; resolves to the JSON body, rejects with `PodiumError`.
   * @param {string} method
   * @param {string} path from the server's root, e.g. `/v1/calls`
   * @param {unknown} [body] sent as JSON
   * @returns {Promise<import("./http.js").JsonObject>}
   */
  async request(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = { Authorization: `Bearer ${this.token}` };
    /** @type {RequestInit} */
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetchJson(this._fetch, `${this.baseUrl}${path}`, init);
  }

  /**
   * Send one frame on the WebSocket (connecting first if needed).
   * @param {{ type: string } & Record<string, unknown>} frame
   * @returns {Promise<void>}
   */
  async send(frame) {
    await this.connect();
    /** @type {WebSocket} */ (this._socket).send(JSON.stringify(frame));
  }

  /**
   * Mint a user token on a server started with `--dev`; resolves to the token.
   * @param {DevTokenOptions} options
   * @returns {Promise<string>}
   */
  static async devToken(options) {
    const { userId, name, role, baseUrl, fetch } = options ?? {};
    /** @type {{ user_id: string, name?: string, role?: string }} */
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

  /**
   * `{ version, dev, media_loopback }`: what a page needs to know before it has a token.
   * @param {string | URL} [baseUrl]
   * @param {typeof fetch} [fetch]
   * @returns {Promise<ServerInfo>}
   */
  static serverInfo(baseUrl, fetch) {
    return /** @type {Promise<ServerInfo>} */ (fetchJson(fetch ?? globalThis.fetch.bind(globalThis), `${origin(baseUrl)}/v1/server`, {
      method: "GET",
    }));
  }

  /** @returns {Promise<void>} */
  #open() {
    return new Promise((resolve, reject) => {
      const url = `${this.baseUrl.replace(/^http/, "ws")}/v1/ws?token=${encodeURIComponent(this.token)}`;
      const socket = new this._WebSocket(url);
      this._opening = socket;
      let ready = false;
      socket.onmessage = (message) => {
        /** @type {{ type?: unknown, call_cid?: unknown }} */
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
        for (const call of this._calls.values()) call._disconnected();
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
        if (/** @type {{ code?: unknown }} */ (error).code === "invalid_token") this.#setConnectionState("closed");
        else this.#reconnectLater();
      }
    }, delay);
  }

  /** @param {ConnectionState} state */
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

  /**
   * Answer a health check, or hand a frame to the call it is about.
   * @param {{ type?: unknown, call_cid?: unknown }} frame
   */
  #dispatch(frame) {
    if (frame.type === "health.check") {
      this._socket?.send(JSON.stringify({ type: "health.check" }));
      return;
    }
    const call = typeof frame.call_cid === "string" ? this._calls.get(frame.call_cid) : undefined;
    if (call) call._handleFrame(/** @type {import("./events.js").Frame} */ (frame));
  }
}
