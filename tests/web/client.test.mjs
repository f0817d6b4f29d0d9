// Client (docs/podium-js.md, docs/api.md "WebSocket"): the token's user, connect()
// and connection.ok, health.check answers, watch frames from join(), events routed to
// their Call by call_cid, re-watching after a drop, close(), and the HTTP helpers.
import assert from "node:assert/strict";
import { afterEach } from "node:test";

import {
  CID, ID, TYPE,
  connectedClient, event, joinCall, newClient, podium, snapshot, test,
} from "./support.mjs";
import { BASE_URL, fakeFetch, fakeWebSocketClass, makeToken, settle, until } from "./fakes.mjs";

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

test("userId and userName come from the token's sub and name", () => {
  const { client } = newClient({ user: "alice", name: "Alice" });
  assert.equal(client.userId, "alice");
  assert.equal(client.userName, "Alice");
});

test("token payloads are base64url and UTF-8", () => {
  // "?>?" and "~~~" encode with "_" and "-" in base64url; the name is not ASCII.
  const name = "Zoë Ångström ?>?~~~ 🎙️";
  const token = makeToken({ sub: "user_1-x", name, exp: 4102444800 });
  assert.match(token.split(".")[1], /[-_]/);
  const client = new podium.Client({
    token, baseUrl: BASE_URL, fetch: fakeFetch(), WebSocket: fakeWebSocketClass(),
  });
  assert.equal(client.userId, "user_1-x");
  assert.equal(client.userName, name);
});

test("call(type, id) returns one Call per call", () => {
  const { client } = newClient();
  const call = client.call(TYPE, ID);
  assert.equal(client.call(TYPE, ID), call);
  assert.notEqual(client.call(TYPE, "other"), call);
  assert.equal(call.cid, CID);
});

test("connect opens /v1/ws with the token and resolves on connection.ok", async () => {
  const env = newClient();
  let done = false;
  const connecting = env.client.connect().then(() => {
    done = true;
  });
  const ws = await until(() => env.WebSocket.sockets[0], "a WebSocket");
  const url = new URL(ws.url);
  assert.equal(url.protocol, "ws:");
  assert.equal(url.host, "podium.test");
  assert.equal(url.pathname, "/v1/ws");
  assert.equal(url.searchParams.get("token"), env.token);
  ws.open();
  await settle();
  assert.equal(done, false, "connect() waits for connection.ok, not just the open socket");
  await ws.deliver({ type: "connection.ok", user_id: "alice", connection_id: "c1" });
  await connecting;
  assert.equal(done, true);
  assert.equal(env.WebSocket.sockets.length, 1);
});

test("an https base URL connects with wss", async () => {
  const WebSocket = fakeWebSocketClass();
  const token = makeToken({ sub: "alice", exp: 4102444800 });
  const client = new podium.Client({ token, baseUrl: "https://podium.test:8443", fetch: fakeFetch(), WebSocket });
  const connecting = client.connect();
  const ws = await until(() => WebSocket.sockets[0], "a WebSocket");
  assert.equal(new URL(ws.url).protocol, "wss:");
  assert.equal(new URL(ws.url).host, "podium.test:8443");
  await ws.deliver({ type: "connection.ok", user_id: "alice", connection_id: "c1" });
  await connecting;
  client.close();
});

test("every health.check is answered", async () => {
  const { ws } = await connectedClient();
  const before = ws.frames.length;
  await ws.deliver({ type: "health.check" });
  await ws.deliver({ type: "health.check" });
  const answers = ws.frames.slice(before);
  assert.equal(answers.length, 2, JSON.stringify(answers));
  for (const frame of answers) assert.ok(["health.check", "pong"].includes(frame.type), frame.type);
});

test("join watches the call from the snapshot's seq", async () => {
  const env = await connectedClient();
  await joinCall(env, snapshot(12));
  const watches = env.ws.framesOf("watch");
  assert.equal(watches.length, 1);
  assert.equal(watches[0].call_cid, CID);
  // Events between the join's answer and the watch are replayed, not lost.
  assert.equal(watches[0].since, 12);
});

test("watch() follows a call without joining", async () => {
  const env = await connectedClient();
  const path = `/v1/calls/${TYPE}/${ID}`;
  env.fetch.on("GET", path, { body: snapshot(3, { phase: "backstage" }) });
  const call = env.client.call(TYPE, ID);
  const watching = call.watch();
  const frame = await until(() => env.ws.framesOf("watch")[0], "a watch frame");
  assert.equal(frame.call_cid, CID);
  await env.ws.deliver({ type: "watch.ok", call_cid: CID, last_seq: 3 });
  await watching;
  assert.equal(env.fetch.to("POST", `${path}/join`).length, 0);
  await env.ws.deliver(event(4, "call.live_started", { call: snapshot(4).call }));
  assert.equal(call.state.phase, "live");
});

test("events go to the Call named by call_cid", async () => {
  const env = await connectedClient();
  const other = "audio_room:room-2";
  const one = await joinCall(env, snapshot(5));
  const two = await joinCall(env, snapshot(5, { cid: other }), other);
  const seenByTwo = [];
  two.on("*", (e) => seenByTwo.push(e.type));
  await env.ws.deliver(event(6, "call.participant_joined", { participant: { user_id: "carol" } }));
  assert.ok(one.state.participants.carol);
  assert.equal(two.state.participants.carol, undefined);
  assert.equal(two.state.seq, 5);
  assert.deepEqual(seenByTwo, []);
  await env.ws.deliver(event(9, "call.participant_joined", { participant: { user_id: "dave" } }, other));
  assert.ok(two.state.participants.dave);
  assert.equal(one.state.participants.dave, undefined);
  assert.deepEqual(seenByTwo, ["call.participant_joined"]);
});

test("after a drop it reconnects and re-watches from the last seq seen", async () => {
  const env = await connectedClient();
  await joinCall(env, snapshot(5));
  await env.ws.deliver(event(6, "call.participant_joined", { participant: { user_id: "carol" } }));
  await env.ws.deliver(event(9, "call.member_added", { members: [{ user_id: "carol", role: "user" }] }));
  await env.ws.drop(1006);
  const again = await until(() => env.WebSocket.sockets[1], "a second WebSocket", 8000);
  await again.deliver({ type: "connection.ok", user_id: "alice", connection_id: "c2" });
  const watch = await until(() => again.framesOf("watch")[0], "a re-watch");
  assert.equal(watch.call_cid, CID);
  assert.equal(watch.since, 9);
  await again.deliver({ type: "watch.ok", call_cid: CID, last_seq: 9 });
  await again.deliver(event(10, "call.participant_left", { participant: { user_id: "carol" } }));
  assert.equal(env.client.call(TYPE, ID).state.participants.carol, undefined);
});

test("close() closes the WebSocket and does not reconnect", async () => {
  const env = await connectedClient();
  env.client.close();
  await settle();
  assert.equal(env.ws.closedBy?.side, "client");
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(env.WebSocket.sockets.length, 1);
});

test("close() while connecting closes that socket too", async () => {
  const env = newClient();
  env.client.connect().catch(() => {}); // may reject: the client was closed
  const ws = await until(() => env.WebSocket.sockets[0], "a WebSocket");
  ws.open();
  env.client.close();
  await settle();
  assert.equal(ws.closedBy?.side, "client", "the socket still connecting is left open");
});

test("close() during a reconnect stops it", async () => {
  const env = await connectedClient();
  await env.ws.drop(1006);
  const again = await until(() => env.WebSocket.sockets[1], "a second WebSocket", 8000);
  env.client.close();
  await settle();
  assert.equal(again.closedBy?.side, "client", "the reconnecting socket is left open");
});

test("queryCalls gets /v1/calls with type and live", async () => {
  const env = newClient();
  env.fetch.on("GET", "/v1/calls", { body: { calls: [snapshot(1).call] } });
  await env.client.queryCalls({ type: TYPE, live: true });
  const [req] = env.fetch.to("GET", "/v1/calls");
  assert.deepEqual(req.query, { type: TYPE, live: "true" });
  assert.equal(req.headers.get("authorization"), `Bearer ${env.token}`);
  await env.client.queryCalls();
  assert.deepEqual(env.fetch.to("GET", "/v1/calls")[1].query, {});
});

test("Client.devToken posts /v1/dev/token and resolves to the token", async () => {
  const fetch = fakeFetch().on("POST", "/v1/dev/token", { body: { token: "t.o.k", user_id: "zoe" } });
  globalThis.fetch = fetch; // devToken takes no fetch: it uses the page's
  const token = await podium.Client.devToken({ userId: "zoe", name: "Zoë", baseUrl: BASE_URL });
  assert.equal(token, "t.o.k");
  const [req] = fetch.to("POST", "/v1/dev/token");
  assert.equal(req.url, `${BASE_URL}/v1/dev/token`);
  assert.equal(req.body.user_id, "zoe");
  assert.equal(req.body.name, "Zoë");
});

test("Client.serverInfo gets /v1/server", async () => {
  const fetch = fakeFetch().on("GET", "/v1/server", { body: { version: "1.2.3", dev: true } });
  globalThis.fetch = fetch;
  const info = await podium.Client.serverInfo(BASE_URL);
  assert.equal(info.version, "1.2.3");
  assert.equal(info.dev, true);
  assert.equal(fetch.requests[0].url, `${BASE_URL}/v1/server`);
});
