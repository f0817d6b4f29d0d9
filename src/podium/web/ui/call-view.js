// What a call looks like, apart from what the session does: the waiting screen (backstage, until
// the host goes live) and the call screen (title bar with its phase badge and host buttons, the
// connection, other-tab and backstage banners, stage, requests, audience, controls), redrawn
// from the session's state in one render per burst of changes, with the speaking levels fresh.
import { AudiencePanel } from "./audience.js";
import { h, icon, setText } from "./dom.js";
import { Controls } from "./controls.js";
import { describeError } from "./messages.js";
import { RequestsPanel } from "./requests.js";
import { callPath } from "./session.js";
import { Stage } from "./stage.js";

const LEVEL_POLL_MS = 250;
const PHASE_BADGE = { live: "Live", backstage: "Backstage", ended: "Ended", reconnecting: "Reconnecting…" };

export class CallView {
  /**
   * `root`: the element the screens are drawn in. `session` gives: `call`, `names`, `messages`,
   * `mode`, `offline`, `mediaConnection` (`elsewhere`, `sourcesComingBack()`, `takeBack()`),
   * `leave()`, and what Stage, Controls and RequestsPanel need of it.
   */
  constructor(session, root) {
    this.session = session;
    this.root = root;
    this.renderQueued = false;
  }

  /** Coalesce bursts of state changes into one render. */
  schedule() {
    const { session } = this;
    if (this.renderQueued || session.mode === "over") return;
    this.renderQueued = true;
    queueMicrotask(() => {
      this.renderQueued = false;
      if (session.mode === "waiting") this.renderConnection();
      if (session.mode !== "joined") return;
      try {
        this.render();
      } catch (error) {
        session.messages.error(`Display error: ${describeError(error)}`);
      }
    });
  }

  showWaiting() {
    const { call } = this.session;
    this.connectionNote = connectionNote();
    this.root.replaceChildren(
      h(
        "section",
        { class: "card waiting", "aria-labelledby": "waiting-title" },
        h("div", { class: "waiting-pulse", "aria-hidden": "true" }, icon("live")),
        h("h1", { id: "waiting-title", tabindex: "-1" }, "Waiting for the host to go live"),
        h(
          "p",
          { class: "lede" },
          "This call is in backstage. You will join automatically as soon as it goes live.",
        ),
        h("p", { class: "waiting-call" }, h("span", { class: "mono" }, call.id), ` · ${call.type}`),
        this.connectionNote,
        h("button", { type: "button", class: "btn btn-secondary", onclick: () => this.session.leave() }, "Leave"),
      ),
    );
    this.renderConnection();
    focusHeading(this.root);
  }

  /** Build the call screen, draw it, and start polling the speaking levels. */
  showCall() {
    const { session } = this;
    const { call } = session;
    this.stage = new Stage(session);
    this.controls = new Controls(session);
    this.requests = new RequestsPanel(session);
    this.audience = new AudiencePanel(session);
    this.phaseBadge = h("span", { class: "phase-badge" });
    this.goLiveButton = h(
      "button",
      { type: "button", class: "btn btn-live", hidden: true, onclick: () => this.setLive(true) },
      icon("live"),
      h("span", {}, "Go live"),
    );
    this.stopLiveButton = h(
      "button",
      { type: "button", class: "btn btn-secondary", hidden: true, onclick: () => this.setLive(false) },
      "Stop live",
    );
    this.backstageNote = h("p", { class: "banner", hidden: true });
    this.connectionNote = connectionNote();
    this.elsewhereNote = h(
      "div",
      { class: "banner banner-action", role: "status", hidden: true },
      h("p", {}, "This call is open in another tab; media moved there. This tab no longer plays or sends anything."),
      h(
        "button",
        { type: "button", class: "btn btn-secondary", onclick: () => session.mediaConnection.takeBack() },
        "Use this tab",
      ),
    );
    const copyButton = h(
      "button",
      { type: "button", class: "btn btn-secondary", onclick: () => this.copyInvite() },
      icon("link"),
      h("span", {}, "Copy invite link"),
    );
    this.root.replaceChildren(
      h(
        "div",
        { class: "call-view" },
        h(
          "div",
          { class: "call-bar" },
          h(
            "div",
            { class: "call-title" },
            h("h1", { tabindex: "-1" }, h("span", { class: "mono" }, call.id)),
            h("p", { class: "call-meta" }, this.phaseBadge, h("span", {}, call.type)),
          ),
          h("div", { class: "call-actions" }, this.goLiveButton, this.stopLiveButton, copyButton),
        ),
        this.connectionNote,
        this.elsewhereNote,
        this.backstageNote,
        h("div", { class: "call-body" }, this.requests.element, this.stage.element, this.audience.element),
        this.controls.element,
        this.stage.audioSinks,
      ),
    );
    this.render();
    focusHeading(this.root);
    this.startLevelPolling();
  }

  render() {
    const { session } = this;
    const { call, offline } = session;
    const state = call.state;
    session.names.learn(state);
    // Offline, the phase shown could be stale: say what we know instead.
    const phase = offline ? "reconnecting" : state.phase || (state.live ? "live" : "backstage");
    setText(this.phaseBadge, PHASE_BADGE[phase] || phase);
    this.phaseBadge.dataset.phase = phase;
    this.renderConnection();
    this.elsewhereNote.hidden = !session.mediaConnection.elsewhere;
    const host = call.hasPermission("go-live");
    this.goLiveButton.disabled = offline;
    this.stopLiveButton.disabled = offline;
    this.goLiveButton.hidden = !(host && state.backstage);
    this.stopLiveButton.hidden = !(host && state.live);
    this.backstageNote.hidden = !state.backstage;
    setText(
      this.backstageNote,
      host
        ? "You are in backstage: only hosts can join until you go live."
        : "The call is in backstage.",
    );
    this.stage.render(state);
    this.controls.render();
    this.requests.render(state);
    this.audience.render(state);
  }

  /** The banner that says the server is unreachable, on the call and the waiting screen. */
  renderConnection() {
    const { offline } = this.session;
    this.connectionNote.hidden = !offline;
    setText(this.connectionNote, offline ? this.offlineText() : "");
  }

  offlineText() {
    const back = this.session.mediaConnection.sourcesComingBack();
    const promise = back.length ? ` Your ${back.join(" and ")} will turn back on by itself.` : "";
    return `Lost the connection to the server. Reconnecting…${promise}`;
  }

  /** Go live / Stop live, with the button disabled meanwhile. */
  async setLive(live) {
    const { call, messages } = this.session;
    const button = live ? this.goLiveButton : this.stopLiveButton;
    button.disabled = true;
    try {
      if (live) await call.goLive();
      else await call.stopLive();
    } catch (error) {
      messages.error(describeError(error));
    } finally {
      button.disabled = false;
      this.schedule();
    }
  }

  async copyInvite() {
    const { call, messages } = this.session;
    const url = location.origin + callPath(call.type, call.id);
    try {
      await navigator.clipboard.writeText(url);
      messages.success("Invite link copied.");
    } catch {
      messages.info(`Share this link to invite people: ${url}`, { ttlMs: 30_000 });
    }
  }

  startLevelPolling() {
    clearInterval(this.levelTimer);
    let busy = false;
    this.levelTimer = setInterval(async () => {
      if (busy || this.session.mode !== "joined") return;
      busy = true;
      try {
        this.stage.setLevels(await this.session.call.audioLevels());
      } catch {
        // No media session yet, or it is closing: no levels this time.
      } finally {
        busy = false;
      }
    }, LEVEL_POLL_MS);
  }

  /** Stop polling and every media element (the session is over). */
  dispose() {
    clearInterval(this.levelTimer);
    if (this.stage) this.stage.dispose();
    if (this.audience) this.audience.dispose();
  }
}

function connectionNote() {
  return h("p", { class: "banner banner-alert", role: "status", hidden: true });
}

/** Move focus to a new screen's heading, so keyboard and screen-reader users start there. */
function focusHeading(root) {
  const heading = root.querySelector("h1");
  if (heading) heading.focus({ preventScroll: true });
}
