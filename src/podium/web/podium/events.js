// What a call receives from the server and hands to its handlers: types only, no code.
// Call events are typed in state.js, media frames and events in media.js.

/** @typedef {import("./state.js").CallEvent} CallEvent */
/** @typedef {import("./media.js").SfuFrame} SfuFrame */
/** @typedef {import("./media.js").MediaEvent} MediaEvent */

/**
 * A refused frame about this call (`in_reply_to` names it), or a failure of the call's recovery.
 * @typedef {object} ErrorFrame
 * @property {"error"} type
 * @property {string} [call_cid]
 * @property {string} [in_reply_to]
 * @property {{ code?: string, message?: string, details?: Record<string, unknown> }} [error]
 */

/** @typedef {{ type: "watch.ok", call_cid: string, last_seq?: number }} WatchOk */
/** @typedef {CallEvent | SfuFrame | ErrorFrame | WatchOk} Frame A frame the server sends about a call. */
/** @typedef {CallEvent | MediaEvent | SfuFrame | ErrorFrame} Event What `call.on` handlers get. */
/** @typedef {CallEvent | MediaEvent | ErrorFrame} NamedEvent */

/**
 * The event `call.on(type, handler)` hands to `handler`.
 * @template {string} T
 * @typedef {T extends "*" ? CallEvent
 *   : T extends `sfu.${string}` ? SfuFrame
 *   : T extends NamedEvent["type"] ? Extract<NamedEvent, { type: T }>
 *   : Event} EventOf
 */

export {};
