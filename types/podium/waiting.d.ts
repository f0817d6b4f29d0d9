/**
 * @template [T=void]
 * @typedef {object} Deferred
 * @property {Promise<T>} promise
 * @property {(value: T) => void} resolve
 * @property {(error: unknown) => void} reject
 */
/**
 * A promise with its resolve and reject, for a frame the server will send.
 * @template [T=void]
 * @returns {Deferred<T>}
 */
export function deferred<T = void>(): Deferred<T>;
/**
 * `promise`, or a `timeout` PodiumError naming `what` after `timeoutMs`.
 * @template T
 * @param {Promise<T>} promise
 * @param {number} timeoutMs
 * @param {string} what
 * @returns {Promise<T>}
 */
export function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T>;
export type Deferred<T = void> = {
    promise: Promise<T>;
    resolve: (value: T) => void;
    reject: (error: unknown) => void;
};
