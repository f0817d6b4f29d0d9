// Staying in the call when the connection does not (docs/podium-js.md): connectionState,
// re-joining after a reconnect (the server may have removed us, docs/api.md) and on our own
// participant_left with reason `disconnected`, media waiting for that re-join, and the
// media session ending as `lost` or `replaced` (another tab) with every track stopped.
import assert from "node:assert/strict";
import { afterEach } from "node:test";

import { CID, PATH, connectedClient, event, joinCall, snapshot, test } from "./support.mjs";
import { FakeTrack, fakePeerConnectionClass, settle, until } from "./fakes.mjs";

const JOIN = `${PATH}/join`;
const ME = { user_id: "alice", name: "Alice", joined_at: "2025-01-01T00:00:02+00:00" };

afterEach(() => {
  delete globalThis.RTCPeerConnection;
});

/** A connected client for alice, joined to the call at seq 5 (a participant). */
async function joinedEnv() {
  const env = await connectedClient();
  const participants = [...snapshot(5).participants, ME];
  const call = await joinCall(env, snapshot(5, { participants }));
  return { ...env, call };
}

/** The WebSocket podium.js opens after `env.ws`, answered with `connection.ok`; it becomes `env.ws`. */
async function reconnected(env) {
  const index = env.WebSocket.sockets.indexOf(env.ws) + 1;
  const socket = await until(() => env.WebSocket.sockets[index], "a new WebSocket", 8000);
  await socket.deliver({ type: "connection.ok", user_id: "alice", connection_id: `c${index + 1}` });
  env.ws = socket;
  return socket;
}

async function dropAndReconnect(env) {
  await env.ws.drop(1006);
  return reconnected(env);
}

/** Answer the re-watch with `watch.ok`; returns its frame. */
async function answerWatch(ws, lastSeq) {
  const watch = await until(() => ws.framesOf("watch")[0], "a re-watch");
  await ws.deliver({ type: "watch.ok", call_cid: CID, last_seq: lastSeq });
  return watch;
}

/** Open the call's media session on the fakes; resolves to its peer connection. */
async function openMedia(env) {
  const offers = env.ws.framesOf("sfu.offer").length;
  const connecting = env.call.connectMedia();
  await until(() => env.ws.framesOf("sfu.offer").length > offers, "an sfu.offer");
  await env.ws.deliver({ type: "sfu.answer", call_cid: CID, sdp: "fake answer" });
  const pc = globalThis.RTCPeerConnection.connections.at(-1);
  pc.connect();
  await connecting;
  return pc;
}

/** Publish a fake microphone track through the open media session. */
async function publishMicrophone(env) {
  const track = new FakeTrack("audio");
  const publishing = env.call.publish("microphone", track);
  await until(() => env.ws.framesOf("sfu.publish")[0], "an sfu.publish");
  await env.ws.deliver({ type: "sfu.publish_ok", call_cid: CID, source: "microphone" });
  await publishing;
  return track;
}

/** A media session with our microphone published and the host's microphone received. */
async function mediaEnv() {
  globalThis.RTCPeerConnection = fakePeerConnectionClass();
  const env = await joinedEnv();
  const closed = [];
  env.call.on("media.closed", (e) => closed.push(e.reason));
  const pc = await openMedia(env);
  const microphone = await publishMicrophone(env);
  const tracks = [{ user_id: "host", source: "microphone", track_id: "t1", mid: "0" }];
  await env.ws.deliver({ type: "sfu.tracks", call_cid: CID, tracks });
  await until(() => env.call.remoteTracks.size === 1, "the host's microphone");
  const remote = env.call.remoteTracks.get("host/microphone").track;
  return { ...env, pc, closed, microphone, remote };
}

test("connectionState: connected, reconnecting after a drop, connected again, closed", async () => {
  const env = await connectedClient();
  assert.equal(env.client.connectionState, "connected");
  const seen = [];
  const off = env.client.onConnectionStateChange((state) => seen.push(state));
  await env.ws.drop(1006);
  assert.equal(env.client.connectionState, "reconnecting");
  await reconnected(env);
  assert.deepEqual(seen, ["reconnecting", "connected"]);
  env.client.close();
  assert.deepEqual(seen, ["reconnecting", "connected", "closed"]);
  off();
});

test("a token refused while reconnecting ends in closed, without more attempts", async () => {
  const env = await connectedClient();
  await env.ws.drop(1006);
  const again = await until(() => env.WebSocket.sockets[1], "a second WebSocket", 8000);
  await again.drop(4001, "token expired");
  await until(() => env.client.connectionState === "closed", "the closed state");
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(env.WebSocket.sockets.length, 2);
});

test("after a reconnect a joined call re-watches from its last seq and joins again", async () => {
  const env = await joinedEnv();
  await env.ws.deliver(event(6, "call.member_added", { members: [{ user_id: "carol", role: "user" }] }));
  const joined = [];
  env.call.on("call.participant_joined", (e) => joined.push(e.participant.user_id));
  const later = [...snapshot(9).participants, ME, { user_id: "carol" }, { user_id: "dave" }];
  env.fetch.on("POST", JOIN, { body: { ...snapshot(9, { participants: later }), media: { ice_servers: [] } } });
  const ws = await dropAndReconnect(env);
  await until(() => env.fetch.to("POST", JOIN).length === 2, "a second join");
  // Replayed after the join was answered: still handed to the handlers, not swallowed.
  await ws.deliver(event(7, "call.participant_joined", { participant: { user_id: "carol" } }));
  await ws.deliver(event(8, "call.participant_joined", { participant: { user_id: "dave" } }));
  const watch = await answerWatch(ws, 8);
  assert.equal(watch.since, 6);
  assert.deepEqual(joined, ["carol", "dave"]);
  await until(() => env.call.state.seq === 9, "the join's state");
  assert.ok(env.call.state.participants.alice);
});

test("a call only watched is watched again after a reconnect, not joined", async () => {
  const env = await connectedClient();
  env.fetch.on("GET", PATH, { body: snapshot(3, { phase: "backstage" }) });
  const call = env.client.call("audio_room", "room-1");
  const watching = call.watch();
  await answerWatch(env.ws, 3);
  await watching;
  const ws = await dropAndReconnect(env);
  assert.equal((await answerWatch(ws, 3)).since, 3);
  await settle();
  assert.equal(env.fetch.to("POST", JOIN).length, 0);
});

test("after leave() a reconnect neither joins nor watches", async () => {
  const env = await joinedEnv();
  env.fetch.on("POST", `${PATH}/leave`, { body: snapshot(6) });
  await env.call.leave();
  const ws = await dropAndReconnect(env);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(env.fetch.to("POST", JOIN).length, 1);
  assert.deepEqual(ws.framesOf("watch"), []);
});

test("our own participant_left with reason disconnected joins again", async () => {
  const env = await joinedEnv();
  env.fetch.on("POST", JOIN, { body: { ...snapshot(7, { participants: [ME] }), media: { ice_servers: [] } } });
  await env.ws.deliver(event(6, "call.participant_left", { participant: ME, reason: "disconnected" }));
  await until(() => env.fetch.to("POST", JOIN).length === 2, "a re-join");
  await until(() => env.call.state.participants.alice, "alice a participant again");
  assert.equal(env.call.state.seq, 7);
});

test("someone else's disconnect, or our own leave elsewhere, does not join again", async () => {
  const env = await joinedEnv();
  const bob = { user_id: "bob" };
  await env.ws.deliver(event(6, "call.participant_left", { participant: bob, reason: "disconnected" }));
  await env.ws.deliver(event(7, "call.participant_left", { participant: ME, reason: "left" }));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(env.fetch.to("POST", JOIN).length, 1);
  assert.equal(env.call.state.participants.alice, undefined);
});

test("a disconnect seen after leave() does not join again", async () => {
  const env = await joinedEnv();
  env.fetch.on("POST", `${PATH}/leave`, { body: snapshot(6) });
  const leaving = env.call.leave();
  await env.ws.deliver(event(6, "call.participant_left", { participant: ME, reason: "disconnected" }));
  await leaving;
  await settle();
  assert.equal(env.fetch.to("POST", JOIN).length, 1);
});

test("media opened after a reconnect waits for the re-join", async () => {
  globalThis.RTCPeerConnection = fakePeerConnectionClass();
  const env = await joinedEnv();
  let answerJoin;
  const joinAnswered = new Promise((resolve) => {
    answerJoin = resolve;
  });
  env.fetch.on("POST", JOIN, async () => {
    await joinAnswered;
    return { body: { ...snapshot(6, { participants: [ME] }), media: { ice_servers: [] } } };
  });
  const ws = await dropAndReconnect(env);
  const connecting = env.call.connectMedia();
  await answerWatch(ws, 5);
  await settle();
  assert.deepEqual(ws.framesOf("sfu.offer"), [], "an offer before being a participant again");
  answerJoin();
  await until(() => ws.framesOf("sfu.offer")[0], "the offer once joined");
  await ws.deliver({ type: "sfu.answer", call_cid: CID, sdp: "fake answer" });
  globalThis.RTCPeerConnection.connections.at(-1).connect();
  await connecting;
});

test("a dropped WebSocket closes media as lost and stops every track", async () => {
  const env = await mediaEnv();
  const stopped = [];
  env.call.on("media.source_stopped", (e) => stopped.push([e.source, e.reason]));
  await env.ws.drop(1006);
  assert.deepEqual(env.closed, ["lost"]);
  assert.deepEqual(stopped, [["microphone", "lost"]]);
  assert.equal(env.microphone.readyState, "ended");
  assert.equal(env.remote.readyState, "ended");
  assert.equal(env.pc.connectionState, "closed");
  assert.equal(env.call.remoteTracks.size, 0);
});

test("another tab taking the session over closes it as replaced, after its stop_source left", async () => {
  const env = await mediaEnv();
  const removed = [];
  env.call.on("media.track_removed", (e) => removed.push(`${e.userId}/${e.source}`));
  // The order the server sends them in: the old session's live sources stop, then why.
  await env.ws.deliver({ type: "sfu.stop_source", call_cid: CID, source: "microphone", reason: "left" });
  assert.equal(env.microphone.readyState, "ended");
  assert.deepEqual(env.call.published, {});
  await env.ws.deliver({ type: "sfu.error", call_cid: CID, code: "replaced", message: "moved" });
  assert.deepEqual(env.closed, ["replaced"]);
  assert.deepEqual(removed, ["host/microphone"]);
  assert.equal(env.remote.readyState, "ended");
  assert.equal(env.pc.connectionState, "closed");
  assert.equal(await env.call.getStats(), null);
});

test("removed for being disconnected with media open: media closes as lost, the call is joined again", async () => {
  const env = await mediaEnv();
  env.fetch.on("POST", JOIN, { body: { ...snapshot(7, { participants: [ME] }), media: { ice_servers: [] } } });
  await env.ws.deliver(event(6, "call.participant_left", { participant: ME, reason: "disconnected" }));
  assert.deepEqual(env.closed, ["lost"]);
  assert.equal(env.microphone.readyState, "ended");
  await until(() => env.fetch.to("POST", JOIN).length === 2, "a re-join");
  await openMedia(env);
});
