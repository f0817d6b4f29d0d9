// What a call's HTTP actions send: ids checked, and the query and bodies built from the
// caller's options, apart from `Call` so the class keeps to its state, events and media.

import { ID_PATTERN, TIERS } from "./protocol.js";

/**
 * `value`, if it is a valid id (1-64 of A-Z a-z 0-9 _ -); else a TypeError naming `what`.
 * @param {unknown} value
 * @param {string} what
 * @returns {string}
 */
export function checkId(value, what) {
  if (typeof value !== "string" || !ID_PATTERN.test(value)) {
    throw new TypeError(`${what} must be 1-64 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * The id of `request` (an object or its id), checked and escaped for a path.
 * @param {import("./state.js").PermissionRequest | string} request
 */
export function requestId(request) {
  const id = typeof request === "string" ? request : request?.id;
  return encodeURIComponent(checkId(id, "request id"));
}

/**
 * The query string (with its `?`, or empty) of a participants page; a TypeError for an unknown tier.
 * @param {{ tier?: string, limit?: number, cursor?: string, q?: string }} options
 */
export function participantsQuery(options) {
  if (options.tier !== undefined && !TIERS.includes(/** @type {typeof TIERS[number]} */ (options.tier))) {
    throw new TypeError(`tier must be one of ${TIERS.join(", ")}, got ${options.tier}`);
  }
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(options)) {
    if (value !== undefined) query.set(name, String(value));
  }
  return query.size ? `?${query}` : "";
}

/**
 * The body of a mute: the checked user ids and only the kinds given (none: every kind).
 * @param {readonly string[]} userIds
 * @param {{ audio?: boolean, video?: boolean, screenshare?: boolean }} kinds
 */
export function muteBody(userIds, { audio, video, screenshare }) {
  if (!Array.isArray(userIds)) throw new TypeError("userIds must be an array of user ids");
  /** @type {{ user_ids: string[], audio?: boolean, video?: boolean, screenshare?: boolean }} */
  const body = { user_ids: userIds.map((u) => checkId(u, "user id")) };
  if (audio !== undefined) body.audio = audio;
  if (video !== undefined) body.video = video;
  if (screenshare !== undefined) body.screenshare = screenshare;
  return body;
}
