// Call (docs/podium-js.md): each HTTP method's method, path, JSON body and token;
// state applied from the answers; PodiumError from error bodies; on(type) / "*" /
// unsubscribe; onStateChange.
import assert from "node:assert/strict";

import {
  CID, HOST_CAPS, ID, PATH, TYPE,
  connectedClient, event, joinCall, newClient, podium, request, snapshot, test,
} from "./support.mjs";
import { error, until } from "./fakes.mjs";

/** The only request made to `method path`, checked for the token and a JSON body. */
function sentOnce(env, method, path) {
  const sent = env.fetch.to(method, path);
  assert.equal(sent.length, 1, `one ${method} ${path}`);
  const [req] = sent;
  assert.equal(req.headers.get("authorization"), `Bearer ${env.token}`);
  if (req.body !== undefined && req.body !== null) {
    assert.match(req.headers.get("content-type") ?? "", /^application\/json/);
  }
  return req;
}

function hostClient() {
  const env = newClient({ user: "host", name: "Host" });
  return { ...env, call: env.client.call(TYPE, ID) };
}

test("call.type, call.id, call.cid", () => {
  const { call } = hostClient();
  assert.equal(call.type, TYPE);
  assert.equal(call.id, ID);
  assert.equal(call.cid, CID);
});

test("getOrCreate posts members and custom, and applies the state", async () => {
  const env = hostClient();
  env.fetch.on("POST", PATH, { status: 201, body: snapshot(1, { own_capabilities: HOST_CAPS }) });
  const members = [{ user_id: "bob", role: "speaker" }];
  await env.call.getOrCreate({ members, custom: { title: "Town hall" } });
  const req = sentOnce(env, "POST", PATH);
  assert.deepEqual(req.body.members, members);
  assert.deepEqual(req.body.custom, { title: "Town hall" });
  assert.equal(env.call.state.loaded, true);
  assert.equal(env.call.state.seq, 1);
  assert.ok(env.call.state.ownCapabilities.has("go-live"));
});

test("getOrCreate with no options posts no members or custom", async () => {
  const env = hostClient();
  env.fetch.on("POST", PATH, { body: snapshot(1) });
  await env.call.getOrCreate();
  const { body } = sentOnce(env, "POST", PATH);
  assert.equal(body?.members, undefined);
  assert.equal(body?.custom, undefined);
});

test("get reads the call state", async () => {
  const env = hostClient();
  env.fetch.on("GET", PATH, { body: snapshot(4) });
  await env.call.get();
  sentOnce(env, "GET", PATH);
  assert.equal(env.call.state.seq, 4);
});

for (const [method, suffix, phase] of [
  ["goLive", "/go-live", "live"],
  ["stopLive", "/stop-live", "backstage"],
  ["end", "/end", "ended"],
]) {
  test(`${method} posts ${suffix} and applies the state`, async () => {
    const env = hostClient();
    env.fetch.on("POST", PATH + suffix, { body: snapshot(3, { phase }) });
    await env.call[method]();
    sentOnce(env, "POST", PATH + suffix);
    assert.equal(env.call.state.phase, phase);
  });
}

test("join posts /join, applies the state and watches; leave posts /leave and unwatches", async () => {
  const env = await connectedClient({ user: "bob" });
  const call = await joinCall(env, snapshot(5, { participants: [{ user_id: "bob" }] }));
  sentOnce(env, "POST", `${PATH}/join`);
  assert.ok(call.state.participants.bob);
  env.fetch.on("POST", `${PATH}/leave`, { body: snapshot(6, { participants: [] }) });
  await call.leave();
  sentOnce(env, "POST", `${PATH}/leave`);
  assert.deepEqual(call.state.participants, {});
  assert.ok(env.ws.framesOf("unwatch").some((frame) => frame.call_cid === CID), "an unwatch frame");
});

test("requestPermissions posts the capabilities and resolves to the request", async () => {
  const env = newClient({ user: "bob" });
  const made = request("r1", "bob", ["send-audio", "send-video"]);
  env.fetch.on("POST", `${PATH}/permission-requests`, { status: 201, body: { request: made } });
  const result = await env.client.call(TYPE, ID).requestPermissions(["send-audio", "send-video"]);
  const req = sentOnce(env, "POST", `${PATH}/permission-requests`);
  assert.deepEqual(req.body, { permissions: ["send-audio", "send-video"] });
  assert.deepEqual(result, made);
});

test("accept, reject and cancel address the request by object or id and drop it", async () => {
  const env = hostClient();
  const pending = [request("r1", "bob", ["send-audio"]), request("r2", "carol", ["send-audio"]),
    request("r3", "host", ["screenshare"])];
  env.fetch.on("GET", PATH, { body: snapshot(5, { own_capabilities: HOST_CAPS, pending_requests: pending }) });
  const base = `${PATH}/permission-requests`;
  env.fetch.on("POST", `${base}/r1/accept`, { body: { request: { ...pending[0], state: "accepted" } } });
  env.fetch.on("POST", `${base}/r2/reject`, { body: { request: { ...pending[1], state: "rejected" } } });
  env.fetch.on("DELETE", `${base}/r3`, { body: { request: { ...pending[2], state: "cancelled" } } });
  await env.call.get();

  assert.equal((await env.call.accept(pending[0])).state, "accepted");
  sentOnce(env, "POST", `${base}/r1/accept`);
  assert.equal((await env.call.reject("r2", "not now")).state, "rejected");
  assert.deepEqual(sentOnce(env, "POST", `${base}/r2/reject`).body, { reason: "not now" });
  assert.equal((await env.call.cancel("r3")).state, "cancelled");
  sentOnce(env, "DELETE", `${base}/r3`);
  assert.deepEqual(env.call.state.pendingRequests, {});
});

test("grantPermissions and revokePermissions post /user-permissions", async () => {
  const env = hostClient();
  const path = `${PATH}/user-permissions`;
  env.fetch.on("POST", path, { body: { user_id: "bob", own_capabilities: ["read-call"] } });
  await env.call.grantPermissions("bob", ["send-audio"]);
  await env.call.revokePermissions("bob", ["send-audio", "screenshare"]);
  const [grant, revoke] = env.fetch.to("POST", path);
  for (const req of [grant, revoke]) {
    assert.equal(req.headers.get("authorization"), `Bearer ${env.token}`);
    assert.equal(req.body.user_id, "bob");
  }
  assert.deepEqual(grant.body.grant, ["send-audio"]);
  assert.deepEqual(grant.body.revoke ?? [], []);
  assert.deepEqual(revoke.body.revoke, ["send-audio", "screenshare"]);
  assert.deepEqual(revoke.body.grant ?? [], []);
});

test("mute posts user ids and kinds; no kind set means every kind", async () => {
  const env = hostClient();
  const path = `${PATH}/mute`;
  env.fetch.on("POST", path, { body: {} });
  await env.call.mute(["bob"], { audio: true });
  await env.call.mute(["bob", "carol"]);
  const [one, all] = env.fetch.to("POST", path);
  assert.deepEqual(one.body.user_ids, ["bob"]);
  assert.equal(one.body.audio, true);
  assert.ok(!one.body.video && !one.body.screenshare);
  assert.deepEqual(all.body.user_ids, ["bob", "carol"]);
  const kinds = [all.body.audio, all.body.video, all.body.screenshare];
  // The server mutes every kind when none is set; setting all three says the same.
  assert.ok(kinds.every((kind) => !kind) || kinds.every((kind) => kind === true), String(kinds));
});

test("an error body rejects with PodiumError: status, code, message, details", async () => {
  const env = hostClient();
  env.fetch.on("POST", `${PATH}/go-live`, {
    status: 403,
    body: error("permission_denied", "you may not go live", { capability: "go-live" }),
  });
  await assert.rejects(env.call.goLive(), (err) => {
    assert.ok(err instanceof podium.PodiumError, `a PodiumError, got ${err}`);
    assert.ok(err instanceof Error);
    assert.equal(err.status, 403);
    assert.equal(err.code, "permission_denied");
    assert.equal(err.message, "you may not go live");
    assert.deepEqual(err.details, { capability: "go-live" });
    return true;
  });
});

test("a request cooldown keeps its details", async () => {
  const env = newClient({ user: "bob" });
  env.fetch.on("POST", `${PATH}/permission-requests`, {
    status: 429, body: error("request_cooldown", "wait", { retry_after_s: 12 }),
  });
  await assert.rejects(env.client.call(TYPE, ID).requestPermissions(["send-audio"]), (err) => {
    assert.ok(err instanceof podium.PodiumError);
    assert.equal(err.status, 429);
    assert.equal(err.code, "request_cooldown");
    assert.equal(err.details.retry_after_s, 12);
    return true;
  });
});

test("a non-JSON error (e.g. from a proxy) still rejects with PodiumError and its status", async () => {
  const env = hostClient();
  env.fetch.on("GET", PATH, { status: 502, text: "<html>Bad Gateway</html>" });
  await assert.rejects(env.call.get(), (err) => {
    assert.ok(err instanceof podium.PodiumError, `a PodiumError, got ${err}`);
    assert.equal(err.status, 502);
    return true;
  });
});

test("on(type), on('*') and their unsubscribe functions", async () => {
  const env = await connectedClient({ user: "bob" });
  const call = await joinCall(env, snapshot(5));
  const joined = [];
  const all = [];
  const offJoined = call.on("call.participant_joined", (e) => joined.push(e));
  const offAll = call.on("*", (e) => all.push(e.type));
  const first = event(6, "call.participant_joined", { participant: { user_id: "carol" } });
  await env.ws.deliver(first);
  await env.ws.deliver(event(7, "call.member_added", { members: [{ user_id: "carol", role: "user" }] }));
  assert.deepEqual(joined, [first]);
  assert.deepEqual(all, ["call.participant_joined", "call.member_added"]);
  offJoined();
  offAll();
  await env.ws.deliver(event(8, "call.participant_joined", { participant: { user_id: "dave" } }));
  assert.equal(joined.length, 1);
  assert.equal(all.length, 2);
});

test("an event handler sees the state with its event already applied", async () => {
  const env = await connectedClient({ user: "bob" });
  const call = await joinCall(env, snapshot(5));
  let seen = null;
  call.on("call.participant_joined", () => {
    seen = { seq: call.state.seq, carol: Boolean(call.state.participants.carol) };
  });
  await env.ws.deliver(event(6, "call.participant_joined", { participant: { user_id: "carol" } }));
  assert.deepEqual(seen, { seq: 6, carol: true });
});

test("onStateChange runs after snapshots and events, until unsubscribed", async () => {
  const env = await connectedClient({ user: "bob" });
  const call = env.client.call(TYPE, ID);
  const seen = [];
  const off = call.onStateChange((state) => seen.push([state.seq, Object.keys(state.participants).sort()]));
  assert.equal(typeof off, "function");
  env.fetch.on("GET", PATH, { body: snapshot(5) });
  await call.get();
  assert.deepEqual(seen.at(-1), [5, ["host"]]);
  await joinCall(env, snapshot(5));
  await env.ws.deliver(event(6, "call.participant_joined", { participant: { user_id: "carol" } }));
  assert.deepEqual(seen.at(-1), [6, ["carol", "host"]]);
  const count = seen.length;
  off();
  await env.ws.deliver(event(7, "call.participant_left", { participant: { user_id: "carol" } }));
  assert.equal(seen.length, count);
  assert.deepEqual(Object.keys(call.state.participants), ["host"]);
});

test("watch({audience: true}) asks for audience joins: handlers get them, participants stay the stage", async () => {
  const env = await connectedClient({ user: "host" });
  env.fetch.on("GET", PATH, { body: snapshot(5, { audience_count: 3, participants: [{ user_id: "host", tier: "stage" }] }) });
  const call = env.client.call(TYPE, ID);
  const seen = [];
  call.on("call.participant_joined", (e) => seen.push(e.participant.user_id));
  const watching = call.watch({ audience: true });
  const watch = await until(() => env.ws.framesOf("watch")[0], "a watch frame");
  assert.equal(watch.audience, true);
  await env.ws.deliver({ type: "watch.ok", call_cid: CID, last_seq: 5, audience: true });
  await watching;
  assert.equal(call.state.audienceCount, 3);
  await env.ws.deliver(event(6, "call.participant_joined", { participant: { user_id: "carol", tier: "audience" } }));
  await env.ws.deliver(event(7, "call.audience_updated", { audience_count: 4 }));
  assert.deepEqual(seen, ["carol"]);
  assert.deepEqual(Object.keys(call.state.participants), ["host"]);
  assert.equal(call.state.audienceCount, 4);
});

test("a plain watch does not ask for the audience", async () => {
  const env = await connectedClient({ user: "bob" });
  env.fetch.on("GET", PATH, { body: snapshot(5) });
  const call = env.client.call(TYPE, ID);
  const watching = call.watch();
  const watch = await until(() => env.ws.framesOf("watch")[0], "a watch frame");
  assert.equal(Object.hasOwn(watch, "audience"), false);
  await env.ws.deliver({ type: "watch.ok", call_cid: CID, last_seq: 5 });
  await watching;
});
