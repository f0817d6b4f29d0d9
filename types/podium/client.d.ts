/** @typedef {"disconnected" | "connecting" | "connected" | "reconnecting" | "closed"} ConnectionState */
/**
 * @typedef {object} ClientOptions
 * @property {string} token a user token (`podium token`)
 * @property {string | URL} [baseUrl] the server; the page's origin by default
 * @property {typeof fetch} [fetch] the browser's by default (tests pass their own)
 * @property {typeof WebSocket} [WebSocket] the browser's by default (tests pass their own)
 * @property {boolean} [loopbackOnly] offer the SFU only 127.0.0.1 candidates (the server's `media_loopback`)
 * @property {number} [timeoutMs] bounds every wait on the server (15000)
 */
/**
 * @typedef {object} DevTokenOptions
 * @property {string} userId
 * @property {string} [name]
 * @property {string} [role]
 * @property {string | URL} [baseUrl]
 * @property {typeof fetch} [fetch]
 */
/**
 * What a page needs to know before it has a token.
 * @typedef {object} ServerInfo
 * @property {string} version
 * @property {boolean} dev tokens can be minted at `/v1/dev/token`
 * @property {boolean} media_loopback the SFU offers only 127.0.0.1 candidates
 */
/**
 * The payload of a JWT, decoded but not verified (the server verifies it); null if unreadable.
 * @param {string} token
 * @returns {Record<string, unknown> | null}
 */
export function tokenClaims(token: string): Record<string, unknown> | null;
/** The page's connection to a Podium server: its token, HTTP calls and one WebSocket. */
export class Client {
    /**
     * Mint a user token on a server started with `--dev`; resolves to the token.
     * @param {DevTokenOptions} options
     * @returns {Promise<string>}
     */
    static devToken(options: DevTokenOptions): Promise<string>;
    /**
     * `{ version, dev, media_loopback }`: what a page needs to know before it has a token.
     * @param {string | URL} [baseUrl]
     * @param {typeof fetch} [fetch]
     * @returns {Promise<ServerInfo>}
     */
    static serverInfo(baseUrl?: string | URL, fetch?: typeof globalThis.fetch): Promise<ServerInfo>;
    /** @param {ClientOptions} options */
    constructor(options: ClientOptions);
    token: string;
    baseUrl: string;
    /** Offer the SFU only 127.0.0.1 candidates (tests and one-machine demos). */
    loopbackOnly: boolean;
    timeoutMs: number;
    claims: Record<string, unknown> | null;
    _fetch: typeof fetch;
    _WebSocket: {
        new (url: string | URL, protocols?: string | string[]): WebSocket;
        prototype: WebSocket;
        readonly CONNECTING: 0;
        readonly OPEN: 1;
        readonly CLOSING: 2;
        readonly CLOSED: 3;
    };
    /** @type {Map<string, Call>} By call cid. */
    _calls: Map<string, Call>;
    /** @type {WebSocket | null} */
    _socket: WebSocket | null;
    /** @type {WebSocket | null} */
    _opening: WebSocket | null;
    /** @type {Promise<void> | null} */
    _connecting: Promise<void> | null;
    _closed: boolean;
    _reconnects: number;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    _reconnectTimer: ReturnType<typeof setTimeout> | undefined;
    /** @type {ConnectionState} */
    _connectionState: ConnectionState;
    /** @type {Set<(state: ConnectionState) => unknown>} */
    _connectionHandlers: Set<(state: ConnectionState) => unknown>;
    _everConnected: boolean;
    /**
     * The token's `sub`.
     * @returns {string | null}
     */
    get userId(): string | null;
    /**
     * The token's `name`.
     * @returns {string | null}
     */
    get userName(): string | null;
    get connected(): boolean;
    /**
     * `disconnected` (before `connect()`), `connecting`, `connected`, `reconnecting` (the
     * WebSocket dropped and is being opened again) or `closed` (by `close()`, or the server
     * refused the token: no reconnecting).
     * @returns {ConnectionState}
     */
    get connectionState(): ConnectionState;
    /**
     * `handler(state)` whenever `connectionState` changes; returns an unsubscribe function.
     * @param {(state: ConnectionState) => unknown} handler
     * @returns {() => void}
     */
    onConnectionStateChange(handler: (state: ConnectionState) => unknown): () => void;
    /**
     * The `Call` for `type`/`id` (one object per call).
     * @param {string} type
     * @param {string} id
     * @returns {Call}
     */
    call(type: string, id: string): Call;
    /**
     * `GET /v1/calls`: the call objects this user may read.
     * @param {{ type?: string, live?: boolean }} [filter]
     * @returns {Promise<import("./state.js").CallObject[]>}
     */
    queryCalls({ type, live }?: {
        type?: string;
        live?: boolean;
    }): Promise<import("./state.js").CallObject[]>;
    /**
     * `GET /v1/call-types`: the call types and their settings.
     * @returns {Promise<import("./http.js").JsonObject[]>}
     */
    callTypes(): Promise<import("./http.js").JsonObject[]>;
    /**
     * Open the WebSocket (once); resolves on the server's `connection.ok`.
     * @returns {Promise<void>}
     */
    connect(): Promise<void>;
    /** Close the WebSocket and every media session; the client cannot be used again. */
    close(): void;
    /**
     * One HTTP call to the API; resolves to the JSON body, rejects with `PodiumError`.
     * @param {string} method
     * @param {string} path from the server's root, e.g. `/v1/calls`
     * @param {unknown} [body] sent as JSON
     * @returns {Promise<import("./http.js").JsonObject>}
     */
    request(method: string, path: string, body?: unknown): Promise<import("./http.js").JsonObject>;
    /**
     * Send one frame on the WebSocket (connecting first if needed).
     * @param {{ type: string } & Record<string, unknown>} frame
     * @returns {Promise<void>}
     */
    send(frame: {
        type: string;
    } & Record<string, unknown>): Promise<void>;
    #private;
}
export type ConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting" | "closed";
export type ClientOptions = {
    /**
     * a user token (`podium token`)
     */
    token: string;
    /**
     * the server; the page's origin by default
     */
    baseUrl?: string | URL | undefined;
    /**
     * the browser's by default (tests pass their own)
     */
    fetch?: typeof fetch | undefined;
    /**
     * the browser's by default (tests pass their own)
     */
    WebSocket?: {
        new (url: string | URL, protocols?: string | string[]): WebSocket;
        prototype: WebSocket;
        readonly CONNECTING: 0;
        readonly OPEN: 1;
        readonly CLOSING: 2;
        readonly CLOSED: 3;
    } | undefined;
    /**
     * offer the SFU only 127.0.0.1 candidates (the server's `media_loopback`)
     */
    loopbackOnly?: boolean | undefined;
    /**
     * bounds every wait on the server (15000)
     */
    timeoutMs?: number | undefined;
};
export type DevTokenOptions = {
    userId: string;
    name?: string | undefined;
    role?: string | undefined;
    baseUrl?: string | URL | undefined;
    fetch?: typeof fetch | undefined;
};
/**
 * What a page needs to know before it has a token.
 */
export type ServerInfo = {
    version: string;
    /**
     * tokens can be minted at `/v1/dev/token`
     */
    dev: boolean;
    /**
     * the SFU offers only 127.0.0.1 candidates
     */
    media_loopback: boolean;
};
import { Call } from "./call.js";
