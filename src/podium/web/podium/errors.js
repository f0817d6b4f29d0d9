// Errors podium.js rejects with, and how a failing handler is reported.

/** An error the server answered (`status`, `code`, `details` from its error object), or a local one. */
export class PodiumError extends Error {
  constructor(message, { status = 0, code = "client_error", details = {} } = {}) {
    super(message);
    this.name = "PodiumError";
    this.status = status;
    this.code = code;
    this.details = details;
  }

  static fromBody(status, body) {
    const error = body && typeof body === "object" ? body.error : null;
    if (error && typeof error === "object") {
      return new PodiumError(String(error.message || error.code || `HTTP ${status}`), {
        status,
        code: String(error.code || "error"),
        details: error.details && typeof error.details === "object" ? error.details : {},
      });
    }
    return new PodiumError(`HTTP ${status}`, { status, code: "http_error" });
  }
}

/** A handler the page registered threw or rejected: log it, and go on with the others. */
export function reportHandlerError(event, error) {
  console.error(`podium.js: a handler for ${event.type} failed`, error);
}
