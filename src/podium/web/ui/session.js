// Where the page is (URL ↔ call) and who this tab is (identity kept in sessionStorage).

export const CALL_TYPES = ["audio_room", "default", "livestream", "development"];
export const DEFAULT_CALL_TYPE = "audio_room";

const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function isValidId(value) {
  return ID_PATTERN.test(value);
}

/** `{type, id}` from `/call/{type}/{id}` (ids unchecked: the lobby reports bad ones), else null. */
export function callFromPath(pathname = location.pathname) {
  const match = /^\/call\/([^/]+)\/([^/]+)\/?$/.exec(pathname);
  if (!match) return null;
  try {
    return { type: decodeURIComponent(match[1]), id: decodeURIComponent(match[2]) };
  } catch {
    return null; // a malformed %-escape: treat as no call
  }
}

export function callPath(type, id) {
  return `/call/${encodeURIComponent(type)}/${encodeURIComponent(id)}`;
}

/**
 * The token in `#token=<JWT>`, removed from the address bar at once so it is never
 * left in the history, a bookmark or a screenshot.
 */
export function takeTokenFromFragment() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = params.get("token");
  if (location.hash) {
    history.replaceState(history.state, "", location.pathname + location.search);
  }
  return token && token.trim() ? token.trim() : null;
}

/** Show `/call/{type}/{id}` in the address bar (pushState when it changes). */
export function showCallInUrl(type, id) {
  const path = callPath(type, id);
  if (location.pathname !== path || location.hash) {
    const same = location.pathname === path;
    history[same ? "replaceState" : "pushState"]({ call: { type, id } }, "", path);
  }
}

export function randomChars(count, alphabet = "abcdefghijkmnpqrstuvwxyz23456789") {
  const bytes = new Uint8Array(count);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

/** A fresh, readable call id such as `room-k3x9q2`. */
export function randomCallId() {
  return `room-${randomChars(6)}`;
}

/** A user id from a display name: its slug (≤ 40 chars of [A-Za-z0-9_-]) + "-" + 4 random chars. */
export function userIdFor(name) {
  const slug = name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "") // drop accents: "Zoë" → "Zoe"
    .replace(/[^A-Za-z0-9_-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-|-$/g, "")
    .slice(0, 40)
    .replace(/-$/, "");
  return `${slug || "user"}-${randomChars(4)}`;
}

// sessionStorage is per tab: a reload keeps the user, another tab is another user.
const identityKey = (type, id) => `podium.identity.${type}:${id}`;
const ACTIVE_KEY = "podium.active";

function readJson(key) {
  try {
    const value = JSON.parse(sessionStorage.getItem(key) || "null");
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

function writeJson(key, value) {
  try {
    sessionStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage may be disabled (private mode): the app works, a reload just asks again.
  }
}

/** `{userId?, name?, token?}` this tab used for the call, or null. */
export function loadIdentity(type, id) {
  return readJson(identityKey(type, id));
}

export function saveIdentity(type, id, identity) {
  writeJson(identityKey(type, id), identity);
}

/** The call this tab is in (so a reload goes straight back in), or null. */
export function loadActiveCall() {
  const active = readJson(ACTIVE_KEY);
  return active && typeof active.type === "string" && typeof active.id === "string" ? active : null;
}

export function saveActiveCall(type, id) {
  writeJson(ACTIVE_KEY, { type, id });
}

export function clearActiveCall() {
  try {
    sessionStorage.removeItem(ACTIVE_KEY);
  } catch {
    // see writeJson
  }
}
