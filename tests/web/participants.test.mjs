// call.participantsPage(): one GET of .../participants with the options as query, the page as answered.
import assert from "node:assert/strict";

import { PATH, newClient, test } from "./support.mjs";

const PAGE = { participants: [{ user_id: "lou", name: "Lou", image: null, joined_at: "2025-01-01T00:00:00+00:00", tier: "audience" }], next_cursor: "lou" };

test("participantsPage sends the options as the query and resolves to the page", async () => {
  const { client, fetch } = newClient();
  fetch.on("GET", `${PATH}/participants`, { body: PAGE });
  const call = client.call("audio_room", "room-1");
  assert.deepEqual(await call.participantsPage({ tier: "audience", limit: 2, cursor: "kim", q: "Lo" }), PAGE);
  assert.deepEqual(await call.participantsPage(), PAGE);
  const [first, second] = fetch.to("GET", `${PATH}/participants`);
  assert.deepEqual(first.query, { tier: "audience", limit: "2", cursor: "kim", q: "Lo" });
  assert.deepEqual(second.query, {});
});

test("participantsPage refuses an unknown tier before asking the server", async () => {
  const { client, fetch } = newClient();
  const call = client.call("audio_room", "room-1");
  await assert.rejects(call.participantsPage({ tier: "backstage" }), /tier must be one of stage, audience/);
  assert.equal(fetch.requests.length, 0);
});
