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
