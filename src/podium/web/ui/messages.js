// Short-lived messages in one aria-live region: request outcomes, stopped sources, errors.
import { h, icon } from "./dom.js";

const DEFAULT_TTL_MS = 10_000;
const ERROR_TTL_MS = 20_000;

export class Messages {
  /** `region` is an element with role="status" (polite live region) that stays in the page. */
  constructor(region) {
    this.region = region;
  }

  /** Show `text`; `kind` is "info", "success", "warning" or "error". Returns the element. */
  show(text, { kind = "info", ttlMs } = {}) {
    const ttl = ttlMs ?? (kind === "error" ? ERROR_TTL_MS : DEFAULT_TTL_MS);
    const item = h(
      "div",
      { class: `message message-${kind}` },
      h("p", { class: "message-text", text }),
      h(
        "button",
        {
          type: "button",
          class: "message-close",
          "aria-label": "Dismiss message",
          onclick: () => item.remove(),
        },
        icon("close"),
      ),
    );
    this.region.append(item);
    // Older messages go first so a burst stays readable; cap the pile.
    while (this.region.children.length > 5) this.region.firstElementChild.remove();
    if (ttl > 0) setTimeout(() => item.remove(), ttl);
    return item;
  }

  info(text, options) {
    return this.show(text, { ...options, kind: "info" });
  }

  success(text, options) {
    return this.show(text, { ...options, kind: "success" });
  }

  warning(text, options) {
    return this.show(text, { ...options, kind: "warning" });
  }

  error(text, options) {
    return this.show(text, { ...options, kind: "error" });
  }

  clear() {
    this.region.replaceChildren();
  }
}

/** A human sentence for any thrown value: PodiumError's message, a DOMException's, or text. */
export function describeError(error) {
  if (!error) return "Something went wrong.";
  if (error.code === "invalid_token") return "This access token is not valid.";
  if (error.code === "token_expired") return "This access token has expired.";
  if (typeof error.message === "string" && error.message) return error.message;
  return String(error);
}
