// The client: the token, HTTP to the API, and the page's one WebSocket with its reconnects.

import { Call, checkId } from "./call.js";
import { PodiumError, reportHandlerError } from "./errors.js";
import { fetchJson, origin } from "./http.js";

const DEFAULT_TIMEOUT_MS = 15000;
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 5000, 10000];
const WS_OPEN = 1;
// The server closes with this code when the token is refused: reconnecting would not help.
const WS_AUTH_FAILED = 4001;

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

/** The page's connection to a Podium server: its token, HTTP calls and one WebSocket. */
export class Client {
  constructor({ token, baseUrl, fetch, WebSocket, loopbackOnly = false, timeoutMs } = {}) {
    if (typeof token !== "string" || !token) throw new TypeError("a Client needs a token");
    this.token = token;
    this.baseUrl = origin(baseUrl);
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
