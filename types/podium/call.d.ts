/** @typedef {import("./events.js").CallEvent} CallEvent */
/** @typedef {import("./events.js").Event} Event */
/** @typedef {import("./events.js").Frame} Frame */
/** @typedef {import("./events.js").SfuFrame} SfuFrame */
/** @typedef {import("./events.js").WatchOk} WatchOk */
/**
 * @template {string} T
 * @typedef {import("./events.js").EventOf<T>} EventOf
 */
/** @typedef {(event: Event) => unknown} Handler */
/** @typedef {() => void} Unsubscribe */
/** @typedef {import("./state.js").PermissionRequest | string} RequestRef A request object or its id. */
/**
 * @typedef {object} MuteKinds Which kinds to mute; none set: every kind.
 * @property {boolean} [audio]
 * @property {boolean} [video]
 * @property {boolean} [screenshare]
 */
/** @typedef {import("./state.js").Tier} Tier Where a participant is: `stage` or `audience`. */
/**
 * @typedef {object} ParticipantsPage
 * @property {(import("./state.js").Participant & { tier: Tier })[]} participants
 * @property {string | null} next_cursor The `cursor` of the next page; null after the last.
 */
/** One call: its state, events, moderation actions and media. */
export class Call {
    /**
     * @param {import("./client.js").Client} client
     * @param {string} type
     * @param {string} id
     */
    constructor(client: import("./client.js").Client, type: string, id: string);
    client: import("./client.js").Client;
    type: string;
    id: string;
    cid: string;
    state: CallState;
    /** @type {import("./state.js").CallSnapshot["media"] | null} What `join` answered about media (ICE servers). */
    mediaInfo: import("./state.js").CallSnapshot["media"] | null;
    /** @type {Map<string, Set<Handler>>} */
    _handlers: Map<string, Set<Handler>>;
    /** @type {Set<(state: CallState) => unknown>} */
    _stateHandlers: Set<(state: CallState) => unknown>;
    _watching: boolean;
    /** @type {import("./waiting.js").Deferred<WatchOk> | null} */
    _watchWaiter: import("./waiting.js").Deferred<WatchOk> | null;
    /** Whether the watch asks for the audience's joins and leaves too (`watch({audience})`). */
    _audience: boolean;
    _joined: boolean;
    /** @type {Promise<void> | null} */
    _recovery: Promise<void> | null;
    /** @type {Promise<void> | null} */
    _rejoining: Promise<void> | null;
    /** @type {MediaSession | null} */
    _media: MediaSession | null;
    /** @type {Set<string>} */
    _resolved: Set<string>;
    /** @type {number | null} */
    _handledSeq: number | null;
    get path(): string;
    get watching(): boolean;
    /**
     * `handler(state)` after every change of `state`; returns an unsubscribe function.
     * @param {(state: CallState) => unknown} handler
     * @returns {Unsubscribe}
     */
    onStateChange(handler: (state: CallState) => unknown): Unsubscribe;
    /**
     * `handler(event)` for each event of `type` (`"*"`: every call event); returns an unsubscribe.
     * @template {string} T
     * @param {T} type a call event (`call.*`), a media event (`media.*`), an `sfu.*` frame, `error`, or `"*"`
     * @param {(event: EventOf<T>) => unknown} handler
     * @returns {Unsubscribe}
     */
    on<T extends string>(type: T, handler: (event: EventOf<T>) => unknown): Unsubscribe;
    /** @param {import("./state.js").Capability} capability */
    hasPermission(capability: import("./state.js").Capability): boolean;
    /** @param {import("./state.js").Capability} capability */
    permission(capability: import("./state.js").Capability): PermissionHandle;
    /**
     * @param {{ members?: { user_id: string, role: string }[], custom?: Record<string, unknown> }} [options]
     * @returns {Promise<CallState>}
     */
    getOrCreate({ members, custom }?: {
        members?: {
            user_id: string;
            role: string;
        }[];
        custom?: Record<string, unknown>;
    }): Promise<CallState>;
    /** @returns {Promise<CallState>} */
    get(): Promise<CallState>;
    /**
     * Become a participant, and follow the call's events.
     * @returns {Promise<CallState>}
     */
    join(): Promise<CallState>;
    /**
     * Read the state and follow the call's events without joining.
     *
     * `audience: true` (needs `update-call-permissions`) also delivers each audience join
     * and leave to the handlers; `state.participants` still holds the stage only, and
     * `state.audienceCount` counts the rest. Every re-watch after a reconnect asks again.
     * @param {{ audience?: boolean }} [options]
     * @returns {Promise<CallState>}
     */
    watch({ audience }?: {
        audience?: boolean;
    }): Promise<CallState>;
    /** @returns {Promise<void>} */
    unwatch(): Promise<void>;
    /**
     * Close media, stop being a participant, and stop following events.
     * @returns {Promise<CallState>}
     */
    leave(): Promise<CallState>;
    /** @returns {Promise<CallState>} */
    goLive(): Promise<CallState>;
    /** @returns {Promise<CallState>} */
    stopLive(): Promise<CallState>;
    /** @returns {Promise<CallState>} */
    end(): Promise<CallState>;
    /**
     * One page of the call's participants, for reading a large audience page by page (the call
     * state is not touched). Pass the page's `next_cursor` as `cursor` for the next one.
     * @param {{ tier?: Tier, limit?: number, cursor?: string, q?: string }} [options]
     * @returns {Promise<ParticipantsPage>}
     */
    participantsPage(options?: {
        tier?: Tier;
        limit?: number;
        cursor?: string;
        q?: string;
    }): Promise<ParticipantsPage>;
    /**
     * Ask for capabilities; resolves to the request (new, or the one already pending).
     * @param {readonly import("./state.js").Capability[]} capabilities
     * @returns {Promise<import("./state.js").PermissionRequest>}
     */
    requestPermissions(capabilities: readonly import("./state.js").Capability[]): Promise<import("./state.js").PermissionRequest>;
    /**
     * @param {RequestRef} request
     * @returns {Promise<import("./state.js").PermissionRequest>} the resolved request
     */
    accept(request: RequestRef): Promise<import("./state.js").PermissionRequest>;
    /**
     * @param {RequestRef} request
     * @param {string} [reason] told to the requester
     * @returns {Promise<import("./state.js").PermissionRequest>} the resolved request
     */
    reject(request: RequestRef, reason?: string): Promise<import("./state.js").PermissionRequest>;
    /**
     * @param {RequestRef} request
     * @returns {Promise<import("./state.js").PermissionRequest>} the resolved request
     */
    cancel(request: RequestRef): Promise<import("./state.js").PermissionRequest>;
    /**
     * @param {string} userId
     * @param {readonly import("./state.js").Capability[]} capabilities
     * @returns {Promise<string[]>} the user's capabilities now
     */
    grantPermissions(userId: string, capabilities: readonly import("./state.js").Capability[]): Promise<string[]>;
    /**
     * @param {string} userId
     * @param {readonly import("./state.js").Capability[]} capabilities
     * @returns {Promise<string[]>} the user's capabilities now
     */
    revokePermissions(userId: string, capabilities: readonly import("./state.js").Capability[]): Promise<string[]>;
    /**
     * Force-mute users' published media; with no kind set, every kind.
     * @param {readonly string[]} userIds
     * @param {MuteKinds} [kinds]
     * @returns {Promise<void>}
     */
    mute(userIds: readonly string[], kinds?: MuteKinds): Promise<void>;
    /**
     * The tracks being sent, by source.
     * @returns {Partial<Record<import("./media.js").Source, MediaStreamTrack>>}
     */
    get published(): Partial<Record<import("./media.js").Source, MediaStreamTrack>>;
    /**
     * The tracks being received, by `userId/source`.
     * @returns {Map<string, import("./media.js").RemoteTrack>}
     */
    get remoteTracks(): Map<string, import("./media.js").RemoteTrack>;
    /**
     * Open the media session without publishing, to receive (`subscribe`: "all" or user ids).
     * @param {{ subscribe?: import("./media.js").Selection }} [options]
     * @returns {Promise<MediaSession>}
     */
    connectMedia({ subscribe }?: {
        subscribe?: import("./media.js").Selection;
    }): Promise<MediaSession>;
    /**
     * Send `track` as `source` once the SFU accepts; rejects with `PublishDeniedError`.
     * @param {import("./media.js").Source} source
     * @param {MediaStreamTrack} track
     * @returns {Promise<void>}
     */
    publish(source: import("./media.js").Source, track: MediaStreamTrack): Promise<void>;
    /**
     * Stop sending `source` (the track is left running: it is yours).
     * @param {import("./media.js").Source} source
     * @returns {Promise<void>}
     */
    unpublish(source: import("./media.js").Source): Promise<void>;
    /**
     * @param {string} [reason] the `media.closed` reason
     * @param {{ tellServer?: boolean }} [options]
     * @returns {Promise<void>}
     */
    closeMedia(reason?: string, { tellServer }?: {
        tellServer?: boolean;
    }): Promise<void>;
    /**
     * The media session's `RTCStatsReport`, or null without one.
     * @returns {Promise<RTCStatsReport | null>}
     */
    getStats(): Promise<RTCStatsReport | null>;
    /**
     * `userId` → audio level (0..1) of every remote microphone, and of your own while published.
     * @returns {Promise<Map<string | null, number>>}
     */
    audioLevels(): Promise<Map<string | null, number>>;
    /**
     * A frame the client received about this call.
     * @param {Frame} frame
     */
    _handleFrame(frame: Frame): void;
    /** The client's WebSocket closed. */
    _disconnected(): void;
    /** The client's WebSocket is open again after a drop. */
    _reconnected(): void;
    /**
     * Hand an event to the handlers of its type (and, for call events, to `"*"`).
     * @param {Event} event
     */
    _emit(event: Event): void;
    #private;
}
export type CallEvent = import("./events.js").CallEvent;
export type Event = import("./events.js").Event;
export type Frame = import("./events.js").Frame;
export type SfuFrame = import("./events.js").SfuFrame;
export type WatchOk = import("./events.js").WatchOk;
export type EventOf<T extends string> = import("./events.js").EventOf<T>;
export type Handler = (event: Event) => unknown;
export type Unsubscribe = () => void;
/**
 * A request object or its id.
 */
export type RequestRef = import("./state.js").PermissionRequest | string;
/**
 * Which kinds to mute; none set: every kind.
 */
export type MuteKinds = {
    audio?: boolean | undefined;
    video?: boolean | undefined;
    screenshare?: boolean | undefined;
};
/**
 * Where a participant is: `stage` or `audience`.
 */
export type Tier = import("./state.js").Tier;
export type ParticipantsPage = {
    participants: (import("./state.js").Participant & {
        tier: Tier;
    })[];
    /**
     * The `cursor` of the next page; null after the last.
     */
    next_cursor: string | null;
};
import { CallState } from "./state.js";
import { MediaSession } from "./media.js";
import { PermissionHandle } from "./permission.js";
