// Shared fixtures for the podium.js unit tests: call state objects and events as
// the server sends them (docs/api.md), and clients wired to the fakes of fakes.mjs.
import { afterEach, test as nodeTest } from "node:test";

import * as podium from "../../src/podium/web/podium.js";
import { BASE_URL, fakeFetch, fakeWebSocketClass, makeToken, until } from "./fakes.mjs";

export { podium };

export const TYPE = "audio_room";
export const ID = "room-1";
export const CID = `${TYPE}:${ID}`;
export const PATH = `/v1/calls/${TYPE}/${ID}`;
export const LISTENER_CAPS = ["read-call", "create-call", "join-call"];
export const HOST_CAPS = [
  ...LISTENER_CAPS,
  "join-backstage", "send-audio", "send-video", "screenshare", "update-call-permissions",
  "update-call-member", "mute-users", "go-live", "update-call", "end-call", "block-users",
];

/** `test` with a timeout, so a promise the library never settles fails instead of hanging. */
export function test(name, fn) {
  return nodeTest(name, { timeout: 10000 }, fn);
}

const inAnHour = () => new Date(Date.now() + 3600_000).toISOString();

/** A call object; `phase` sets the booleans too. */
export function callObject(phase = "live", cid = CID) {
  const [type, id] = cid.split(":");
  return {
    cid, type, id, phase,
    backstage: phase === "backstage", live: phase === "live", ended: phase === "ended",
    created_by: "host", created_at: "2025-01-01T00:00:00+00:00", custom: {},
  };
}

/** A call state object, as every call endpoint answers. */
export function snapshot(seq, overrides = {}) {
  const cid = overrides.cid ?? CID;
  return {
    call: callObject(overrides.phase ?? "live", cid),
    settings: {
      name: cid.split(":")[0], backstage: true, request_ttl_s: 300, request_cooldown_s: 30,
      requestable: ["send-audio", "send-video", "screenshare"],
    },
    members: [{ user_id: "host", role: "host", name: "Host" }],
    participants: [{ user_id: "host", name: "Host", joined_at: "2025-01-01T00:00:01+00:00" }],
    blocked_user_ids: [],
    own_capabilities: LISTENER_CAPS,
    pending_requests: [],
    seq,
    ...overrides,
  };
}

/** A permission request object. */
export function request(id, userId, permissions, overrides = {}) {
  return {
    id, call_cid: CID, user_id: userId, permissions, state: "pending",
    created_at: new Date().toISOString(), expires_at: inAnHour(), ...overrides,
  };
}

/** A call event frame. */
export function event(seq, type, payload = {}, cid = CID) {
  return { type, call_cid: cid, seq, created_at: new Date().toISOString(), ...payload };
}

const clients = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

/** A `Client` for `user` on the fakes (not connected); closed after the test. */
export function newClient({ user = "alice", name = "Alice" } = {}) {
  const fetch = fakeFetch();
  const WebSocket = fakeWebSocketClass();
  const token = makeToken({ sub: user, name, exp: Math.floor(Date.now() / 1000) + 3600 });
  const client = new podium.Client({ token, baseUrl: BASE_URL, fetch, WebSocket });
  clients.push(client);
  return { client, fetch, WebSocket, token, user };
}

/** `newClient`, then `connect()` answered with `connection.ok`; adds `ws`, the socket. */
export async function connectedClient(options) {
  const env = newClient(options);
  const connecting = env.client.connect();
  env.ws = await until(() => env.WebSocket.sockets[0], "the WebSocket");
  await env.ws.deliver({ type: "connection.ok", user_id: env.user, connection_id: "conn-1" });
  await connecting;
  return env;
}

/**
 * Join `cid` on a connected env: the join answers `state` (GET answers it too),
 * and the `watch` frame is answered with `watch.ok`. Returns the Call.
 */
export async function joinCall(env, state, cid = CID) {
  const [type, id] = cid.split(":");
  const path = `/v1/calls/${type}/${id}`;
  env.fetch.on("POST", `${path}/join`, { body: { ...state, media: { ice_servers: [] } } });
  env.fetch.on("GET", path, { body: state }); // phase events re-read the call
  const call = env.client.call(type, id);
  const joining = call.join();
  const ws = env.ws;
  const watch = await until(
    () => ws.framesOf("watch").find((frame) => frame.call_cid === cid),
    `a watch frame for ${cid}`,
  );
  await ws.deliver({ type: "watch.ok", call_cid: cid, last_seq: watch.since ?? state.seq });
  await joining;
  return call;
}
