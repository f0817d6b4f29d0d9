// Stand-ins for the network, for podium.js unit tests: a fetch that records each
// request and answers canned JSON, a WebSocket class whose sockets record the frames
// sent and let a test deliver server frames, and unsigned test tokens.

export const BASE_URL = "http://podium.test";

/** Let pending promise callbacks, microtasks and zero-delay timers run. */
export function settle() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Wait until `predicate()` is truthy (polling), or fail naming `what`. */
export async function until(predicate, what, timeoutMs = 2000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function base64url(text) {
  return Buffer.from(text, "utf8").toString("base64url");
}

/** A JWT-shaped token with `payload` (the signature is junk: podium.js only decodes). */
export function makeToken(payload) {
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  return `${header}.${base64url(JSON.stringify(payload))}.c2lnbmF0dXJl`;
}

/**
 * `fetch` replacement. `fetch.on(method, path, ...answers)` sets the answers for
 * one route (`path` without the query string): each answer is `{ status?, body }` or
 * a (possibly async) function of the recorded request returning one; they are used in order and the
 * last one repeats. Unknown routes answer 404 `not_found`. `fetch.requests` holds
 * `{ method, url, path, query, headers, body }` for every call (`body` parsed from JSON).
 */
export function fakeFetch() {
  const routes = new Map();
  const requests = [];
  async function fetch(input, init = {}) {
    const url = new URL(String(typeof input === "object" && "url" in input ? input.url : input));
    const raw = init.body;
    const request = {
      method: (init.method ?? "GET").toUpperCase(),
      url: url.href,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: new Headers(init.headers),
      body: typeof raw === "string" && raw !== "" ? JSON.parse(raw) : raw,
    };
    requests.push(request);
    const answers = routes.get(`${request.method} ${request.path}`);
    let answer = { status: 404, body: error("not_found", `no route ${request.method} ${request.path}`) };
    if (answers) answer = answers.length > 1 ? answers.shift() : answers[0];
    if (typeof answer === "function") answer = await answer(request);
    const { status = 200, body = {}, text } = answer;
    const headers = { "content-type": text === undefined ? "application/json" : "text/html" };
    return new Response(text ?? JSON.stringify(body), { status, headers });
  }
  fetch.requests = requests;
  fetch.on = (method, path, ...answers) => {
    routes.set(`${method} ${path}`, answers);
    return fetch;
  };
  /** The requests to `method path` (path without query). */
  fetch.to = (method, path) => requests.filter((r) => r.method === method && r.path === path);
  return fetch;
}

/** The API's error body. */
export function error(code, message = code, details = {}) {
  return { error: { code, message, details } };
}

/**
 * A fresh WebSocket class (one per test). Its sockets open on their own right
 * after construction; `socket.deliver(frame)` sends a server frame, `socket.drop()`
 * closes from the server side, `socket.frames` is every frame sent (parsed).
 * `FakeWebSocket.sockets` lists every socket made.
 */
export function fakeWebSocketClass() {
  class FakeWebSocket extends EventTarget {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    static sockets = [];

    constructor(url, protocols) {
      super();
      this.url = String(url);
      this.protocols = protocols;
      this.readyState = FakeWebSocket.CONNECTING;
      this.binaryType = "blob";
      this.bufferedAmount = 0;
      this.extensions = "";
      this.protocol = "";
      this.frames = [];
      this.closedBy = null;
      for (const type of ["open", "message", "close", "error"]) {
        this[`on${type}`] = null;
        this.addEventListener(type, (event) => this[`on${type}`]?.call(this, event));
      }
      FakeWebSocket.sockets.push(this);
      setTimeout(() => this.open(), 0);
    }

    get CONNECTING() { return 0; }
    get OPEN() { return 1; }
    get CLOSING() { return 2; }
    get CLOSED() { return 3; }

    send(data) {
      if (this.readyState !== FakeWebSocket.OPEN) {
        throw new DOMException("WebSocket is not open", "InvalidStateError");
      }
      this.frames.push(JSON.parse(String(data)));
    }

    close(code = 1000, reason = "") {
      if (this.readyState >= FakeWebSocket.CLOSING) return;
      this.closedBy = { side: "client", code, reason };
      this.readyState = FakeWebSocket.CLOSING;
      setTimeout(() => this.#finish(code, reason, true), 0);
    }

    // test side

    open() {
      if (this.readyState !== FakeWebSocket.CONNECTING) return;
      this.readyState = FakeWebSocket.OPEN;
      this.dispatchEvent(new Event("open"));
    }

    /** Deliver one server frame, then let the library react. */
    async deliver(frame) {
      this.open();
      if (this.readyState !== FakeWebSocket.OPEN) throw new Error("socket is not open");
      this.dispatchEvent(new MessageEvent("message", { data: JSON.stringify(frame) }));
      await settle();
    }

    /** The server (or the network) closes the connection. */
    async drop(code = 1006, reason = "") {
      this.closedBy = { side: "server", code, reason };
      this.#finish(code, reason, code !== 1006);
      await settle();
    }

    framesOf(type) {
      return this.frames.filter((frame) => frame.type === type);
    }

    #finish(code, reason, wasClean) {
      if (this.readyState === FakeWebSocket.CLOSED) return;
      this.readyState = FakeWebSocket.CLOSED;
      this.dispatchEvent(Object.assign(new Event("close"), { code, reason, wasClean }));
    }
  }
  return FakeWebSocket;
}

let trackIds = 0;

/** A MediaStreamTrack stand-in: `kind`, `id`, `readyState`, `stop()`. */
export class FakeTrack extends EventTarget {
  constructor(kind) {
    super();
    this.kind = kind;
    this.id = `track-${(trackIds += 1)}`;
    this.readyState = "live";
  }

  stop() {
    this.readyState = "ended";
  }
}

/**
 * A fresh RTCPeerConnection class (one per test; install it as
 * `globalThis.RTCPeerConnection`). Descriptions are accepted as they come; the
 * first answer gives the transceivers mids "0", "1", ...; `pc.connect()` reports
 * the connection as connected. `FakeRTCPeerConnection.connections` lists every one made.
 */
export function fakePeerConnectionClass() {
  class FakeRTCPeerConnection extends EventTarget {
    static connections = [];

    constructor(configuration) {
      super();
      this.configuration = configuration;
      this.transceivers = [];
      this.localDescription = null;
      this.remoteDescription = null;
      this.connectionState = "new";
      this.onicecandidate = null;
      this.onconnectionstatechange = null;
      this.ontrack = null;
      FakeRTCPeerConnection.connections.push(this);
    }

    addTransceiver(kind, { direction } = {}) {
      const sender = { track: null, replaceTrack: async (track) => { sender.track = track; } };
      const transceiver = { kind, direction, mid: null, sender, receiver: { track: new FakeTrack(kind) } };
      this.transceivers.push(transceiver);
      return transceiver;
    }

    getTransceivers() {
      return [...this.transceivers];
    }

    async setLocalDescription() {
      const type = this.remoteDescription?.type === "offer" ? "answer" : "offer";
      this.localDescription = { type, sdp: `fake ${type}` };
    }

    async setRemoteDescription(description) {
      this.remoteDescription = description;
      this.transceivers.forEach((transceiver, index) => {
        transceiver.mid ??= String(index);
      });
    }

    async addIceCandidate() {}

    async getStats() {
      return new Map();
    }

    close() {
      this.connectionState = "closed";
      for (const transceiver of this.transceivers) transceiver.receiver.track.stop();
    }

    // test side

    connect() {
      this.connectionState = "connected";
      this.onconnectionstatechange?.();
    }
  }
  return FakeRTCPeerConnection;
}
