/**
 * `source`, if it is one of `SOURCES`; else a TypeError.
 * @param {string} source
 * @returns {Source}
 */
export function checkSource(source: string): Source;
/** The SFU refused to take a source: the capability is missing. */
export class PublishDeniedError extends PodiumError {
    /**
     * @param {Source} source
     * @param {string} capability
     * @param {string} reason `not_granted`, `revoked` or `role_changed`
     */
    constructor(source: Source, capability: string, reason: string);
    source: "camera" | "microphone" | "screen";
    capability: string;
    reason: string;
}
/**
 * One call's RTCPeerConnection with the SFU. The client offers three sendrecv
 * m-lines (audio, video, video: microphone, camera, screen), which the SFU
 * also uses to send remote tracks back; further remote tracks arrive in the
 * server's offers, which the session answers. Publishing puts the track on
 * its m-line with `replaceTrack`, without renegotiating.
 */
export class MediaSession {
    /**
     * @param {import("./call.js").Call} call
     * @param {{ subscribe: Selection }} options
     */
    constructor(call: import("./call.js").Call, { subscribe }: {
        subscribe: Selection;
    });
    call: import("./call.js").Call;
    closed: boolean;
    /** @type {Partial<Record<Source, MediaStreamTrack>>} */
    published: Partial<Record<Source, MediaStreamTrack>>;
    /** @type {Map<string, RemoteTrack>} By `userId/source`. */
    remoteTracks: Map<string, RemoteTrack>;
    selection: Selection;
    pc: RTCPeerConnection;
    /** @type {Record<Source, RTCRtpTransceiver>} */
    transceivers: Record<Source, RTCRtpTransceiver>;
    /** @type {ForwardedTrack[]} */
    _trackList: ForwardedTrack[];
    /** @type {Promise<void>} */
    _inbox: Promise<void>;
    /** @type {Promise<void> | null} */
    _started: Promise<void> | null;
    _offerSent: boolean;
    /** @type {(RTCIceCandidate | null)[]} */
    _pendingCandidates: (RTCIceCandidate | null)[];
    /** @type {import("./waiting.js").Deferred} */
    _answered: import("./waiting.js").Deferred;
    /** @type {import("./waiting.js").Deferred} */
    _connected: import("./waiting.js").Deferred;
    /** @type {Record<Source, import("./waiting.js").Deferred[]>} */
    _publishing: Record<Source, import("./waiting.js").Deferred[]>;
    /** @type {Record<Source, Promise<void>>} */
    _locks: Record<Source, Promise<void>>;
    /** @returns {Promise<void>} */
    start(): Promise<void>;
    /**
     * @param {Source} source
     * @param {MediaStreamTrack} track
     */
    publish(source: Source, track: MediaStreamTrack): Promise<void>;
    /** @param {Source} source */
    unpublish(source: Source): Promise<void>;
    /** @param {Selection} selection */
    subscribe(selection: Selection): Promise<void>;
    /**
     * @param {string} [reason] the `media.closed` reason
     * @param {{ tellServer?: boolean }} [options] `tellServer`: send `sfu.leave` (false when the server ended it)
     */
    close(reason?: string, { tellServer }?: {
        tellServer?: boolean;
    }): Promise<void>;
    /**
     * Fail everything waiting on the server (a refused frame, or the session closing).
     * @param {unknown} error
     */
    fail(error: unknown): void;
    /** @param {SfuFrame} frame */
    handle(frame: SfuFrame): void;
    /** @returns {Promise<Map<string | null, number>>} */
    audioLevels(): Promise<Map<string | null, number>>;
    #private;
}
/**
 * A source a participant publishes.
 */
export type Source = keyof typeof SOURCES;
/**
 * Whose tracks to receive: everyone's, or these users'.
 */
export type Selection = "all" | string[];
/**
 * A track the SFU forwards to this client, as `sfu.tracks` lists it.
 */
export type ForwardedTrack = {
    user_id: string;
    source: Source;
    track_id?: string | undefined;
    /**
     * the m-line carrying it, null until negotiated
     */
    mid: string | null;
};
/**
 * A media signalling frame (docs/api.md "Media signalling"): each type carries some of these.
 */
export type SfuFrame = {
    type: `sfu.${string}`;
    call_cid?: string | undefined;
    source?: "camera" | "microphone" | "screen" | undefined;
    reason?: string | undefined;
    capability?: string | undefined;
    code?: string | undefined;
    message?: string | undefined;
    sdp?: string | undefined;
    candidate?: string | undefined;
    sdp_mid?: string | null | undefined;
    sdp_mline_index?: number | null | undefined;
    user_ids?: Selection | undefined;
    tracks?: ForwardedTrack[] | undefined;
};
/**
 * A remote track being received.
 */
export type RemoteTrack = {
    userId: string;
    source: Source;
    track: MediaStreamTrack;
    mid: string | null;
};
/**
 * What the media session tells the call's handlers (`call.on("media.…")`).
 */
export type MediaEvent = (({
    type: "media.track_added";
    call_cid: string;
} & RemoteTrack) | ({
    type: "media.track_removed";
    call_cid: string;
} & RemoteTrack) | {
    type: "media.source_stopped";
    call_cid: string;
    source: Source;
    reason: string;
    track: MediaStreamTrack | null;
} | {
    type: "media.source_resumed";
    call_cid: string;
    source: Source;
} | {
    type: "media.closed";
    call_cid: string;
    reason: string;
});
import { SOURCE_CAPABILITY } from "./protocol.js";
import { SOURCES } from "./protocol.js";
import { PodiumError } from "./errors.js";
export { SOURCE_CAPABILITY, SOURCES };
