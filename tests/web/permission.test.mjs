// Permission handles (docs/podium-js.md, PRODUCT.md §1): call.hasPermission,
// call.permission(cap) → hasPermission, canRequestPermission, isAwaitingPermission,
// pendingRequest, request(); and how they follow events.
import assert from "node:assert/strict";

import {
  LISTENER_CAPS, PATH, TYPE, ID,
  connectedClient, event, joinCall, newClient, request, snapshot, test,
} from "./support.mjs";

const BOB = { user_id: "bob", name: "Bob" };

/** Bob's Call after a GET answering `snapshot(5, overrides)` (no connection needed). */
async function bobsCall(overrides = {}) {
  const env = newClient({ user: "bob", name: "Bob" });
  env.fetch.on("GET", PATH, { body: snapshot(5, overrides) });
  const call = env.client.call(TYPE, ID);
  await call.get();
  return { ...env, call };
}

test("hasPermission follows ownCapabilities", async () => {
  const { call } = await bobsCall({ own_capabilities: [...LISTENER_CAPS, "send-audio"] });
  assert.equal(call.hasPermission("send-audio"), true);
  assert.equal(call.hasPermission("send-video"), false);
  assert.equal(call.permission("send-audio").hasPermission, true);
  assert.equal(call.permission("send-video").hasPermission, false);
});

test("a joined listener can request a requestable capability it lacks", async () => {
  const { call } = await bobsCall({ participants: [BOB] });
  const audio = call.permission("send-audio");
  assert.equal(audio.canRequestPermission, true);
  assert.equal(audio.isAwaitingPermission, false);
  assert.equal(audio.pendingRequest ?? null, null);
});

test("a member who has not joined can request too", async () => {
  const { call } = await bobsCall({ members: [{ user_id: "bob", role: "user" }], participants: [] });
  assert.equal(call.permission("send-audio").canRequestPermission, true);
});

test("no request for a capability that is not requestable", async () => {
  const { call } = await bobsCall({ participants: [BOB] });
  assert.equal(call.permission("go-live").canRequestPermission, false);
  assert.equal(call.permission("end-call").canRequestPermission, false);
});

test("no request for a capability already held", async () => {
  const { call } = await bobsCall({
    participants: [BOB], own_capabilities: [...LISTENER_CAPS, "send-audio"],
  });
  assert.equal(call.permission("send-audio").canRequestPermission, false);
});

test("no request by a user who is neither member nor participant", async () => {
  const { call } = await bobsCall({ participants: [{ user_id: "host" }] });
  assert.equal(call.permission("send-audio").canRequestPermission, false);
});

test("a pending request of your own means awaiting, not requestable", async () => {
  const mine = request("r1", "bob", ["send-audio", "send-video"]);
  const { call } = await bobsCall({ participants: [BOB], pending_requests: [mine] });
  for (const capability of ["send-audio", "send-video"]) {
    const handle = call.permission(capability);
    assert.equal(handle.isAwaitingPermission, true, capability);
    assert.equal(handle.canRequestPermission, false, capability);
    assert.equal(handle.pendingRequest.id, "r1", capability);
  }
  assert.equal(call.permission("screenshare").isAwaitingPermission, false);
  assert.equal(call.permission("screenshare").canRequestPermission, true);
});

test("an expired request is no longer awaited", async () => {
  const expired = request("r1", "bob", ["send-audio"], {
    expires_at: new Date(Date.now() - 1000).toISOString(),
  });
  const { call } = await bobsCall({ participants: [BOB], pending_requests: [expired] });
  const audio = call.permission("send-audio");
  assert.equal(audio.isAwaitingPermission, false);
  assert.equal(audio.canRequestPermission, true);
});

test("someone else's pending request does not make you wait", async () => {
  const theirs = request("r1", "carol", ["send-audio"]);
  const { call } = await bobsCall({ participants: [BOB], pending_requests: [theirs] });
  assert.equal(call.permission("send-audio").isAwaitingPermission, false);
});

test("request() posts the capability and leaves you awaiting", async () => {
  const { call, fetch, token } = await bobsCall({ participants: [BOB] });
  const made = request("r9", "bob", ["send-audio"]);
  fetch.on("POST", `${PATH}/permission-requests`, { status: 201, body: { request: made } });
  const audio = call.permission("send-audio");
  const result = await audio.request();
  const [sent] = fetch.to("POST", `${PATH}/permission-requests`);
  assert.deepEqual(sent.body, { permissions: ["send-audio"] });
  assert.equal(sent.headers.get("authorization"), `Bearer ${token}`);
  assert.equal(result.id, "r9");
  assert.equal(audio.isAwaitingPermission, true);
  assert.equal(audio.canRequestPermission, false);
});

test("a rejection ends the wait; the capability can be requested again", async () => {
  const env = await connectedClient({ user: "bob" });
  const mine = request("r1", "bob", ["send-audio"]);
  const call = await joinCall(env, snapshot(5, { participants: [BOB], pending_requests: [mine] }));
  const audio = call.permission("send-audio");
  assert.equal(audio.isAwaitingPermission, true);
  await env.ws.deliver(event(6, "call.permission_request_resolved", {
    request: { ...mine, state: "rejected", resolved_by: "host", reason: "not now" },
  }));
  assert.equal(audio.isAwaitingPermission, false);
  assert.equal(audio.hasPermission, false);
  assert.equal(audio.canRequestPermission, true);
});

test("on accept, permissions_updated alone makes the capability held and not awaited", async () => {
  const env = await connectedClient({ user: "bob" });
  const mine = request("r1", "bob", ["send-audio"]);
  const call = await joinCall(env, snapshot(5, { participants: [BOB], pending_requests: [mine] }));
  const audio = call.permission("send-audio");
  await env.ws.deliver(event(6, "call.permissions_updated", {
    user_id: "bob", own_capabilities: [...LISTENER_CAPS, "send-audio"], reason: "permissions_changed",
  }));
  assert.equal(audio.hasPermission, true);
  assert.equal(audio.isAwaitingPermission, false);
  assert.equal(audio.canRequestPermission, false);
});
