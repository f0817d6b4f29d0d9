// podium.js: Podium's browser client library (ES modules, no dependencies, no build step).
//
// It mirrors the Python SDK (`podium.client`), one module each under podium/: a
// `Client` (client.js) holds the token and the one WebSocket of the page;
// `client.call(type, id)` gives a `Call` (call.js) whose `state` (state.js) is kept
// current from the server's snapshots and events, whose `permission(cap)` handles
// (permission.js) say what the user may do or request, and which publishes and
// receives media through Podium's SFU over one RTCPeerConnection (media.js).
// This entry module is the public API. Reference: docs/podium-js.md.

export { Call } from "./podium/call.js";
export { Client, tokenClaims } from "./podium/client.js";
export { PodiumError } from "./podium/errors.js";
export { PublishDeniedError, SOURCE_CAPABILITY, SOURCES } from "./podium/media.js";
export { PermissionHandle } from "./podium/permission.js";
export { CAPABILITIES, CallState, checkCapability } from "./podium/state.js";

// The types of the API, for TypeScript and JSDoc users (no runtime value).
/** @typedef {import("./podium/events.js").Event} Event */
/** @typedef {import("./podium/events.js").ErrorFrame} ErrorFrame */
/**
 * @template {string} T
 * @typedef {import("./podium/events.js").EventOf<T>} EventOf
 */
/** @typedef {import("./podium/call.js").MuteKinds} MuteKinds */
/** @typedef {import("./podium/call.js").RequestRef} RequestRef */
/** @typedef {import("./podium/call.js").Unsubscribe} Unsubscribe */
/** @typedef {import("./podium/client.js").ClientOptions} ClientOptions */
/** @typedef {import("./podium/client.js").ConnectionState} ConnectionState */
/** @typedef {import("./podium/client.js").ServerInfo} ServerInfo */
/** @typedef {import("./podium/media.js").MediaEvent} MediaEvent */
/** @typedef {import("./podium/media.js").MediaSession} MediaSession */
/** @typedef {import("./podium/media.js").RemoteTrack} RemoteTrack */
/** @typedef {import("./podium/media.js").Selection} Selection */
/** @typedef {import("./podium/media.js").SfuFrame} SfuFrame */
/** @typedef {import("./podium/media.js").Source} Source */
/** @typedef {import("./podium/state.js").CallEvent} CallEvent */
/** @typedef {import("./podium/state.js").CallObject} CallObject */
/** @typedef {import("./podium/state.js").CallSettings} CallSettings */
/** @typedef {import("./podium/state.js").CallSnapshot} CallSnapshot */
/** @typedef {import("./podium/state.js").Capability} Capability */
/** @typedef {import("./podium/state.js").Member} Member */
/** @typedef {import("./podium/state.js").Participant} Participant */
/** @typedef {import("./podium/state.js").PermissionRequest} PermissionRequest */
/** @typedef {import("./podium/state.js").Phase} Phase */
