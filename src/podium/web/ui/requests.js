// Moderators' permission-request notifications, in arrival order, each with Accept and Reject.
import { h, setText, syncKeyed } from "./dom.js";
import { capabilityWords } from "./people.js";

export function requestText(name, request) {
  return `New request from ${name} to publish ${capabilityWords(request.permissions)}`;
}

export class RequestsPanel {
  /**
   * `session` gives: `call`, `moderation` (`requesterName(request)`, `isResolved(requestId)`,
   * `answer(request, "accept" | "reject")` (a promise), `isAnswering(requestId)`), and
   * `offline` (no answer can reach the server now).
   */
  constructor(session) {
    this.session = session;
    this.count = h("span", { class: "count" });
    // A polite live region: a new notification is read out once, when it is added.
    this.list = h("ul", {
      class: "request-list",
      role: "list",
      "aria-live": "polite",
      "aria-relevant": "additions",
    });
    this.empty = h("p", { class: "empty" }, "No pending requests.");
    this.element = h(
      "section",
      { class: "requests card", "aria-labelledby": "requests-title", hidden: true },
      h("h2", { id: "requests-title", class: "section-title" }, "Requests ", this.count),
      this.list,
      this.empty,
    );
  }

  render(state) {
    const { call } = this.session;
    const moderator = call.hasPermission("update-call-permissions");
    this.element.hidden = !moderator;
    const pending = moderator ? this.pending(state) : [];
    syncKeyed(
      this.list,
      pending,
      (r) => r.id,
      (r) => this.createItem(r),
      (item, r) => this.updateItem(item, r),
    );
    setText(this.count, pending.length ? `(${pending.length})` : "");
    this.empty.hidden = pending.length > 0;
  }

  /** Unanswered, unexpired requests, oldest first. */
  pending(state) {
    const now = Date.now();
    return Object.values(state.pendingRequests || {})
      .filter((r) => (r.state || "pending") === "pending" && !this.session.moderation.isResolved(r.id))
      .filter((r) => !r.expires_at || Date.parse(r.expires_at) > now)
      .sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at) || (a.id < b.id ? -1 : 1));
  }

  createItem(request) {
    const textId = `request-${request.id}-text`.replace(/[^A-Za-z0-9_-]/g, "_");
    const text = h("p", { class: "request-text", id: textId });
    const accept = h("button", { type: "button", class: "btn btn-small btn-primary" }, "Accept");
    const reject = h("button", { type: "button", class: "btn btn-small btn-secondary" }, "Reject");
    accept.addEventListener("click", () => this.session.moderation.answer(item.__request, "accept"));
    reject.addEventListener("click", () => this.session.moderation.answer(item.__request, "reject"));
    const item = h(
      "li",
      { class: "request", "data-request-id": request.id },
      h(
        "div",
        { role: "group", "aria-labelledby": textId, class: "request-body" },
        text,
        h("div", { class: "request-actions" }, accept, reject),
      ),
    );
    item.__parts = { text, accept, reject };
    return item;
  }

  updateItem(item, request) {
    item.__request = request;
    const { text, accept, reject } = item.__parts;
    const { moderation, offline } = this.session;
    setText(text, requestText(moderation.requesterName(request), request));
    const unavailable = offline || moderation.isAnswering(request.id);
    accept.disabled = unavailable;
    reject.disabled = unavailable;
  }
}
