// Waiting on the server: a promise settled from outside, and a bound on how long to wait.

import { PodiumError } from "./errors.js";

export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  // A waiter that nobody awaits any more must not surface as an unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

export function within(promise, timeoutMs, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new PodiumError(`no ${what} within ${timeoutMs} ms`, { code: "timeout" })),
      timeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
