// CallState (docs/podium-js.md): built from call state objects and call events,
// through a Call on the fakes. Snapshots, seq ordering, each event kind, getters, pendingOf.
import assert from "node:assert/strict";

import {
  CID, HOST_CAPS, ID, LISTENER_CAPS, PATH, TYPE,
  callObject, connectedClient, event, joinCall, newClient, request, snapshot, test,
} from "./support.mjs";
import { until } from "./fakes.mjs";

/** A connected client of `user`, joined to the call whose state is `snapshot(5, overrides)`. */
async function joined(user = "alice", overrides = {}) {
  const env = await connectedClient({ user });
  const call = await joinCall(env, snapshot(5, overrides));
  return { ...env, call, state: () => call.state };
}

test("before any snapshot the state is not loaded", () => {
  const { client } = newClient();
  const call = client.call(TYPE, ID);
  assert.equal(call.state.loaded, false);
  assert.equal(call.state.cid, CID);
});

test("a snapshot fills every field and getter", async () => {
  const { client, fetch } = newClient();
  const pending = request("r1", "alice", ["send-audio"]);
  fetch.on("GET", PATH, {
    body: snapshot(7, {
      phase: "backstage",
      members: [{ user_id: "host", role: "host" }, { user_id: "alice", role: "user" }],
      blocked_user_ids: ["mallory"],
      pending_requests: [pending],
    }),
  });
  const call = client.call(TYPE, ID);
  await call.get();
  const state = call.state;
  assert.equal(state.loaded, true);
  assert.equal(state.cid, CID);
  assert.equal(state.seq, 7);
  assert.deepEqual(state.call, callObject("backstage"));
  assert.equal(state.settings.name, TYPE);
  assert.deepEqual(Object.keys(state.members).sort(), ["alice", "host"]);
  assert.equal(state.members.alice.role, "user");
  assert.deepEqual(Object.keys(state.participants), ["host"]);
  assert.ok(state.blockedUserIds instanceof Set);
  assert.deepEqual([...state.blockedUserIds], ["mallory"]);
  assert.ok(state.ownCapabilities instanceof Set);
  assert.deepEqual([...state.ownCapabilities].sort(), [...LISTENER_CAPS].sort());
  assert.deepEqual(Object.keys(state.pendingRequests), ["r1"]);
  assert.deepEqual(state.pendingRequests.r1.permissions, ["send-audio"]);
  assert.equal(state.type, TYPE);
  assert.equal(state.id, ID);
  assert.equal(state.phase, "backstage");
  assert.equal(state.backstage, true);
  assert.equal(state.live, false);
  assert.equal(state.ended, false);
  assert.ok(state.requestable instanceof Set);
  assert.deepEqual([...state.requestable].sort(), ["screenshare", "send-audio", "send-video"]);
});

test("an older snapshot is ignored, a newer one replaces the state", async () => {
  const { client, fetch } = newClient();
  fetch.on(
    "GET", PATH,
    { body: snapshot(5, { members: [{ user_id: "a", role: "host" }] }) },
    { body: snapshot(3, { members: [{ user_id: "old", role: "host" }] }) },
    { body: snapshot(9, { members: [{ user_id: "new", role: "host" }] }) },
  );
  const call = client.call(TYPE, ID);
  await call.get();
  await call.get();
  assert.equal(call.state.seq, 5);
  assert.deepEqual(Object.keys(call.state.members), ["a"]);
  await call.get();
  assert.equal(call.state.seq, 9);
  assert.deepEqual(Object.keys(call.state.members), ["new"]);
});

test("events at or below seq are skipped, later ones applied", async () => {
  const { ws, state } = await joined();
  const joinedEvent = (seq, userId) =>
    event(seq, "call.participant_joined", { participant: { user_id: userId, name: userId } });
  await ws.deliver(joinedEvent(5, "bob"));
  await ws.deliver(joinedEvent(4, "dave"));
  assert.equal(state().seq, 5);
  assert.deepEqual(Object.keys(state().participants), ["host"]);
  await ws.deliver(joinedEvent(8, "carol")); // gaps are normal: events meant for others
  assert.equal(state().seq, 8);
  assert.deepEqual(Object.keys(state().participants).sort(), ["carol", "host"]);
  await ws.deliver(joinedEvent(8, "erin"));
  assert.equal(state().participants.erin, undefined);
});

test("participant joined and left", async () => {
  const { ws, state } = await joined();
  await ws.deliver(event(6, "call.participant_joined", { participant: { user_id: "bob", name: "Bob" } }));
  assert.equal(state().participants.bob.name, "Bob");
  await ws.deliver(event(7, "call.participant_left", { participant: { user_id: "bob", name: "Bob" } }));
  assert.deepEqual(Object.keys(state().participants), ["host"]);
});

test("member added, updated and removed", async () => {
  const { ws, state } = await joined();
  await ws.deliver(event(6, "call.member_added", { members: [{ user_id: "bob", role: "user" }] }));
  assert.equal(state().members.bob.role, "user");
  await ws.deliver(event(7, "call.member_updated", { members: [{ user_id: "bob", role: "speaker" }] }));
  assert.equal(state().members.bob.role, "speaker");
  assert.equal(state().members.host.role, "host");
  await ws.deliver(event(8, "call.member_removed", { user_ids: ["bob"] }));
  assert.deepEqual(Object.keys(state().members), ["host"]);
});

test("a permission request is added to pendingRequests, its resolution removes it", async () => {
  const { ws, state } = await joined("host", { own_capabilities: HOST_CAPS });
  const asked = request("r1", "bob", ["send-audio"]);
  await ws.deliver(event(6, "call.permission_request", {
    request: asked, user: { id: "bob", name: "Bob", image: null },
  }));
  assert.deepEqual(Object.keys(state().pendingRequests), ["r1"]);
  assert.equal(state().pendingRequests.r1.user_id, "bob");
  await ws.deliver(event(7, "call.permission_request_resolved", {
    request: { ...asked, state: "rejected", resolved_by: "host", reason: null },
  }));
  assert.deepEqual(state().pendingRequests, {});
});

test("permissions_updated changes ownCapabilities only when it is about this user", async () => {
  const { ws, state } = await joined("alice");
  await ws.deliver(event(6, "call.permissions_updated", {
    user_id: "bob", own_capabilities: HOST_CAPS, reason: "permissions_changed",
  }));
  assert.deepEqual([...state().ownCapabilities].sort(), [...LISTENER_CAPS].sort());
  await ws.deliver(event(7, "call.permissions_updated", {
    user_id: "alice", own_capabilities: [...LISTENER_CAPS, "send-audio"], reason: "permissions_changed",
  }));
  assert.deepEqual([...state().ownCapabilities].sort(), [...LISTENER_CAPS, "send-audio"].sort());
});

test("permissions_updated drops own pending requests now fully held, and only those", async () => {
  const { ws, state } = await joined("alice", {
    pending_requests: [
      request("audio", "alice", ["send-audio"]),
      request("both", "alice", ["send-video", "screenshare"]),
    ],
  });
  await ws.deliver(event(6, "call.permissions_updated", {
    user_id: "alice", own_capabilities: [...LISTENER_CAPS, "send-audio", "send-video"],
    reason: "permissions_changed",
  }));
  assert.deepEqual(Object.keys(state().pendingRequests), ["both"]);
});

test("call.ended clears participants and pending requests, and re-reads the call", async () => {
  const { ws, fetch, state } = await joined("host", {
    own_capabilities: HOST_CAPS,
    participants: [{ user_id: "host" }, { user_id: "bob" }],
    pending_requests: [request("r1", "bob", ["send-audio"])],
  });
  let answer;
  const answered = new Promise((resolve) => {
    answer = resolve;
  });
  fetch.on("GET", PATH, async () => {
    await answered; // the event alone must clear the state, before the re-read answers
    return { body: snapshot(6, { phase: "ended", participants: [], own_capabilities: ["read-call"] }) };
  });
  const reads = fetch.to("GET", PATH).length;
  await ws.deliver(event(6, "call.ended", { call: callObject("ended") }));
  assert.equal(state().ended, true);
  assert.equal(state().phase, "ended");
  assert.deepEqual(state().participants, {});
  assert.deepEqual(state().pendingRequests, {});
  await until(() => fetch.to("GET", PATH).length > reads, "a GET of the call after call.ended");
  answer();
  await until(() => !state().ownCapabilities.has("end-call"), "capabilities re-read");
  assert.deepEqual([...state().ownCapabilities], ["read-call"]);
});

test("call.live_started and live_stopped change the phase and re-read capabilities", async () => {
  const { ws, fetch, state } = await joined("alice", {
    phase: "backstage", own_capabilities: ["read-call", "create-call"],
  });
  fetch.on("GET", PATH, { body: snapshot(6, { phase: "live", own_capabilities: LISTENER_CAPS }) });
  await ws.deliver(event(6, "call.live_started", { call: callObject("live") }));
  assert.equal(state().phase, "live");
  assert.equal(state().live, true);
  assert.equal(state().backstage, false);
  await until(() => state().ownCapabilities.has("join-call"), "capabilities re-read after live_started");
  fetch.on("GET", PATH, {
    body: snapshot(7, { phase: "backstage", own_capabilities: ["read-call", "create-call"] }),
  });
  await ws.deliver(event(7, "call.live_stopped", { call: callObject("backstage") }));
  assert.equal(state().phase, "backstage");
  await until(() => !state().ownCapabilities.has("join-call"), "capabilities re-read after live_stopped");
});

test("a phase re-read answered before a later event is read again", async () => {
  const { ws, fetch, state } = await joined("alice", {
    phase: "backstage", own_capabilities: ["read-call", "create-call"],
  });
  let release;
  const held = new Promise((resolve) => {
    release = resolve;
  });
  fetch.on(
    "GET",
    PATH,
    async () => {
      await held; // read at seq 6, answered after event 7 arrived: older than the state
      return { body: snapshot(6, { phase: "live", own_capabilities: LISTENER_CAPS }) };
    },
    { body: snapshot(7, { phase: "live", own_capabilities: LISTENER_CAPS }) },
  );
  await ws.deliver(event(6, "call.live_started", { call: callObject("live") }));
  await ws.deliver(event(7, "call.participant_joined", { participant: { user_id: "bob" } }));
  release();
  await until(() => state().ownCapabilities.has("join-call"), "capabilities read again");
  assert.equal(fetch.requests.filter((r) => r.method === "GET" && r.path === PATH).length, 2);
});

test("blocked_user removes the participant; unblocked_user lifts the block", async () => {
  const { ws, state } = await joined("host", {
    own_capabilities: HOST_CAPS, participants: [{ user_id: "host" }, { user_id: "bob" }],
  });
  await ws.deliver(event(6, "call.blocked_user", { user_id: "bob", by: "host" }));
  assert.deepEqual(Object.keys(state().participants), ["host"]);
  assert.ok(state().blockedUserIds.has("bob"));
  await ws.deliver(event(7, "call.unblocked_user", { user_id: "bob", by: "host" }));
  assert.equal(state().blockedUserIds.has("bob"), false);
});

test("pendingOf lists a user's unexpired pending requests", async () => {
  const { client, fetch } = newClient({ user: "host" });
  const past = new Date(Date.now() - 1000).toISOString();
  fetch.on("GET", PATH, {
    body: snapshot(5, {
      own_capabilities: HOST_CAPS,
      pending_requests: [
        request("live", "bob", ["send-audio"]),
        request("expired", "bob", ["send-video"], { expires_at: past }),
        request("other", "carol", ["send-audio"]),
      ],
    }),
  });
  const call = client.call(TYPE, ID);
  await call.get();
  assert.deepEqual(call.state.pendingOf("bob").map((r) => r.id), ["live"]);
  assert.deepEqual(call.state.pendingOf("carol").map((r) => r.id), ["other"]);
  assert.deepEqual(call.state.pendingOf("nobody"), []);
});
