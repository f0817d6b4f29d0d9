/**
 * A handler the page registered threw or rejected: log it, and go on with the others.
 * @param {{ type: string }} event
 * @param {unknown} error
 */
export function reportHandlerError(event: {
    type: string;
}, error: unknown): void;
/**
 * Call each handler with `event`; a throw or a rejected promise is reported, not passed on,
 * so one faulty handler stops neither the others nor the SDK's own handling of the frame.
 * @template {{ type: string }} E
 * @param {Iterable<(event: E) => unknown>} handlers
 * @param {E} event
 */
export function runHandlers<E extends {
    type: string;
}>(handlers: Iterable<(event: E) => unknown>, event: E): void;
/**
 * @typedef {object} PodiumErrorOptions
 * @property {number} [status] the HTTP status; 0 for a local error
 * @property {string} [code] the server's error code, or a local one (`network_error`, `timeout`, `media_closed`)
 * @property {Record<string, unknown>} [details]
 */
/** An error the server answered (`status`, `code`, `details` from its error object), or a local one. */
export class PodiumError extends Error {
    /**
     * The error an HTTP answer (or a refused WebSocket frame) carries.
     * @param {number} status
     * @param {unknown} body the decoded JSON body, `{ error: { code, message, details } }`
     * @returns {PodiumError}
     */
    static fromBody(status: number, body: unknown): PodiumError;
    /**
     * @param {string} message
     * @param {PodiumErrorOptions} [options]
     */
    constructor(message: string, { status, code, details }?: PodiumErrorOptions);
    status: number;
    code: string;
    details: Record<string, unknown>;
}
export type PodiumErrorOptions = {
    /**
     * the HTTP status; 0 for a local error
     */
    status?: number | undefined;
    /**
     * the server's error code, or a local one (`network_error`, `timeout`, `media_closed`)
     */
    code?: string | undefined;
    details?: Record<string, unknown> | undefined;
};
