// The shared behaviour fixtures (tests/fixtures/sdk_behaviour), run against podium.js.
// tests/client/test_behaviour_fixtures.py runs the same files against the Python SDK, so a
// change in how one SDK folds events into its state fails here or there instead of drifting
// apart. No server: `call.get()` is answered with the fixture's snapshot (so the re-read after
// a phase change is older than the state and ignored) or a step's `reread`, and each event arrives on the fake
// WebSocket, whose frames the client hands to the call they name.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";

import { connectedClient, test } from "./support.mjs";

const FOLDER = new URL("../fixtures/sdk_behaviour/", import.meta.url);
const FIXTURES = readdirSync(FOLDER).filter((name) => name.endsWith(".json")).sort();

/** The view of the state that the fixtures spell out (README.md). */
function normalized(state) {
  return {
    phase: state.phase,
    live: state.live,
    backstage: state.backstage,
    ended: state.ended,
    participants: Object.keys(state.participants).sort(),
    members: Object.fromEntries(Object.entries(state.members).map(([userId, member]) => [userId, member.role])),
    own_capabilities: [...state.ownCapabilities].sort(),
    pending_requests: Object.keys(state.pendingRequests).sort(),
    blocked_user_ids: [...state.blockedUserIds].sort(),
    audience_count: state.audienceCount,
    seq: state.seq,
  };
}

function handles(call, capabilities) {
  return Object.fromEntries(
    capabilities.map((capability) => {
      const handle = call.permission(capability);
      return [
        capability,
        { has: handle.hasPermission, can_request: handle.canRequestPermission, awaiting: handle.isAwaitingPermission },
      ];
    }),
  );
}

function check(call, expect, where) {
  assert.deepEqual(normalized(call.state), expect.state, where);
  assert.deepEqual(handles(call, Object.keys(expect.permissions)), expect.permissions, where);
}

test("there are fixtures", () => {
  assert.ok(FIXTURES.length >= 6, FIXTURES.join(", "));
});

for (const name of FIXTURES) {
  test(`fixture ${name}`, async () => {
    const fixture = JSON.parse(readFileSync(new URL(name, FOLDER), "utf8"));
    const snapshot = fixture.snapshot;
    const env = await connectedClient({ user: fixture.user_id });
    const [type, id] = snapshot.call.cid.split(":");
    env.fetch.on("GET", `/v1/calls/${type}/${id}`, { body: snapshot });
    const call = env.client.call(type, id);
    const delivered = [];
    call.on("*", (event) => delivered.push(event));
    await call.get();
    check(call, fixture.expect, `${name}: after the snapshot`);
    for (const [index, step] of fixture.steps.entries()) {
      const expect = step.expect_js ?? step.expect;
      const before = delivered.length;
      let where = `${name}: after step ${index + 1} (a read)`;
      if (step.reread) {
        env.fetch.on("GET", `/v1/calls/${type}/${id}`, { body: step.reread });
        await call.get();
      } else {
        await env.ws.deliver(step.event);
        where = `${name}: after step ${index + 1} (${step.event.type})`;
      }
      check(call, expect, where);
      if ("delivered" in expect) assert.equal(delivered.length > before, expect.delivered, where);
    }
  });
}
