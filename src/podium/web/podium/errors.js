// Errors podium.js rejects with, and how a failing handler is reported.

/**
 * @typedef {object} PodiumErrorOptions
 * @property {number} [status] the HTTP status; 0 for a local error
 * @property {string} [code] the server's error code, or a local one (`network_error`, `timeout`, `media_closed`)
 * @property {Record<string, unknown>} [details]
 */

/** An error the server answered (`status`, `code`, `details` from its error object), or a local one. */
export class PodiumError extends Error {
  /**
   * @param {string} message
   * @param {PodiumErrorOptions} [options]
   */
  constructor(message, { status = 0, code = "client_error", details = {} } = {}) {
    super(message);
    this.name = "PodiumError";
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /**
   * The error an HTTP answer (or a refused WebSocket frame) carries.
   * @param {number} status
   * @param {unknown} body the decoded JSON body, `{ error: { code, message, details } }`
   * @returns {PodiumError}
   */
  static fromBody(status, body) {
    const error = body && typeof body === "object" ? /** @type {{ error?: unknown }} */ (body).error : null;
    if (error && typeof error === "object") {
      const { message, code, details } = /** @type {{ message?: unknown, code?: unknown, details?: unknown }} */ (error);
      return new PodiumError(String(message || code || `HTTP ${status}`), {
        status,
        code: String(code || "error"),
        details: details && typeof details === "object" ? /** @type {Record<string, unknown>} */ (details) : {},
      });
    }
    return new PodiumError(`HTTP ${status}`, { status, code: "http_error" });
  }
}

/**
 * A handler the page registered threw or rejected: log it, and go on with the others.
 * @param {{ type: string }} event
 * @param {unknown} error
 */
export function reportHandlerError(event, error) {
  console.error(`podium.js: a handler for ${event.type} failed`, error);
}

/**
 * Call each handler with `event`; a throw or a rejected promise is reported, not passed on,
 * so one faulty handler stops neither the others nor the SDK's own handling of the frame.
 * @template {{ type: string }} E
 * @param {Iterable<(event: E) => unknown>} handlers
 * @param {E} event
 */
export function runHandlers(handlers, event) {
  for (const handler of handlers) {
    try {
      const result = /** @type {{ catch?: unknown } | undefined} */ (handler(event));
      if (result && typeof result.catch === "function") result.catch((/** @type {unknown} */ e) => reportHandlerError(event, e));
    } catch (error) {
      reportHandlerError(event, error);
    }
  }
}
