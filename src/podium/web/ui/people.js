// Who is who in a call: display names (remembered after people leave) and what others may do.

/** Remembers the display name of every user id seen, so a note about someone who left still names them. */
export class Names {
  constructor() {
    this.known = new Map();
  }

  remember(userId, name) {
    if (userId && name) this.known.set(userId, name);
  }

  /** Pull names from the state's participants. */
  learn(state) {
    for (const [userId, participant] of Object.entries(state.participants || {})) {
      this.remember(userId, participant && participant.name);
    }
  }

  of(userId, state) {
    const participant = state && state.participants && state.participants[userId];
    return (participant && participant.name) || this.known.get(userId) || userId || "Someone";
  }
}

export function roleOf(state, userId) {
  return (state.members && state.members[userId] && state.members[userId].role) || "user";
}

/**
 * The capabilities another user holds, computed like the server does (spec §1):
 * grants of their role (a role the type does not define holds what `user` holds)
 * ∪ their own grants − their revokes, then limited by the call's phase.
 * Users whose token says admin are not visible here: good enough for icons.
 */
export function capabilitiesOf(state, userId) {
  const grants = (state.settings && state.settings.grants) || {};
  const member = state.members && state.members[userId];
  const role = roleOf(state, userId);
  const caps = new Set(grants[role] || grants.user || []);
  for (const cap of (member && member.grants) || []) caps.add(cap);
  for (const cap of (member && member.revokes) || []) caps.delete(cap);
  if (state.ended) return new Set(["read-call"]);
  if (state.backstage && !caps.has("join-backstage")) caps.delete("join-call");
  return caps;
}

/** `send-audio` → "audio", `send-video` → "video", `screenshare` → "screen share". */
export function capabilityWord(capability) {
  return { "send-audio": "audio", "send-video": "video", screenshare: "screen share" }[capability] || capability;
}

export function capabilityWords(capabilities) {
  return (capabilities || []).map(capabilityWord).join(" and ");
}

export function initials(name) {
  const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}
