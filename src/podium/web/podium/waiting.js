// Waiting on the server: a promise settled from outside, and a bound on how long to wait.

import { PodiumError } from "./errors.js";

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
export function deferred() {
  /** @type {(value: T) => void} */
  let resolve = () => {};
  /** @type {(error: unknown) => void} */
  let reject = () => {};
  /** @type {Promise<T>} */
  const promise = new Promise((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  // A waiter that nobody awaits any more must not surface as an unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/**
 * `promise`, or a `timeout` PodiumError naming `what` after `timeoutMs`.
 * @template T
 * @param {Promise<T>} promise
 * @param {number} timeoutMs
 * @param {string} what
 * @returns {Promise<T>}
 */
export function within(promise, timeoutMs, what) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  /** @type {Promise<never>} */
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new PodiumError(`no ${what} within ${timeoutMs} ms`, { code: "timeout" })),
      timeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
