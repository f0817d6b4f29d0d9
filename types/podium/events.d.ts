export type CallEvent = import("./state.js").CallEvent;
export type SfuFrame = import("./media.js").SfuFrame;
export type MediaEvent = import("./media.js").MediaEvent;
/**
 * A refused frame about this call (`in_reply_to` names it), or a failure of the call's recovery.
 */
export type ErrorFrame = {
    type: "error";
    call_cid?: string | undefined;
    in_reply_to?: string | undefined;
    error?: {
        code?: string;
        message?: string;
        details?: Record<string, unknown>;
    } | undefined;
};
export type WatchOk = {
    type: "watch.ok";
    call_cid: string;
    last_seq?: number;
};
/**
 * A frame the server sends about a call.
 */
export type Frame = CallEvent | SfuFrame | ErrorFrame | WatchOk;
/**
 * What `call.on` handlers get.
 */
export type Event = CallEvent | MediaEvent | SfuFrame | ErrorFrame;
export type NamedEvent = CallEvent | MediaEvent | ErrorFrame;
/**
 * The event `call.on(type, handler)` hands to `handler`.
 */
export type EventOf<T extends string> = T extends "*" ? CallEvent : T extends `sfu.${string}` ? SfuFrame : T extends NamedEvent["type"] ? Extract<NamedEvent, {
    type: T;
}> : Event;
