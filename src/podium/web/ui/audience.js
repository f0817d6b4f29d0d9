// The audience: how many are listening, for everyone, and for moderators one page of listeners
// at a time (never a node per listener), searchable by name prefix, read with participantsPage.
import { h, setAttr, setText, syncKeyed } from "./dom.js";
import { describeError } from "./messages.js";
import { initials, roleOf } from "./people.js";

export const AUDIENCE_PAGE_SIZE = 20;
const SEARCH_DELAY_MS = 300;
// A changing audience is read again at most this often (its count changes up to once a second).
const REFRESH_EVERY_MS = 3000;
const NUMBER = new Intl.NumberFormat("en-US");

/** "1 listening", "1,234 listening". */
export function listeningText(count) {
  return `${NUMBER.format(count)} listening`;
}

export class AudiencePanel {
  /**
   * `session` gives: `call`, `userId`, `names`, `messages` and `view.schedule()`. Only holders of
   * `update-call-permissions` page through the listeners; everyone sees the count.
   */
  constructor(session) {
    this.session = session;
    this.count = h("p", { class: "audience-count" });
    this.you = h("p", { class: "audience-you", hidden: true }, "You are in the audience.");
    this.search = h("input", {
      type: "search",
      id: "audience-search",
      autocomplete: "off",
      spellcheck: "false",
      oninput: () => this.onSearch(),
    });
    this.list = h("ul", { class: "audience-list", role: "list", "aria-label": "Listeners" });
    this.status = h("p", { class: "empty", role: "status" });
    this.previous = pageButton("Previous", () => this.turn(-1));
    this.next = pageButton("Next", () => this.turn(1));
    this.pageLabel = h("span", { class: "audience-page" });
    this.browser = h(
      "div",
      { class: "audience-browser", hidden: true },
      h(
        "div",
        { class: "field audience-search" },
        h("label", { for: "audience-search" }, "Search listeners by name"),
        this.search,
      ),
      this.list,
      this.status,
      h("div", { class: "audience-pager" }, this.previous, this.pageLabel, this.next),
    );
    this.element = h(
      "section",
      { class: "audience card", "aria-labelledby": "audience-title" },
      h("h2", { id: "audience-title", class: "section-title" }, "Audience"),
      this.count,
      this.you,
      this.browser,
    );
    this.query = "";
    this.cursors = [undefined]; // the cursor of each page up to the one shown
    this.page = null; // { participants, next_cursor } of the page shown
    this.loading = false;
    this.error = "";
    this.loadedCount = null; // the audience count when the page shown was asked for
    this.loadedAt = 0;
    this.generation = 0; // answers of an older question are dropped
  }

  render(state) {
    const { call, userId } = this.session;
    const count = state.audienceCount ?? 0;
    setText(this.count, listeningText(count));
    const own = state.participants && state.participants[userId];
    this.you.hidden = !(own && own.tier === "audience");
    const moderator = call.hasPermission("update-call-permissions");
    this.browser.hidden = !moderator;
    if (!moderator) {
      this.forget();
      return;
    }
    if (this.loadedCount !== count) this.refreshSoon();
    this.renderPage(state);
  }

  renderPage(state) {
    const { names } = this.session;
    const rows = this.page ? this.page.participants : [];
    for (const participant of rows) names.remember(participant.user_id, participant.name);
    syncKeyed(
      this.list,
      rows,
      (p) => p.user_id,
      (p) => this.createRow(p),
      (row, p) => this.updateRow(row, p, state),
    );
    const pageIndex = this.cursors.length - 1;
    this.previous.disabled = this.loading || pageIndex === 0;
    this.next.disabled = this.loading || !(this.page && this.page.next_cursor);
    setText(this.pageLabel, `Page ${pageIndex + 1}`);
    let status = "";
    if (this.error) status = `Could not read the audience: ${this.error}`;
    else if (!this.page) status = "Loading…";
    else if (!rows.length) status = this.emptyText(pageIndex);
    setText(this.status, status);
    this.status.hidden = !status;
    setAttr(this.list, "aria-busy", this.loading ? "true" : null);
  }

  emptyText(pageIndex) {
    if (pageIndex > 0) return "No more listeners: this page emptied as people left.";
    return this.query ? `No listener matches “${this.query}”.` : "No one is listening yet.";
  }

  createRow(participant) {
    const parts = {
      avatar: h("span", { class: "audience-avatar", "aria-hidden": "true" }),
      name: h("span", { class: "audience-name" }),
      you: h("span", { class: "you", hidden: true }, "(you)"),
      role: h("span", { class: "role-badge", hidden: true }),
      asked: h("span", { class: "audience-asked", hidden: true }, "Asked to speak"),
    };
    const row = h(
      "li",
      { class: "audience-row", "data-user-id": participant.user_id },
      parts.avatar,
      h("span", { class: "audience-who" }, parts.name, " ", parts.you),
      parts.role,
      parts.asked,
    );
    row.__parts = parts;
    return row;
  }

  updateRow(row, participant, state) {
    const parts = row.__parts;
    const userId = participant.user_id;
    const name = participant.name || this.session.names.of(userId, state);
    setText(parts.name, name);
    setText(parts.avatar, initials(name));
    parts.you.hidden = userId !== this.session.userId;
    const role = roleOf(state, userId);
    parts.role.hidden = role === "user";
    setText(parts.role, role);
    setAttr(parts.role, "data-role", role);
    parts.asked.hidden = !Object.values(state.pendingRequests || {}).some((r) => r.user_id === userId);
  }

  /** Read the page shown again now, or as soon as the last read is old enough. */
  refreshSoon() {
    if (this.timer || this.loading) return;
    const wait = Math.max(0, this.loadedAt + REFRESH_EVERY_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.load();
    }, wait);
  }

  onSearch() {
    clearTimeout(this.searchTimer);
    this.searchTimer = setTimeout(() => {
      const query = this.search.value.trim();
      if (query === this.query) return;
      this.query = query;
      this.cursors = [undefined];
      this.load();
    }, SEARCH_DELAY_MS);
  }

  /** One page on (+1) or back (-1). */
  turn(step) {
    if (this.loading) return;
    if (step > 0 && this.page && this.page.next_cursor) this.cursors.push(this.page.next_cursor);
    else if (step < 0 && this.cursors.length > 1) this.cursors.pop();
    else return;
    this.load();
  }

  async load() {
    clearTimeout(this.timer);
    this.timer = null;
    const generation = ++this.generation;
    const { call, view } = this.session;
    const count = call.state.audienceCount ?? 0;
    this.loading = true;
    this.loadedAt = Date.now();
    view.schedule();
    const query = { tier: "audience", limit: AUDIENCE_PAGE_SIZE, cursor: this.cursors.at(-1) };
    if (this.query) query.q = this.query;
    try {
      const page = await call.participantsPage(query);
      if (generation !== this.generation) return;
      this.page = page;
      this.error = "";
    } catch (error) {
      if (generation !== this.generation) return;
      this.error = describeError(error);
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.loadedCount = count;
        this.loadedAt = Date.now();
        view.schedule();
      }
    }
  }

  /** No longer a moderator, or leaving: drop the page and stop reading. */
  forget() {
    if (!this.page && !this.loading && !this.timer) return;
    clearTimeout(this.timer);
    clearTimeout(this.searchTimer);
    this.timer = null;
    this.generation += 1;
    this.loading = false;
    this.page = null;
    this.loadedCount = null;
    this.list.replaceChildren();
    this.list.__keyed = null; // syncKeyed starts again from an empty list
  }

  dispose() {
    clearTimeout(this.searchTimer);
    this.forget();
  }
}

function pageButton(word, onclick) {
  const label = `${word} page`;
  return h("button", { type: "button", class: "btn btn-small btn-secondary", "aria-label": label, onclick }, word);
}
